"""Parsing, validation and metrics for the registered tasks (``pipeline.tasks.registry``): the six CLUE tasks
exactly as the paper defines them (see docs/fidelity.md for every deviation from the official code).

Per-item values are on a 0–100 scale; paper metrics use the contract names (``accuracy``, ``rouge1``,
``rouge2``, ``rougeL``, ``bertscore_f1``, ``umls_f1``, ``icd_em_f1``, ``icd_ap_f1``, ``icd_valid``),
lenient readings add ``_lenient``, and task means add ``format_adherence``."""

from pipeline.scoring.api import (
    add_extras,
    aggregate,
    aggregate_by_subtask,
    item_metrics,
    paper_metrics,
    score_batch,
    score_item,
)
from pipeline.scoring.levels import level_scores
from pipeline.scoring.longhealth import SUBTASKS as LONGHEALTH_SUBTASKS
from pipeline.scoring.metrics import FORMAT_ADHERENCE
from pipeline.scoring.types import LevelScores, ScoredItem, TaskScore

__all__ = [
    "FORMAT_ADHERENCE",
    "LONGHEALTH_SUBTASKS",
    "TASKS",
    "LevelScores",
    "ScoredItem",
    "TaskScore",
    "add_extras",
    "aggregate",
    "aggregate_by_subtask",
    "item_metrics",
    "level_scores",
    "paper_metrics",
    "score_batch",
    "score_item",
]


def __getattr__(name: str) -> tuple[str, ...]:
    # ``TASKS``: the registered tasks, looked up when asked for (the task modules import this package).
    if name == "TASKS":
        from pipeline.tasks.registry import task_names

        return task_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
