"""LongHealth (Adams et al. 2024; public): multiple-choice questions over a patient's documents, in three
sub-tasks. The requests are built by ``task`` (this package); the answers are read here with the paper's
``The correct answer is X:`` rule and a lenient letter/option-text reading.

The reference is the gold letter (``"C"``) or a mapping ``{"answer": "C", "options": {"A": text, ...}}``;
the option texts are optional and only feed the lenient option-text match."""

from __future__ import annotations

import re

from pipeline.scoring.answers import ChoiceAnswer, is_valid
from pipeline.scoring.choice import Gold, gold_choice, json_answer, lenient_choice
from pipeline.scoring.types import ScoredItem
from pipeline.tasks.defs.longhealth.task import SUBTASKS, LongHealthTask, option_letters
from pipeline.tasks.registry import TaskDef, register, study_metrics

_PAPER = re.compile(r"The correct answer is (\w):")


def _letters(subtask: str) -> str:
    if subtask not in ("", *SUBTASKS):
        raise ValueError(f"LongHealth subtask must be one of {', '.join(SUBTASKS)}, got {subtask!r}")
    return option_letters(subtask)  # no sub-task: any of A-F


def normalise_gold(reference: object, subtask: str) -> Gold:
    """The gold letter (upper case) and option texts; ``ValueError`` if unusable."""
    return gold_choice(reference, _letters(subtask), "LongHealth", subtask or "reference")


def paper_choice(output: str) -> str:
    """The paper's parse: the first ``The correct answer is (\\w):`` capture, or ``""``."""
    match = _PAPER.search(output)
    return match.group(1) if match else ""


def score(output: str, reference: object, subtask: str) -> ScoredItem:
    gold = normalise_gold(reference, subtask)
    letters = _letters(subtask)
    strict = paper_choice(output)
    lenient = lenient_choice(output, strict, letters, gold.options)
    # Adherence: the paper's regex matched and captured one of this sub-task's option letters.
    valid = bool(strict) and strict in letters and is_valid(ChoiceAnswer, letter=strict)
    return ScoredItem(
        parsed={"strict": strict or None, "lenient": lenient},
        strict_valid=valid,
        metrics={
            # Paper rule: case-sensitive comparison of the first capture with the gold letter.
            "accuracy": 100.0 if strict == gold.letter else 0.0,
            "accuracy_lenient": 100.0 if lenient == gold.letter else 0.0,
        },
    )


TASK = register(
    TaskDef(
        name="longhealth",
        order=40,
        requests=LongHealthTask(),
        score=score,
        metrics=study_metrics("longhealth"),
        item_metrics=("accuracy",),  # each sub-task's items carry plain accuracy
        subtasks=SUBTASKS,
        structured=lambda output: f"The correct answer is {json_answer(output)}:",
        reference='the gold letter ("C") or {"answer": "C", "options": {"A": "...", ...}}',
    )
)
