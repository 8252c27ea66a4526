"""The result types every scorer returns and the eval summary and reports read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """The score of one output.

    ``parsed`` is what the strict (paper) parser extracted, plus the lenient reading, as JSON-serialisable
    data; ``strict_valid`` says whether the output followed the format the prompt asked for; ``metrics``
    holds per-item values on a 0–100 scale (paper metrics under their contract names, lenient ones under
    ``*_lenient`` names)."""

    parsed: Any
    strict_valid: bool
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskScore:
    """A task's score: the mean of each per-item metric (0–100) over ``n`` items, ``format_adherence``
    included. ``missing`` names paper metrics that could not be computed here (never reported as 0);
    ``notes`` says why, and anything else a reader of the number should know."""

    n: int
    metrics: dict[str, float]
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LevelScores:
    """The paper's Level-1 and Level-2 scores.

    ``level1``/``level2`` are ``None`` unless every task and metric the paper averages is present.
    ``level1_partial``/``level2_partial`` average whatever is present (same formula, fewer metrics): they
    are NOT comparable with the published levels and exist so a run without BERTScore/UMLS still gets a
    number. ``used`` maps each task to the metric names averaged; ``missing`` lists ``task.metric`` names
    that were absent."""

    level1: float | None
    level2: float | None
    level1_partial: float | None
    level2_partial: float | None
    used: dict[str, tuple[str, ...]]
    missing: tuple[str, ...]
