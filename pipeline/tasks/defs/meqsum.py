"""MeQSum (Ben Abacha & Demner-Fushman 2019; public, CC BY 4.0): summarise a consumer health question.
The reference is the reference summary."""

from __future__ import annotations

import zipfile
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from pipeline.errors import DataError
from pipeline.scoring.cleanup import strip_continuation
from pipeline.scoring.summaries import SummaryText
from pipeline.tasks.fewshot import FewShotTask, Item, unique_ids
from pipeline.tasks.loaders import Row, cell, id_to_str, validation_error
from pipeline.tasks.registry import TaskDef, register, study_metrics


class MeQSumRow(Row):
    File: str
    CHQ: str = Field(min_length=1)
    Summary: str = Field(min_length=1)

    _ids = field_validator("File", mode="before")(id_to_str)


def load_meqsum(path: Path) -> list[MeQSumRow]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; download the file again (medsweep data fetch)")
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(f"{path}: not a readable .xlsx file ({exc}); download it again") from None
    try:
        sheet = workbook.worksheets[0]
        lines = sheet.iter_rows(values_only=True)
        header = next(lines, None)
        if header is None:
            raise DataError(f"{path} is empty; download the file again (medsweep data fetch)")
        names = [str(h).strip() if h is not None else "" for h in header]
        columns: dict[str, int] = {}
        for required in ("File", "CHQ", "Summary"):
            if required not in names:
                found = [n for n in names if n]
                raise DataError(
                    f"{path}: sheet {sheet.title!r} has no column {required!r} (found {found}); "
                    "the first row must name the columns File, CHQ and Summary"
                )
            columns[required] = names.index(required)
        rows: list[MeQSumRow] = []
        for number, values in enumerate(lines, start=2):
            record = {k: cell(values[i]) if i < len(values) else None for k, i in columns.items()}
            if all(v is None for v in record.values()):
                continue
            try:
                rows.append(MeQSumRow.model_validate(record))
            except ValidationError as exc:
                raise validation_error(
                    path, f"row {number}", exc, "File, CHQ and Summary must be filled in"
                ) from None
    finally:
        workbook.close()
    if not rows:
        raise DataError(f"{path} has a header but no rows; download the file again")
    return rows


def items(path: Path) -> list[Item]:
    rows = load_meqsum(path)
    ids = unique_ids([r.File for r in rows])
    return [Item(i, r.model_dump(), r.Summary) for i, r in zip(ids, rows, strict=True)]


_TEXT = SummaryText()

TASK = register(
    TaskDef(
        name="meqsum",
        order=20,
        requests=FewShotTask("meqsum", items),
        score=_TEXT.score,
        metrics=study_metrics("meqsum"),
        clean=strip_continuation,
        text_pair=_TEXT.pair,
        warm_up=_TEXT.warm_up,
        umls_pair=_TEXT.for_umls,
        reference="the reference summary (text)",
    )
)
