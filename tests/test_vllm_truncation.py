"""v3's truncation on the real CPU vLLM server: an over-long prompt is sent whole with
``truncate_prompt_tokens`` and the server keeps exactly ``max_model_len - max_new_tokens`` of its tokens.

Needs `make setup-server` (done by `make test`); skips with the reason otherwise. The per-letter path (a
server without vLLM's API) is tests/test_engine_truncation.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.tasks.prompts import load_prompts
from tests.fakeserver import free_port
from tests.test_engine_truncation import long_probsum

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.vllm
CONTEXT = 512

if (
    not (REPO / ".venv-vllm/bin/vllm").exists()
    or not (REPO / "models/smollm2-135m-instruct/.converted").exists()
):
    pytest.skip("the CPU vLLM server is not set up: run `make setup-server`", allow_module_level=True)


def _medsweep(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_long_probsum_letter_is_left_truncated_by_the_server(tmp_path: Path) -> None:
    env = {**os.environ, "MEDSWEEP_STATE_DIR": str(tmp_path / "state")}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    long_probsum(tmp_path / "data")
    port = free_port()
    started = _medsweep("serve", "--engine", "cpu", "--port", str(port), "--max-model-len", str(CONTEXT),
                        "--timeout", "400", env=env)  # fmt: skip
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        out = tmp_path / "out"
        run = _medsweep("eval", "--base-url", f"http://127.0.0.1:{port}/v1", "--task", "probsum",
                        "--data-dir", str(tmp_path / "data"), "--out", str(out), env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        _medsweep("stop", env=env, timeout=120)
    keep = CONTEXT - load_prompts("probsum").prompt.max_new_tokens  # 412, as v3 would have sent
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        rows = conn.execute("SELECT status, prompt_tokens, request_json FROM results").fetchall()
        (provenance,) = conn.execute("SELECT provenance_json FROM runs").fetchone()
    ((status, prompt_tokens, meta),) = rows
    assert status == "succeeded" and prompt_tokens == keep
    assert json.loads(meta)["extra"]["truncate_prompt_tokens"] == keep
    assert json.loads(provenance)["truncation"] == "v3"
