"""LongHealth: the paper's ``The correct answer is X:`` rule and a lenient letter/option-text reading.

The reference is the gold letter (``"C"``) or a mapping ``{"answer": "C", "options": {"A": text, ...}}``;
the option texts are optional and only feed the lenient option-text match."""

from __future__ import annotations

import re

from pipeline.scoring.answers import ChoiceAnswer, is_valid
from pipeline.scoring.choice import Gold, gold_choice, lenient_choice
from pipeline.scoring.types import ScoredItem

SUBTASKS: tuple[str, ...] = ("task1", "task2", "task3")
# Task 1 offers options A–E; Tasks 2/3 add F ("Question cannot be answered with provided documents").
_LETTERS: dict[str, str] = {"task1": "ABCDE", "task2": "ABCDEF", "task3": "ABCDEF", "": "ABCDEF"}

_PAPER = re.compile(r"The correct answer is (\w):")


def normalise_gold(reference: object, subtask: str) -> Gold:
    """The gold letter (upper case) and option texts; ``ValueError`` if unusable."""
    if subtask not in _LETTERS:
        raise ValueError(f"LongHealth subtask must be one of {', '.join(SUBTASKS)}, got {subtask!r}")
    return gold_choice(reference, _LETTERS[subtask], "LongHealth", subtask or "reference")


def paper_choice(output: str) -> str:
    """The paper's parse: the first ``The correct answer is (\\w):`` capture, or ``""``."""
    match = _PAPER.search(output)
    return match.group(1) if match else ""


def score(output: str, reference: object, subtask: str) -> ScoredItem:
    gold = normalise_gold(reference, subtask)
    letters = _LETTERS[subtask]
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
