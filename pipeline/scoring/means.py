"""Task means: each per-item metric averaged over the items that have it, and ``format_adherence``.

``RunningMeans`` holds what the means need (per metric a sum and a count), added to batch by batch: a run of
any size is scored in bounded batches without holding its items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pipeline.scoring.metrics import FORMAT_ADHERENCE
from pipeline.scoring.types import ScoredItem


class RunningMeans:
    """The items counted, the strictly valid ones, and per metric a sum and a count. Sums are added in item
    order, as ``sum`` over a list of the values would."""

    def __init__(self, items: Iterable[ScoredItem] = ()) -> None:
        self.n = 0
        self.valid = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.add(items)

    def add(self, items: Iterable[ScoredItem]) -> None:
        for item in items:
            self.n += 1
            self.valid += item.strict_valid
            for name, value in item.metrics.items():
                self.sums[name] = self.sums.get(name, 0) + value
                self.counts[name] = self.counts.get(name, 0) + 1


def mean_metrics(items: Sequence[ScoredItem] | RunningMeans) -> tuple[dict[str, float], list[str]]:
    """(means, notes): the mean of every per-item metric over the items that have it (each item counted
    once), plus ``format_adherence`` = % of items the strict parser accepted; a note for each metric only
    some items have. ``items`` (the scored items, or their ``RunningMeans``) must not be empty."""
    means = items if isinstance(items, RunningMeans) else RunningMeans(items)
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for name in sorted(means.sums):
        count = means.counts[name]
        metrics[name] = means.sums[name] / count
        if count != means.n:
            notes.append(f"{name}: mean of the {count} of {means.n} items that have it")
    metrics[FORMAT_ADHERENCE] = 100.0 * means.valid / means.n
    return metrics, notes
