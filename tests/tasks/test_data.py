"""`medsweep data check` and `medsweep data fetch` (against a local HTTP server on 127.0.0.1, never the
internet)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.support.datasets import write_longhealth_full, write_medqa_full
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.paths import REAL_MEQSUM

MEQSUM = "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_check_demo_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "--data-dir", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "mednli       ok" in out and "12 rows" in out


def test_check_json_reports_missing_and_malformed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mednli").mkdir()
    (tmp_path / "mednli" / "mli_test_v1.jsonl").write_text("{broken\n")
    assert main(["data", "check", "--data-dir", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)["tasks"]
    assert report["mednli"]["state"] == "malformed" and ":1: not valid JSON" in report["mednli"]["reason"]
    assert report["meqsum"]["state"] == "missing" and report["meqsum"]["rows"] == 0


def _serve(root: Path, task: str, name: str, data: bytes) -> None:
    (root / task).mkdir(parents=True, exist_ok=True)
    (root / task / name).write_bytes(data)


@pytest.mark.skipif(not REAL_MEQSUM.is_file(), reason="real MeQSum file not present")
def test_fetch_verifies_and_writes(
    mirror: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, root = mirror
    _serve(root, "meqsum", MEQSUM, REAL_MEQSUM.read_bytes())
    # LongHealth and MedQA: synthetic files of the real shapes (20 x 20 questions, 1,273 questions).
    longhealth = write_longhealth_full(
        tmp_path / "src", DEMO / "longhealth" / "benchmark_v5.json"
    ).read_bytes()
    medqa = write_medqa_full(tmp_path / "src", DEMO / "medqa" / "test.jsonl").read_bytes()
    _serve(root, "longhealth", "benchmark_v5.json", longhealth)
    _serve(root, "medqa", "test.jsonl", medqa)
    out_dir = tmp_path / "data"
    assert main(["data", "fetch", "--data-dir", str(out_dir), "--mirror", url]) == 0
    printed = capsys.readouterr().out
    assert "sha256 abedd939" in printed and "verified; MeQSum (abachaa/MeQSum at 51e36cf" in printed
    assert hashlib.sha256(longhealth).hexdigest() in printed and "no checksum is pinned" in printed
    assert "LongHealth benchmark_v5 (20 patients x 20 questions) (by shape)" in printed
    assert hashlib.sha256(medqa).hexdigest() in printed and "1,273 questions) (by shape)" in printed
    assert (out_dir / "meqsum" / MEQSUM).read_bytes() == REAL_MEQSUM.read_bytes()
    assert (out_dir / "longhealth" / "benchmark_v5.json").read_bytes() == longhealth
    assert (out_dir / "medqa" / "test.jsonl").read_bytes() == medqa
    assert sorted(p.name for p in out_dir.iterdir()) == ["longhealth", "medqa", "meqsum"]  # no staging left
    # A second run finds the files and downloads nothing.
    shutil.rmtree(root)
    assert main(["data", "fetch", "--data-dir", str(out_dir), "--mirror", url]) == 0
    assert capsys.readouterr().out.count("already there") == 3


def test_fetch_refuses_a_file_of_an_unknown_shape(
    mirror: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file with no pinned checksum is kept only if it is a known version: 1,000 MedQA questions are not."""
    url, root = mirror
    medqa = write_medqa_full(tmp_path / "src", DEMO / "medqa" / "test.jsonl", rows=1000).read_bytes()
    _serve(root, "medqa", "test.jsonl", medqa)
    out_dir = tmp_path / "data"
    assert main(["data", "fetch", "--data-dir", str(out_dir), "--mirror", url]) == 2
    lines = capsys.readouterr().err.splitlines()  # one line per dataset: the other two are not served
    assert [line for line in lines if "medqa" in line] == [
        f"error: {url}/medqa/test.jsonl: unknown version (1000 rows; known: 1273), not the expected dataset; "
        "the file was not saved"
    ]
    assert [p.name for p in out_dir.iterdir()] == []  # nothing kept, no staging folder left


def test_fetch_rejects_a_checksum_mismatch(
    mirror: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, root = mirror
    _serve(root, "meqsum", MEQSUM, b"not the real file")
    monkeypatch.setenv("MEDSWEEP_DATA_MIRROR", url)
    out_dir = tmp_path / "data"
    assert main(["data", "fetch", "--data-dir", str(out_dir)]) == 2
    meqsum = [line for line in capsys.readouterr().err.splitlines() if "/meqsum/" in line]
    assert len(meqsum) == 1 and "does not match the pinned abedd939" in meqsum[0]  # one line
    assert list(out_dir.rglob("*")) == []  # no partial file, no staging folder left


def test_fetch_reports_http_errors(
    mirror: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = mirror
    assert main(["data", "fetch", "--data-dir", str(tmp_path / "d"), "--mirror", url]) == 2
    assert "answered HTTP 404" in capsys.readouterr().err


def _medisumqa(folder: Path, rows: int) -> None:
    """A SYNTHETIC MeDiSumQA file of ``rows`` pairs (made-up letters; only its shape matters here)."""
    path = folder / "medisumqa" / "MeDiSumQA.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"discharge_summary": "SYNTHETIC letter.", "Question": "Why?", "Answer": "Because."}
    path.write_text(json.dumps([{**record, "note_id": f"s{i}"} for i in range(rows)]))


def _versions(folder: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    main(["data", "check", "--data-dir", str(folder), "--json"])
    tasks: dict[str, dict[str, object]] = json.loads(capsys.readouterr().out)["tasks"]
    return tasks


def test_check_names_the_medisumqa_version_by_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _medisumqa(tmp_path / "generated", 500)
    _medisumqa(tmp_path / "released", 416)
    _medisumqa(tmp_path / "subset", 37)
    generated = _versions(tmp_path / "generated", capsys)["medisumqa"]
    assert generated["version"] == "MeDiSumQA as the paper generated it (500 pairs)"
    assert generated["identified_by"] == "shape" and generated["comparable"] is True
    assert generated["published"] == [
        "medisumqa_rougeL",
        "medisumqa_rouge1",
        "medisumqa_rouge2",
        "medisumqa_bertscore_f1",
        "medisumqa_umls_f1",
    ]
    released = _versions(tmp_path / "released", capsys)["medisumqa"]
    assert "416 curated pairs" in str(released["version"]) and released["comparable"] is False
    assert released["published"] == [] and "not comparable" in str(released["note"])
    subset = _versions(tmp_path / "subset", capsys)["medisumqa"]
    assert subset["identified_by"] == "" and "unknown version (37 rows; known: 500, 416)" in str(
        subset["version"]
    )
    # The text form: one line for the version, one for what it can be compared with.
    assert main(["data", "check", "--data-dir", str(tmp_path / "generated")]) == 1  # other tasks missing
    out = capsys.readouterr().out
    assert "version: MeDiSumQA as the paper generated it (500 pairs) (by shape)" in out
    assert "compare with: CLUE v3" in out and "medisumqa_umls_f1" in out


@pytest.mark.skipif(not REAL_MEQSUM.is_file(), reason="real MeQSum file not present")
def test_check_names_meqsum_by_checksum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "real" / "meqsum").mkdir(parents=True)
    shutil.copy(REAL_MEQSUM, tmp_path / "real" / "meqsum" / MEQSUM)
    real = _versions(tmp_path / "real", capsys)["meqsum"]
    assert real["identified_by"] == "sha256" and real["comparable"] is True
    assert str(real["version"]).startswith("MeQSum (abachaa/MeQSum at 51e36cf")
    # The same 1,000 rows in another file (the workbook's parts zipped again): the shape, not the file.
    (tmp_path / "copy" / "meqsum").mkdir(parents=True)
    with (
        zipfile.ZipFile(REAL_MEQSUM) as original,
        zipfile.ZipFile(tmp_path / "copy" / "meqsum" / MEQSUM, "w", zipfile.ZIP_STORED) as copy_zip,
    ):
        for part in original.infolist():
            copy_zip.writestr(part.filename, original.read(part))
    copy = _versions(tmp_path / "copy", capsys)["meqsum"]
    assert copy["comparable"] is False and "1000 rows like MeQSum" in str(copy["version"])
    assert "is not its abedd939d501" in str(copy["version"])


def test_check_names_a_built_medisumcode_and_the_demo_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.mimic import write_mimic

    discharge, diagnoses = write_mimic(tmp_path / "mimic", notes=600)
    argv = ["data", "build", "medisumcode", "--discharge", str(discharge), "--diagnoses", str(diagnoses)]
    assert main([*argv, "--data-dir", str(tmp_path / "data")]) == 0
    capsys.readouterr()
    built = _versions(tmp_path / "data", capsys)["medisumcode"]
    assert built["rows"] == 500 and built["identified_by"] == "shape" and built["comparable"] is True
    assert built["published"] == ["medisumcode_icd_em_f1", "medisumcode_icd_ap_f1", "medisumcode_icd_valid"]
    demo = _versions(DEMO, capsys)["mednli"]
    assert demo["version"] == "synthetic demo data (demo_data/)" and demo["comparable"] is False


def test_fetch_into_an_unwritable_data_dir_is_one_line(
    mirror: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = mirror
    (tmp_path / "a-file").write_text("")
    assert main(["data", "fetch", "--data-dir", str(tmp_path / "a-file"), "--mirror", url]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pass a writable --data-dir" in err
