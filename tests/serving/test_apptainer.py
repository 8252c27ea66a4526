"""`medsweep serve --engine apptainer`: the exact command (Apptainer cannot be installed here), and a fake
``apptainer`` on PATH (tests/support/fake_apptainer.py) that records its argv and starts our fake OpenAI
server, so start, health, the state file and stop-by-process-group run for real."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.serving.image import pinned_image
from pipeline.serving.process import exit_reason
from pipeline.serving.state import read_state
from tests.support.paths import REPO_ROOT, TESTS_DIR
from tests.support.ports import free_port
from tests.support.servers import fake_server

MODEL = "meta-llama-3-8b-instruct"


@pytest.fixture
def fake_apptainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "apptainer"
    script = TESTS_DIR / "support" / "fake_apptainer.py"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={REPO_ROOT} exec {sys.executable} {script} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "apptainer.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin:/bin")  # no nvidia-smi, no docker
    monkeypatch.setenv("FAKE_APPTAINER_LOG", str(log))
    monkeypatch.setenv("MEDSWEEP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("VLLM_IMAGE", raising=False)
    return log


def _expected(tmp_path: Path, image_ref: str, port: int) -> list[str]:
    hf = tmp_path / "hf"
    return [
        "apptainer", "exec", "--nv", "--bind", f"{hf}:{hf}",
        "--env", "VLLM_NO_USAGE_STATS=1", "--env", "DO_NOT_TRACK=1", "--env", f"HF_HOME={hf}",
        image_ref, "vllm", "serve", "meta-llama/Meta-Llama-3-8B-Instruct", "--revision", "main",
        "--served-model-name", MODEL, "--tensor-parallel-size", "1", "--max-model-len", "8192",
        "--dtype", "bfloat16", "--generation-config", "vllm", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def test_dry_run_is_apptainer_exec_nv_on_the_pinned_image(
    fake_apptainer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--engine", "apptainer", "--model", MODEL, "--gpus", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out.strip()
    expected = " ".join(_expected(tmp_path, f"docker://{pinned_image()}", 8000))
    assert out == f"CUDA_VISIBLE_DEVICES=0 {expected}"
    assert not fake_apptainer.exists()  # nothing ran


def test_start_health_state_and_stop_by_process_group(fake_apptainer: Path, tmp_path: Path) -> None:
    sif = tmp_path / "vllm-openai.sif"
    sif.write_bytes(b"not really an image")
    port = free_port()
    args = ["serve", "--engine", "apptainer", "--model", MODEL, "--gpus", "0", "--port", str(port)]
    assert main([*args, "--image", str(sif), "--timeout", "60"]) == 0
    (recorded,) = [json.loads(line) for line in fake_apptainer.read_text().splitlines()]
    assert ["apptainer", *recorded] == _expected(tmp_path, str(sif), port)  # a local .sif as it is
    state = read_state()
    assert state is not None and state.engine == "apptainer" and state.pid and state.container_id is None
    assert exit_reason(state.pid) is None
    assert main(["stop"]) == 0
    assert exit_reason(state.pid) is not None and read_state() is None


def test_a_missing_sif_and_a_missing_apptainer_are_one_line(
    fake_apptainer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["serve", "--engine", "apptainer", "--model", MODEL, "--gpus", "0", "--port", str(free_port())]
    assert main([*args, "--image", str(tmp_path / "nope.sif")]) == 2
    assert capsys.readouterr().err == f"error: --image {tmp_path / 'nope.sif'}: no such .sif file\n"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: `apptainer` is not on PATH: load it") and err.count("\n") == 1
    assert read_state() is None


def _provenance(out: Path) -> dict[str, Any]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        (text,) = conn.execute("SELECT provenance_json FROM runs").fetchone()
    recorded: dict[str, Any] = json.loads(text)
    return recorded


def test_vllm_batch_invariant_is_passed_kept_and_read_by_eval(
    fake_apptainer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Served with VLLM_BATCH_INVARIANT=1: the server gets it, the state file keeps it, and an eval of that
    server records it in the run's provenance; an eval of an endpoint medsweep did not start records None."""
    sif = tmp_path / "vllm-openai.sif"
    sif.write_bytes(b"not really an image")
    port = free_port()
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")
    args = ["serve", "--engine", "apptainer", "--model", MODEL, "--gpus", "0", "--port", str(port)]
    assert main([*args, "--image", str(sif), "--timeout", "60"]) == 0
    monkeypatch.delenv("VLLM_BATCH_INVARIANT")  # the eval reads the server's record, not its own environment
    try:
        (recorded,) = [json.loads(line) for line in fake_apptainer.read_text().splitlines()]
        assert "VLLM_BATCH_INVARIANT=1" in recorded
        state = read_state()
        assert state is not None and state.vllm_batch_invariant is True
        data = str(REPO_ROOT / "demo_data")
        evaluate = ["eval", "--task", "mednli", "--limit", "1", "--data-dir", data]
        assert main([*evaluate, "--out", str(tmp_path / "managed")]) == 0  # the endpoint of the state file
        assert _provenance(tmp_path / "managed")["vllm_batch_invariant"] is True
        with fake_server("--model", MODEL) as other:  # a server medsweep did not start
            assert main([*evaluate, "--base-url", other.base_url, "--out", str(tmp_path / "other")]) == 0
        assert _provenance(tmp_path / "other")["vllm_batch_invariant"] is None
    finally:
        assert main(["stop"]) == 0
