"""`medsweep data check` and `medsweep data fetch` (against a local HTTP server on 127.0.0.1, never the
internet)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.cli import main
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
    longhealth = (DEMO / "longhealth" / "benchmark_v5.json").read_bytes()
    _serve(root, "longhealth", "benchmark_v5.json", longhealth)
    out_dir = tmp_path / "data"
    assert main(["data", "fetch", "--data-dir", str(out_dir), "--mirror", url]) == 0
    printed = capsys.readouterr().out
    assert "sha256 abedd939" in printed and "verified" in printed
    assert hashlib.sha256(longhealth).hexdigest() in printed and "no checksum is pinned" in printed
    assert (out_dir / "meqsum" / MEQSUM).read_bytes() == REAL_MEQSUM.read_bytes()
    assert (out_dir / "longhealth" / "benchmark_v5.json").read_bytes() == longhealth
    # A second run finds both files and downloads nothing.
    shutil.rmtree(root)
    assert main(["data", "fetch", "--data-dir", str(out_dir), "--mirror", url]) == 0
    assert "already there" in capsys.readouterr().out


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
    assert "does not match the pinned abedd939" in capsys.readouterr().err
    assert not (out_dir / "meqsum" / MEQSUM).exists()
    assert list((out_dir / "meqsum").iterdir()) == []  # no partial file left


def test_fetch_reports_http_errors(
    mirror: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = mirror
    assert main(["data", "fetch", "--data-dir", str(tmp_path / "d"), "--mirror", url]) == 2
    assert "answered HTTP 404" in capsys.readouterr().err
