"""The real CPU vLLM server (SmolLM2-135M, the session's shared ``cpu_vllm``) evaluated on every task of
the synthetic demo data, and v3's truncation on it (an over-long prompt sent whole with
``truncate_prompt_tokens``).

Needs `make setup-server` (done by `make test`); skips with the reason otherwise (fails when
``MEDSWEEP_REQUIRE`` names vllm: tests/conftest.py). Asserts behaviour, not
model quality: every request gets a final outcome, nothing fails, every task is scored, a rerun sends
nothing, and vLLM's prefix cache is hit (prefix-aware ordering).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.tasks import task_names
from pipeline.tasks.prompts import load_prompts
from tests.support.cpu_vllm import SharedVllm, medsweep_env, run_medsweep
from tests.support.datasets import long_probsum

pytestmark = pytest.mark.vllm


def test_long_probsum_letter_is_left_truncated_by_the_server(cpu_vllm: SharedVllm, tmp_path: Path) -> None:
    # The letter (3,000 numbered words) is several times the server's 2,048-token context.
    # The per-letter path (a server without vLLM's API) is tested in tests/evaluation/test_truncation.py.
    context = 2048
    env = medsweep_env(tmp_path / "state")
    long_probsum(tmp_path / "data")
    out = tmp_path / "out"
    run = run_medsweep("eval", "--base-url", cpu_vllm.base_url, "--model", cpu_vllm.base, "--task", "probsum",
                       "--data-dir", str(tmp_path / "data"), "--out", str(out), env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    keep = context - load_prompts("probsum").prompt.max_new_tokens  # as v3 would have sent
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        rows = conn.execute("SELECT status, prompt_tokens, request_json FROM results").fetchall()
        (provenance,) = conn.execute("SELECT provenance_json FROM runs").fetchone()
    ((status, prompt_tokens, meta),) = rows
    assert status == "succeeded" and prompt_tokens == keep
    assert json.loads(meta)["extra"]["truncate_prompt_tokens"] == keep
    assert json.loads(provenance)["truncation"] == "v3"


def test_every_task_runs_against_the_real_cpu_server(cpu_vllm: SharedVllm, tmp_path: Path) -> None:
    env = medsweep_env(tmp_path / "state")
    out = tmp_path / "out"
    hits_before = cpu_vllm.prefix_cache_hits()
    args = ("eval", "--base-url", cpu_vllm.base_url, "--model", cpu_vllm.base, "--data-dir", "demo_data",
            "--out", str(out), "--limit", "1", "--concurrency", "16")  # fmt: skip
    first = run_medsweep(*args, env=env)
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
    assert cpu_vllm.prefix_cache_hits() > hits_before

    again = run_medsweep(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    status = run_medsweep("status", "--out", str(out), "--json", env=env)
    assert '"pending": 0' in status.stdout
