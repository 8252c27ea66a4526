"""The real CPU vLLM server (SmolLM2-135M) evaluated on every task of the synthetic demo data, and v3's
truncation on it (an over-long prompt sent whole with ``truncate_prompt_tokens``).

Needs `make setup-server` (done by `make test`); skips with the reason otherwise (fails when
``MEDSWEEP_REQUIRE`` names vllm: tests/conftest.py). Asserts behaviour, not
model quality: every request gets a final outcome, nothing fails, every task is scored, a rerun sends
nothing, and vLLM's prefix cache is hit (prefix-aware ordering).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.tasks import task_names
from pipeline.tasks.prompts import load_prompts
from tests.support.datasets import long_probsum
from tests.support.paths import REPO_ROOT as REPO
from tests.support.ports import free_port

pytestmark = pytest.mark.vllm


def _medsweep(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    state = tmp_path_factory.mktemp("state")
    env = {**os.environ, "MEDSWEEP_STATE_DIR": str(state)}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    port = free_port()
    started = _medsweep("serve", "--engine", "cpu", "--port", str(port), "--timeout", "400", env=env)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield f"http://127.0.0.1:{port}", env
    finally:
        _medsweep("stop", env=env, timeout=120)


def _prefix_hits(root: str) -> float:
    text = httpx.get(f"{root}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:prefix_cache_hits_total"))  # fmt: skip


def test_long_probsum_letter_is_left_truncated_by_the_server(tmp_path: Path) -> None:
    # Runs before the module's server starts (pytest keeps file order): never two CPU servers at once.
    # The per-letter path (a server without vLLM's API) is tested in tests/evaluation/test_truncation.py.
    context = 512
    env = {**os.environ, "MEDSWEEP_STATE_DIR": str(tmp_path / "state")}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    long_probsum(tmp_path / "data")
    port = free_port()
    started = _medsweep("serve", "--engine", "cpu", "--port", str(port), "--max-model-len", str(context),
                        "--timeout", "400", env=env)  # fmt: skip
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        out = tmp_path / "out"
        run = _medsweep("eval", "--base-url", f"http://127.0.0.1:{port}/v1", "--task", "probsum",
                        "--data-dir", str(tmp_path / "data"), "--out", str(out), env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        _medsweep("stop", env=env, timeout=120)
    keep = context - load_prompts("probsum").prompt.max_new_tokens  # 412, as v3 would have sent
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        rows = conn.execute("SELECT status, prompt_tokens, request_json FROM results").fetchall()
        (provenance,) = conn.execute("SELECT provenance_json FROM runs").fetchone()
    ((status, prompt_tokens, meta),) = rows
    assert status == "succeeded" and prompt_tokens == keep
    assert json.loads(meta)["extra"]["truncate_prompt_tokens"] == keep
    assert json.loads(provenance)["truncation"] == "v3"


def test_every_task_runs_against_the_real_cpu_server(
    cpu_server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    root, env = cpu_server
    out = tmp_path / "out"
    hits_before = _prefix_hits(root)
    args = ("eval", "--base-url", f"{root}/v1", "--data-dir", "demo_data", "--out", str(out),
            "--limit", "2", "--concurrency", "16")  # fmt: skip
    first = _medsweep(*args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        by_task = dict(
            conn.execute("SELECT task, COUNT(*) FROM results WHERE status = 'succeeded' GROUP BY task")
        )
        failed = conn.execute(
            "SELECT task, error_class, error_message FROM results WHERE status = 'failed'"
        ).fetchall()
        scored = dict(conn.execute("SELECT task, COUNT(*) FROM scores GROUP BY task"))
        models = {m for (m,) in conn.execute("SELECT DISTINCT model FROM results")}
    assert failed == []
    assert set(by_task) == set(task_names())
    assert scored == by_task
    assert models == {"smollm2-135m-instruct@main"}
    # The few-shot block and a patient's documents are shared prefixes sent together: the cache is hit.
    assert _prefix_hits(root) > hits_before

    again = _medsweep(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    status = _medsweep("status", "--out", str(out), "--json", env=env)
    assert '"pending": 0' in status.stdout
