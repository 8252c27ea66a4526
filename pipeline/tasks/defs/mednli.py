"""MedNLI (Romanov & Shivade 2018; credentialed, PhysioNet): does the hypothesis follow from the premise?
The reference is the lowercase gold label (``"entailment"``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.scoring.answers import NliAnswer, is_valid
from pipeline.scoring.cleanup import strip_continuation
from pipeline.scoring.nli import gold_label, label_counts, lenient_label
from pipeline.scoring.types import ScoredItem
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


def score(output: str, reference: object, subtask: str = "") -> ScoredItem:
    """The paper's label-count rule and a lenient first-label reading; ``output`` as cleaned by ``clean``."""
    gold = gold_label(reference, "MedNLI")
    counts = label_counts(output)
    # Paper rule: correct iff the gold label occurs exactly once, whatever else the output says.
    correct = counts[gold] == 1
    # Adherence: the output names exactly one label, once (the prompt's "Valid answers are: ...").
    named = [label for label, count in counts.items() if count > 0]
    strict_label = named[0] if len(named) == 1 and counts[named[0]] == 1 else None
    valid = strict_label is not None and is_valid(NliAnswer, label=strict_label)
    lenient = lenient_label(output)
    return ScoredItem(
        parsed={"strict": strict_label, "lenient": lenient},
        strict_valid=valid,
        metrics={
            "accuracy": 100.0 if correct else 0.0,
            "accuracy_lenient": 100.0 if lenient == gold else 0.0,
        },
    )


class _Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str


TASK = register(
    TaskDef(
        name="mednli",
        order=10,
        requests=FewShotTask("mednli", items),
        score=score,
        metrics=study_metrics("mednli"),
        clean=strip_continuation,
        structured=lambda output: _Label.model_validate_json(output).label,
        reference='the gold label: "entailment", "neutral" or "contradiction"',
    )
)
