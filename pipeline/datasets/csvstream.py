"""Stream the rows of a big ``.csv`` or ``.csv.gz`` file (MIMIC-IV's), one at a time, with the columns found
by their header names and every error one line naming the file, the line and the column.

The text is read as Python's ``open(path)`` reads it on a UTF-8 system (UTF-8, universal newlines: a quoted
``\\r\\n`` inside a field becomes ``\\n``), which is how TIO-IKIM/CLUE's MeDiSumCode generator read
``discharge.csv``; a gzip file (found by its magic bytes, whatever its name) is decompressed on the fly.
The csv module's default field size limit (131,072 characters) is kept, as the generator had it."""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
_PROGRESS_EVERY = 4096  # rows between two progress callbacks

Progress = Callable[[int, int], None]
"""``(bytes read so far, file size)``, both of the file on disk (compressed for a .gz)."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # the line the record starts on (1 = the header)
    fields: list[str]


class CsvRows:
    """The data rows of one open file; ``index[name]`` is a required column's position."""

    def __init__(
        self,
        path: Path,
        raw: BinaryIO,
        size: int,
        required: Sequence[str],
        hint: str,
        progress: Progress | None,
    ) -> None:
        self.path = path
        self._raw = raw
        self._size = size
        self._hint = hint
        self._progress = progress
        binary: BinaryIO = gzip.GzipFile(fileobj=raw) if _is_gzip(raw) else raw  # type: ignore[assignment]
        self._text = io.TextIOWrapper(binary, encoding="utf-8", newline=None)
        self._reader = csv.reader(self._text)
        header = self._next_or_none()
        if header is None:
            raise DataError(f"{path}: the file is empty; {hint}")
        self.header = header
        missing = [name for name in required if name not in header]
        if missing:
            raise DataError(f"{path}:1: no column {missing[0]!r} (found {header}); {hint}")
        self.index = {name: header.index(name) for name in required}
        self._need = max(self.index.values(), default=-1)
        self._name_at = {position: name for name, position in self.index.items()}

    def _next_or_none(self) -> list[str] | None:
        line = self._reader.line_num + 1
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise DataError(f"{self.path}: line {line}: unreadable CSV ({exc}); {self._hint}") from None
        except UnicodeDecodeError as exc:
            # The text is decoded a block at a time, ahead of the rows: find the line on a second read.
            line = _first_bad_line(self.path) or line
            raise DataError(
                f"{self.path}: line {line}: not UTF-8 text ({exc.reason}); {self._hint}"
            ) from None
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise DataError(
                f"{self.path}: line {line}: cannot read the file ({type(exc).__name__}: {exc}); "
                "it is damaged or cut short: download it again"
            ) from None

    def __iter__(self) -> Iterator[Row]:
        count = 0
        while True:
            start = self._reader.line_num + 1
            fields = self._next_or_none()
            if fields is None:
                break
            if len(fields) <= self._need:
                name = self._name_at[min(p for p in self._name_at if p >= len(fields))]
                raise DataError(
                    f"{self.path}: line {start}: column {name!r} is missing (the row has {len(fields)} "
                    f"field(s), the header {len(self.header)}); {self._hint}"
                )
            yield Row(start, fields)
            count += 1
            if self._progress is not None and count % _PROGRESS_EVERY == 0:
                self._progress(self._raw.tell(), self._size)
        if self._progress is not None:
            self._progress(self._size, self._size)

    def error(self, row: Row, column: str, problem: str) -> DataError:
        """A one-line error about one field of ``row``."""
        return DataError(f"{self.path}: line {row.line}: column {column!r}: {problem}; {self._hint}")


def _is_gzip(raw: BinaryIO) -> bool:
    head = raw.read(2)
    raw.seek(0)
    return head == GZIP_MAGIC


def _first_bad_line(path: Path) -> int | None:
    """The number of the first line of ``path`` that is not UTF-8 (only read after a decode error)."""
    with path.open("rb") as raw:
        binary: BinaryIO = gzip.GzipFile(fileobj=raw) if _is_gzip(raw) else raw  # type: ignore[assignment]
        try:
            for number, line in enumerate(binary, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
        except (OSError, EOFError, zlib.error):
            return None
    return None


@contextmanager
def open_rows(
    path: Path, required: Sequence[str], hint: str, progress: Progress | None = None
) -> Iterator[CsvRows]:
    """Open ``path`` and check its header names every column of ``required``."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; {hint}") from None
    except OSError as exc:
        raise DataError(f"cannot open {path} ({exc.strerror}); {hint}") from None
    with raw:
        yield CsvRows(path, raw, os.fstat(raw.fileno()).st_size, required, hint, progress)
