"""MeDiSumCode (Dada et al.; credentialed, generated from MIMIC-IV): the ICD-10 codes of a discharge letter.
The reference is the list of gold ICD-10 codes, in file order, not de-duplicated (no dots, as in MIMIC)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.scoring.answers import IcdAnswer, is_valid
from pipeline.scoring.cleanup import strip_continuation
from pipeline.scoring.icd import (
    code_metrics,
    gold_codes,
    lenient_codes,
    load_table,
    only_codes,
    paper_codes,
)
from pipeline.scoring.types import ScoredItem
from pipeline.tasks.fewshot import FewShotTask, Item, unique_ids
from pipeline.tasks.loaders import Row, id_to_str, read_json_records, validated
from pipeline.tasks.registry import TaskDef, register, study_metrics


class ICDCode(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    code: str = Field(min_length=1)
    description: str = ""


class MeDiSumCodeRow(Row):
    text: str = Field(min_length=1)
    icd_codes: list[ICDCode]  # may be empty: the generator keeps notes whose codes all failed icd10.find
    hadm_id: str | None = None

    _ids = field_validator("hadm_id", mode="before")(id_to_str)


def load_medisumcode(path: Path) -> list[MeDiSumCodeRow]:
    hint = "each record needs hadm_id, text and icd_codes: [{code, description}]"
    return validated(path, read_json_records(path), MeDiSumCodeRow, hint)


def items(path: Path) -> list[Item]:
    rows = load_medisumcode(path)
    ids = unique_ids([r.hadm_id for r in rows])
    items: list[Item] = []
    for item_id, row in zip(ids, rows, strict=True):
        codes = [c.code for c in row.icd_codes]
        fields = {"text": row.text, "codes": ", ".join(codes), "hadm_id": row.hadm_id}
        items.append(Item(item_id, fields, codes))
    return items


def score(output: str, reference: object, subtask: str = "") -> ScoredItem:
    """The paper's code regex (strict) and a lenient one; ``output`` as cleaned by ``clean``."""
    gold = gold_codes(reference, "MeDiSumCode")
    strict = paper_codes(output)
    lenient = lenient_codes(output)
    valid = bool(strict) and only_codes(output) and is_valid(IcdAnswer, codes=strict)
    return ScoredItem(
        parsed={"strict": strict, "lenient": lenient},
        strict_valid=valid,
        metrics=code_metrics(strict, gold) | code_metrics(lenient, gold, "_lenient"),
    )


class _Codes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codes: list[str]


TASK = register(
    TaskDef(
        name="medisumcode",
        order=60,
        requests=FewShotTask("medisumcode", items),
        score=score,
        metrics=study_metrics("medisumcode"),
        clean=strip_continuation,
        structured=lambda output: ", ".join(_Codes.model_validate_json(output).codes),
        reference='the list of gold ICD-10 codes (["I10", "E119"]) or one ", "-joined string',
        warm_up=load_table,
    )
)
