"""LongHealth (Adams et al. 2024; public): multiple-choice questions over a patient's documents, in three
sub-tasks; the requests are built by ``pipeline.tasks.longhealth``, the answers read by
``pipeline.scoring.longhealth``. The reference is the gold letter (``"C"``) or ``{"answer": "C", "options":
{...}}``."""

from __future__ import annotations

from pipeline.scoring import longhealth
from pipeline.scoring.choice import json_answer
from pipeline.tasks.longhealth import SUBTASKS, LongHealthTask
from pipeline.tasks.registry import TaskDef, register, study_metrics

TASK = register(
    TaskDef(
        name="longhealth",
        order=40,
        requests=LongHealthTask(),
        score=longhealth.score,
        metrics=study_metrics("longhealth"),
        item_metrics=("accuracy",),  # each sub-task's items carry plain accuracy
        subtasks=SUBTASKS,
        structured=lambda output: f"The correct answer is {json_answer(output)}:",
        reference='the gold letter ("C") or {"answer": "C", "options": {"A": "...", ...}}',
    )
)
