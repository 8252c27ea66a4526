"""MedQA-USMLE, 4 options (Jin et al. 2021; public, github.com/jind11/MedQA): a licensing-exam question and
four options A-D. Not a CLUE task: its accuracy is reported beside the Level-1/Level-2 scores, never in them
(the paper argues that such exams overstate what biomedical training buys).

Data: ``medqa/test.jsonl`` in the public 4-option JSONL schema; each line needs ``question``, ``options``
{A..D} and ``answer_idx``, other fields (``answer``, ``meta_info``...) are ignored. The model is asked for
``The correct answer is X.``; the strict parse (the contract of ``medsweep score``) is the first match of the
case-sensitive regex ``The correct answer is \\(?([A-D])\\b``. The reference is the gold letter (``"C"``) or
``{"answer": "C", "options": {"A": text, ...}}``; the option texts only feed the lenient reading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from pipeline.errors import DataError
from pipeline.scoring.answers import ChoiceAnswer, is_valid
from pipeline.scoring.choice import gold_choice, json_answer, lenient_choice
from pipeline.scoring.types import ScoredItem
from pipeline.tasks.fewshot import FewShotTask, Item, unique_ids
from pipeline.tasks.loaders import Row, read_jsonl
from pipeline.tasks.registry import TaskDef, register

LETTERS = "ABCD"
STRICT = re.compile(r"The correct answer is \(?([A-D])\b")

# -- data --------------------------------------------------------------------------------------------------


class MedQARow(Row):
    question: str = Field(min_length=1)
    options: dict[str, str]
    answer_idx: Literal["A", "B", "C", "D"]

    @field_validator("options")
    @classmethod
    def _four_options(cls, options: dict[str, str]) -> dict[str, str]:
        if sorted(options) != list(LETTERS):
            raise ValueError(f"must map exactly A, B, C and D to the option texts (got {sorted(options)})")
        if not all(text.strip() for text in options.values()):
            raise ValueError("every option needs its text")
        return options


def load_medqa(path: Path) -> list[MedQARow]:
    rows: list[MedQARow] = []
    for where, obj in read_jsonl(path):
        line = where.removeprefix("line ")
        try:
            rows.append(MedQARow.model_validate(obj))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(row)"
            raise DataError(
                f"{path}:{line}: field '{field}': {first['msg']}; each line needs question, options {{A..D}} "
                "and answer_idx (the MedQA-USMLE 4-option schema)"
            ) from None
    return rows


def options_text(options: Mapping[str, str]) -> str:
    """The options as the prompt lists them: ``A. text`` per line."""
    return "\n".join(f"{letter}. {options[letter]}" for letter in LETTERS)


def items(path: Path) -> list[Item]:
    rows = load_medqa(path)
    ids = unique_ids([None] * len(rows))  # the public files have no ids: the row's index
    return [
        Item(
            item_id,
            {"question": row.question, "options": options_text(row.options), "answer_idx": row.answer_idx},
            {"answer": row.answer_idx, "options": dict(row.options)},
        )
        for item_id, row in zip(ids, rows, strict=True)
    ]


# -- scoring -----------------------------------------------------------------------------------------------


def strict_choice(output: str) -> str:
    """The strict parse: the first ``The correct answer is X`` (``(X)`` too) capture, or ``""``."""
    match = STRICT.search(output)
    return match.group(1) if match else ""


def score(output: str, reference: Any, subtask: str = "") -> ScoredItem:
    gold = gold_choice(reference, LETTERS, "MedQA")
    strict = strict_choice(output)
    # Lenient: any case, a lone letter, "(C)", or the one option whose text the answer contains.
    lenient = lenient_choice(output, strict, LETTERS, gold.options)
    return ScoredItem(
        parsed={"strict": strict or None, "lenient": lenient},
        strict_valid=bool(strict) and is_valid(ChoiceAnswer, letter=strict),
        metrics={
            "accuracy": 100.0 if strict == gold.letter else 0.0,
            "accuracy_lenient": 100.0 if lenient == gold.letter else 0.0,
        },
    )


TASK = register(
    TaskDef(
        name="medqa",
        order=70,
        requests=FewShotTask("medqa", items),
        score=score,
        metrics=("accuracy",),
        structured=lambda output: f"The correct answer is {json_answer(output)}.",
        reference='the gold letter ("C") or {"answer": "C", "options": {"A": "...", ...}}',
    )
)
