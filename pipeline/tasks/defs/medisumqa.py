"""MeDiSumQA (Dada et al.; credentialed, generated from MIMIC-IV): answer a patient's question about their
discharge letter. The reference is the reference answer."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from pipeline.errors import DataError
from pipeline.scoring.summaries import SummaryText
from pipeline.tasks.fewshot import FewShotTask, Item, unique_ids
from pipeline.tasks.loaders import Row, id_to_str, read_json_records, validated
from pipeline.tasks.registry import TaskDef, register, study_metrics


class MeDiSumQARow(Row):
    Question: str = Field(min_length=1)
    Answer: str = Field(min_length=1)
    discharge_summary: str | None = None
    without_discharge_summary: str | None = None
    note_id: str | None = None
    hadm_id: str | None = None

    _ids = field_validator("note_id", "hadm_id", mode="before")(id_to_str)


def load_medisumqa(path: Path) -> list[MeDiSumQARow]:
    rows: list[MeDiSumQARow] = []
    for where, obj in read_json_records(path):
        (row,) = validated(
            path, [(where, obj)], MeDiSumQARow, "each record needs Question, Answer and the letter"
        )
        if row.discharge_summary is None and row.without_discharge_summary is None:
            raise DataError(
                f"{path}: {where}: field 'discharge_summary': missing; each record needs the letter as "
                "'discharge_summary' (HEAD) or 'without_discharge_summary' (v3)"
            )
        rows.append(row)
    return rows


def items(path: Path) -> list[Item]:
    rows = load_medisumqa(path)
    ids = unique_ids([r.note_id or r.hadm_id for r in rows])
    items: list[Item] = []
    for item_id, row in zip(ids, rows, strict=True):
        fields = row.model_dump()
        # v3 templates say {without_discharge_summary}, HEAD's {discharge_summary}: offer both spellings.
        letter = (
            row.without_discharge_summary
            if row.without_discharge_summary is not None
            else row.discharge_summary
        )
        fields["without_discharge_summary"] = letter
        if row.discharge_summary is None:
            fields["discharge_summary"] = letter
        items.append(Item(item_id, fields, row.Answer))
    return items


_TEXT = SummaryText(strip=True)  # v3 stripped the answer (and did not remove self-continuations)

TASK = register(
    TaskDef(
        name="medisumqa",
        order=50,
        requests=FewShotTask("medisumqa", items),
        score=_TEXT.score,
        metrics=study_metrics("medisumqa"),
        text_pair=_TEXT.pair,
        warm_up=_TEXT.warm_up,
        umls_pair=_TEXT.for_umls,
        reference="the reference answer (text)",
    )
)
