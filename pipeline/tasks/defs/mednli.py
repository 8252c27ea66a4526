"""MedNLI (Romanov & Shivade 2018; credentialed, PhysioNet): does the hypothesis follow from the premise?
The reference is the lowercase gold label (``"entailment"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.scoring import mednli
from pipeline.scoring.cleanup import strip_continuation
from pipeline.tasks.fewshot import FewShotTask, Item, unique_ids
from pipeline.tasks.loaders import Row, read_jsonl, validated
from pipeline.tasks.registry import TaskDef, register, study_metrics


class MedNLIRow(Row):
    pairID: str
    gold_label: Literal["entailment", "neutral", "contradiction"]
    sentence1: str
    sentence2: str


def load_mednli(path: Path) -> list[MedNLIRow]:
    hint = "each line needs pairID, sentence1, sentence2 and a lowercase gold_label"
    return validated(path, read_jsonl(path), MedNLIRow, hint)


def items(path: Path) -> list[Item]:
    rows = load_mednli(path)
    ids = unique_ids([r.pairID for r in rows])
    return [Item(i, r.model_dump(), r.gold_label) for i, r in zip(ids, rows, strict=True)]


class _Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str


TASK = register(
    TaskDef(
        name="mednli",
        order=10,
        requests=FewShotTask("mednli", items),
        score=mednli.score,
        metrics=study_metrics("mednli"),
        clean=strip_continuation,
        structured=lambda output: _Label.model_validate_json(output).label,
        reference='the gold label: "entailment", "neutral" or "contradiction"',
    )
)
