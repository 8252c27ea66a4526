"""What the paper reports per task and how tasks roll up into levels: a thin adapter over
``pipeline.scoring`` so the report depends on that API in one place only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline import scoring
from pipeline.errors import DataError
from pipeline.scoring.settings import clue_settings

LEVELS = (1, 2)


@dataclass(frozen=True, slots=True)
class Levels:
    """Level scores (None unless every metric they average is present), partial means over what is
    present, the metrics used per task and the ``task.metric`` names that were missing."""

    level1: float | None
    level2: float | None
    level1_partial: float | None
    level2_partial: float | None
    used: dict[str, tuple[str, ...]]
    missing: tuple[str, ...]


def item_metrics(task: str) -> tuple[str, ...] | None:
    """The paper's metrics as named on one item (LongHealth: ``accuracy``); None for a task scoring does
    not know (the report then uses every metric it finds)."""
    try:
        return tuple(scoring.item_metrics(task))
    except DataError:
        return None


def level_tasks(level: int) -> tuple[str, ...]:
    return tuple(clue_settings().levels.get(f"level{level}", ()))


def level_key(subtask: str, metric: str) -> str:
    """How ``level_scores`` names a sub-task's metric (LongHealth: ``task1_accuracy``)."""
    return f"{subtask}_{metric}" if subtask else metric


def level_scores(task_metrics: Mapping[str, Mapping[str, float]]) -> Levels:
    """Level-1 / Level-2 from ``{task: {level_key: mean}}`` with ``pipeline.scoring.level_scores``."""
    answer = scoring.level_scores(task_metrics)
    return Levels(
        level1=answer.level1,
        level2=answer.level2,
        level1_partial=answer.level1_partial,
        level2_partial=answer.level2_partial,
        used={task: tuple(names) for task, names in answer.used.items()},
        missing=tuple(answer.missing),
    )
