"""Readers for the datasets' original file formats. Each returns validated rows or raises DataError naming
the file, the line (or row/index) and the field, and what to do about it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

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


class Row(BaseModel):
    # Real files carry more fields than the prompts use (parses, descriptions...): keep them, ignore them.
    model_config = ConfigDict(extra="allow", frozen=True)


def id_to_str(value: Any) -> Any:
    # Ids are numbers in some exports (hadm_id) and strings in others; both name the same row.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# -- errors ------------------------------------------------------------------------------------------------


def validation_error(path: Path, where: str, exc: ValidationError, fix: str) -> DataError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(row)"
    return DataError(f"{path}: {where}: field '{field}': {first['msg']}; {fix}")


def read_text(path: Path) -> str:
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
    for number, line in enumerate(read_text(path).splitlines(), start=1):
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
    text = read_text(path)
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


def validated(path: Path, records: Iterable[tuple[str, Any]], model: type[_RowT], hint: str) -> list[_RowT]:
    """Each record validated by ``model``; the first bad one names the file, the record and the field."""
    rows: list[_RowT] = []
    for where, obj in records:
        try:
            rows.append(model.model_validate(obj))
        except ValidationError as exc:
            raise validation_error(path, where, exc, hint) from None
    return rows


# -- spreadsheets ------------------------------------------------------------------------------------------


def cell(value: Any) -> Any:
    # pandas (which CLUE used) reads integral numbers as int; keep that spelling for ids.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
