"""What the paper reports per task and how tasks roll up into levels: a thin adapter over
``pipeline.scoring`` and the task registry so the report depends on them in one place only."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline import scoring
from pipeline.errors import DataError
from pipeline.scoring.levels import LEVELS, level_tasks
from pipeline.scoring.metrics import find, subtask_metric
from pipeline.scoring.types import LevelScores
from pipeline.tasks import scores

__all__ = ["LEVELS", "higher_is_better", "item_metrics", "level_key", "level_scores", "level_tasks"]


def item_metrics(task: str) -> tuple[str, ...] | None:
    """The paper's metrics as named on one item (LongHealth: ``accuracy``); None for a task scoring does
    not know (the report then uses every metric it finds)."""
    try:
        return tuple(scores.item_metrics(task))
    except DataError:
        return None


def higher_is_better(metric: str) -> bool:
    """The metric's declared direction (``pipeline/scoring/metrics.toml``); an undeclared one (from a store
    written by another version) counts as higher-is-better, as every paper metric is."""
    declared = find(metric)
    return declared is None or declared.higher_is_better


def level_key(subtask: str, metric: str) -> str:
    """How ``level_scores`` names a sub-task's metric (LongHealth: ``task1_accuracy``)."""
    return subtask_metric(subtask, metric)


def level_scores(task_metrics: Mapping[str, Mapping[str, float]]) -> LevelScores:
    """Level-1 / Level-2 from ``{task: {level_key: mean}}`` with ``pipeline.scoring.level_scores``."""
    return scoring.level_scores(task_metrics)
