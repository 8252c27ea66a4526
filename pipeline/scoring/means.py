"""Task means: each per-item metric averaged over the items that have it, and ``format_adherence``."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.scoring.metrics import FORMAT_ADHERENCE
from pipeline.scoring.types import ScoredItem


def mean_metrics(items: Sequence[ScoredItem]) -> tuple[dict[str, float], list[str]]:
    """(means, notes): the mean of every per-item metric over the items that have it (each item counted
    once), plus ``format_adherence`` = % of items the strict parser accepted; a note for each metric only
    some items have. ``items`` must not be empty."""
    names = sorted({name for item in items for name in item.metrics})
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for name in names:
        values = [item.metrics[name] for item in items if name in item.metrics]
        metrics[name] = sum(values) / len(values)
        if len(values) != len(items):
            notes.append(f"{name}: mean of the {len(values)} of {len(items)} items that have it")
    metrics[FORMAT_ADHERENCE] = 100.0 * sum(item.strict_valid for item in items) / len(items)
    return metrics, notes
