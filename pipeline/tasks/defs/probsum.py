"""Problem List Summarization (BioNLP 2023 task 1A; credentialed, PhysioNet): the patient's problems from a
progress note. The reference is the problem list with its ";" written as ", " (as both code versions did)."""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import Field, ValidationError

from pipeline.errors import DataError
from pipeline.scoring.cleanup import strip_continuation
from pipeline.scoring.summaries import SummaryText
from pipeline.tasks.fewshot import FewShotTask, Item, unique_ids
from pipeline.tasks.loaders import Row, read_text, validation_error
from pipeline.tasks.registry import TaskDef, register, study_metrics


class ProbSumRow(Row):
    Subjectives: str
    Assessment: str
    Summary: str = Field(min_length=1)


def load_probsum(path: Path) -> list[ProbSumRow]:
    read_text(path)  # empty / not UTF-8
    rows: list[ProbSumRow] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        names = reader.fieldnames or []
        for required in ("Subjectives", "Assessment", "Summary"):
            if required not in names:
                raise DataError(
                    f"{path}: no column {required!r} (found {list(names)}); the header must include "
                    "File ID, Subjectives, Objectives, Assessment, Summary"
                )
        for record in reader:
            # A row with more cells than the header puts the surplus under the key None: not a column.
            cells = {k: v for k, v in record.items() if k is not None}
            try:
                rows.append(ProbSumRow.model_validate(cells))
            except ValidationError as exc:
                raise validation_error(
                    path,
                    f"line {reader.line_num}",
                    exc,
                    "every row needs Subjectives, Assessment and Summary",
                ) from None
    if not rows:
        raise DataError(f"{path} has a header but no rows; download the file again")
    return rows


def items(path: Path) -> list[Item]:
    rows = load_probsum(path)
    items: list[Item] = []
    fields = [r.model_dump() for r in rows]
    ids = unique_ids([f.get("File ID") or None for f in fields])
    for item_id, row in zip(ids, fields, strict=True):
        # Both code versions turn the ";"-separated problem list into ", "-separated text.
        row["Summary"] = row["Summary"].replace(";", ", ")
        items.append(Item(item_id, row, row["Summary"]))
    return items


# v3: "capitalization is not uniform in the dataset", so ROUGE and BERTScore compare lower-cased text.
_TEXT = SummaryText(lower=True)

TASK = register(
    TaskDef(
        name="probsum",
        order=30,
        requests=FewShotTask("probsum", items),
        score=_TEXT.score,
        metrics=study_metrics("probsum"),
        clean=strip_continuation,
        text_pair=_TEXT.pair,
        warm_up=_TEXT.warm_up,
        umls_pair=_TEXT.for_umls,
        reference="the reference problem list (text)",
    )
)
