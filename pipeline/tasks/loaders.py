"""Readers for the datasets' original file formats. Each returns validated rows or raises DataError naming
the file, the line (or row/index) and the field, and what to do about it."""

from __future__ import annotations

import csv
import functools
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import DataError

# -- row models --------------------------------------------------------------------------------------------


_RowT = TypeVar("_RowT", bound=BaseModel)
_Loaded = TypeVar("_Loaded")


def load_once(loader: Callable[[Path], _Loaded], path: Path) -> _Loaded:
    """``loader(path)``, parsed once per version of the file: an eval checks, counts and expands each task,
    and a dataset (an xlsx, a LongHealth JSON) should be read once for all three. Do not mutate the result."""
    stat = path.stat()
    return _load_cached(loader, str(path.resolve()), stat.st_mtime_ns, stat.st_size)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=16)
def _load_cached(loader: Callable[[Path], Any], resolved: str, mtime_ns: int, size: int) -> Any:
    return loader(Path(resolved))


class _Row(BaseModel):
    # Real files carry more fields than the prompts use (parses, descriptions...): keep them, ignore them.
    model_config = ConfigDict(extra="allow", frozen=True)


def _id_to_str(value: Any) -> Any:
    # Ids are numbers in some exports (hadm_id) and strings in others; both name the same row.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class MedNLIRow(_Row):
    pairID: str
    gold_label: Literal["entailment", "neutral", "contradiction"]
    sentence1: str
    sentence2: str


class MeQSumRow(_Row):
    File: str
    CHQ: str = Field(min_length=1)
    Summary: str = Field(min_length=1)

    _ids = field_validator("File", mode="before")(_id_to_str)


class ProbSumRow(_Row):
    Subjectives: str
    Assessment: str
    Summary: str = Field(min_length=1)


class MeDiSumQARow(_Row):
    Question: str = Field(min_length=1)
    Answer: str = Field(min_length=1)
    discharge_summary: str | None = None
    without_discharge_summary: str | None = None
    note_id: str | None = None
    hadm_id: str | None = None

    _ids = field_validator("note_id", "hadm_id", mode="before")(_id_to_str)


class ICDCode(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    code: str = Field(min_length=1)
    description: str = ""


class MeDiSumCodeRow(_Row):
    text: str = Field(min_length=1)
    icd_codes: list[ICDCode]  # may be empty: the generator keeps notes whose codes all failed icd10.find
    hadm_id: str | None = None

    _ids = field_validator("hadm_id", mode="before")(_id_to_str)


class LongHealthQuestion(_Row):
    No: int | str
    question: str
    answer_a: str
    answer_b: str
    answer_c: str
    answer_d: str
    answer_e: str
    correct: str
    answer_location: dict[str, Any]


class LongHealthPatient(_Row):
    name: str = ""
    texts: dict[str, str] = Field(min_length=1)
    questions: list[LongHealthQuestion]


# -- errors ------------------------------------------------------------------------------------------------


def validation_error(path: Path, where: str, exc: ValidationError, fix: str) -> DataError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(row)"
    return DataError(f"{path}: {where}: field '{field}': {first['msg']}; {fix}")


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path} is empty; download the file again (see docs/tasks.md)")
    return text


# -- JSON / JSONL ------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (``line N``, object) for each non-blank line."""
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
        yield f"line {number}", obj


def read_json_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A JSON list of objects or JSONL (the CLUE generators write JSONL, its evaluators read a list)."""
    text = _read_text(path)
    if not text.lstrip().startswith("["):
        yield from read_jsonl(path)
        return
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not items:
        raise DataError(f"{path} holds an empty list; download or regenerate the dataset")
    for index, obj in enumerate(items):
        if not isinstance(obj, dict):
            raise DataError(f"{path}: item [{index}]: expected a JSON object, got {type(obj).__name__}")
        yield f"item [{index}]", obj


def _validated(path: Path, records: Iterable[tuple[str, Any]], model: type[_RowT], hint: str) -> list[_RowT]:
    """Each record validated by ``model``; the first bad one names the file, the record and the field."""
    rows: list[_RowT] = []
    for where, obj in records:
        try:
            rows.append(model.model_validate(obj))
        except ValidationError as exc:
            raise validation_error(path, where, exc, hint) from None
    return rows


def load_mednli(path: Path) -> list[MedNLIRow]:
    hint = "each line needs pairID, sentence1, sentence2 and a lowercase gold_label"
    return _validated(path, read_jsonl(path), MedNLIRow, hint)


def load_medisumqa(path: Path) -> list[MeDiSumQARow]:
    rows: list[MeDiSumQARow] = []
    for where, obj in read_json_records(path):
        (row,) = _validated(
            path, [(where, obj)], MeDiSumQARow, "each record needs Question, Answer and the letter"
        )
        if row.discharge_summary is None and row.without_discharge_summary is None:
            raise DataError(
                f"{path}: {where}: field 'discharge_summary': missing; each record needs the letter as "
                "'discharge_summary' (HEAD) or 'without_discharge_summary' (v3)"
            )
        rows.append(row)
    return rows


def load_medisumcode(path: Path) -> list[MeDiSumCodeRow]:
    hint = "each record needs hadm_id, text and icd_codes: [{code, description}]"
    return _validated(path, read_json_records(path), MeDiSumCodeRow, hint)


def load_longhealth(path: Path) -> dict[str, LongHealthPatient]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a JSON object keyed by patient id (patient_01, ...)")
    patients: dict[str, LongHealthPatient] = {}
    for patient_id, obj in data.items():
        try:
            patient = LongHealthPatient.model_validate(obj)
        except ValidationError as exc:
            raise validation_error(
                path, f"patient {patient_id!r}", exc, "see the LongHealth schema in docs/tasks.md"
            ) from None
        for index, question in enumerate(patient.questions):
            unknown = [t for t in question.answer_location if t not in patient.texts]
            if unknown:
                raise DataError(
                    f"{path}: patient {patient_id!r}: field 'questions.{index}.answer_location': names texts "
                    f"{unknown} that the patient does not have; fix the text ids"
                )
        patients[patient_id] = patient
    return patients


# -- spreadsheets ------------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    # pandas (which CLUE used) reads integral numbers as int; keep that spelling for ids.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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
            record = {k: _cell(values[i]) if i < len(values) else None for k, i in columns.items()}
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


def load_probsum(path: Path) -> list[ProbSumRow]:
    _read_text(path)  # empty / not UTF-8
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
