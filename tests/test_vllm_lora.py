"""The real CPU vLLM server with the committed LoRA adapter: the base and the adapter on one server (the
session's shared ``cpu_vllm``, launched as `medsweep serve --model smollm2-135m-meqsum-lora` plans it), each
answering with its own text and stored under its own identity; and `make demo`'s script end to end, whose
report holds the real paired comparison (the one real-vLLM test that starts and stops its own server, with
`medsweep serve` and `medsweep stop`).

Needs `make setup-server` (done by `make test`); skips with the reason otherwise (fails when
``MEDSWEEP_REQUIRE`` names vllm: tests/conftest.py). Asserts behaviour, never
model quality or exact text (greedy text differs between core settings).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from pipeline.models.registry import get_model
from pipeline.serving.process import exit_reason
from tests.support.cpu_vllm import SharedVllm, medsweep_env
from tests.support.paths import REPO_ROOT as REPO
from tests.support.ports import free_port

pytestmark = pytest.mark.vllm

BASE, LORA = "smollm2-135m-instruct", "smollm2-135m-meqsum-lora"
INQUIRY = (
    "SUBJECT: knee\nMESSAGE: I have had pain in my left knee for two weeks after running. It swells in the "
    "evening. Should I see a doctor or can I treat it at home, and what can I take for the pain?"
)


def _chat(root: str, model: str) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Summarize as one short question:\n{INQUIRY}"}],
        "max_tokens": 40,
        "temperature": 0.0,
        "seed": 1234,
    }
    response = httpx.post(f"{root}/v1/chat/completions", json=body, timeout=300)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def test_base_and_adapter_on_one_server_answer_each_with_its_own_text(cpu_vllm: SharedVllm) -> None:
    # How each model's results are stored (own identity, own keys) is checked on the demo's store below.
    root = cpu_vllm.root
    models = {m["id"]: m for m in httpx.get(f"{root}/v1/models", timeout=30).json()["data"]}
    assert {BASE, LORA} <= set(models)
    assert models[LORA].get("parent") == BASE
    assert _chat(root, BASE) != _chat(root, LORA)


def test_make_demo_prints_a_paired_comparison(tmp_path: Path) -> None:
    """scripts/demo.sh (one item of two tasks, to keep the test short: the adapter's CPU path is slow; every
    task runs on the shared server in tests/test_vllm_eval.py): both models on one server of its own,
    started by `medsweep serve` and stopped by `medsweep stop` (process group gone), each model's results
    under its own identity and keys, then the report."""
    env = {
        **medsweep_env(tmp_path / "state"),
        "DEMO_STATE_DIR": str(tmp_path / "state"),
        "DEMO_PORT": str(free_port()),
        "DEMO_OUT": str(tmp_path / "demo"),
        "DEMO_LIMIT": "1",
        "DEMO_TASKS": "mednli,meqsum",
    }
    run = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo.sh")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    flat = " ".join(run.stdout.split())
    assert f"{LORA}@main+lora." in flat and "could not be compared" not in flat
    assert "demo data" in flat and "mean nothing" in flat
    html = (tmp_path / "demo" / "report" / "report.html").read_text(encoding="utf-8")
    assert "could not be compared" not in html and "data-item-id" in html
    with sqlite3.connect(tmp_path / "demo" / "medsweep.sqlite") as conn:
        rows = conn.execute(
            "SELECT model, task, item_id, key FROM results WHERE status = 'succeeded'"
        ).fetchall()
    by_model: dict[str, dict[tuple[str, str], str]] = {}
    for model, task, item, key in rows:
        by_model.setdefault(model, {})[(task, item)] = key
    lora = get_model(LORA)
    assert lora.adapter is not None
    assert lora.identity() == f"{LORA}@main+lora.{lora.adapter.sha256[:16]}"
    assert set(by_model) == {f"{BASE}@main", lora.identity()}
    base_items, lora_items = by_model[f"{BASE}@main"], by_model[lora.identity()]
    assert set(base_items) == set(lora_items) and {task for task, _ in base_items} == {"mednli", "meqsum"}
    assert all(base_items[i] != lora_items[i] for i in base_items)  # the identity is in the key
    assert not (tmp_path / "state" / "serve.json").exists()  # the demo stopped its server...
    pid = int(re.search(r"started cpu server pid (\d+)", run.stdout).group(1))  # type: ignore[union-attr]
    assert exit_reason(pid) is not None  # ...and its process is gone
