"""A reasoning model through a real vLLM (the CPU build): the server's reasoning parser splits the reply,
``thinking_token_budget`` forces the end of the trace, and a reply whose answer budget runs out inside the
trace is a no-answer. The model is ``smollm2-135m-think`` (servers/smollm2-135m-think.toml: SmolLM2 with
the think tags as tokens and a template that opens ``<think>``): it answers in a reasoning model's shape,
with text that means nothing, so these tests assert the shape, never the words.

Needs `make setup-server` (it derives the model); skips with the reason otherwise (fails when
``MEDSWEEP_REQUIRE`` names vllm). Uses the session's second CPU server, ``cpu_vllm_thinking``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.support.cpu_vllm import THINKING, THINKING_UNBUDGETED, SharedVllm, medsweep_env, run_medsweep
from tests.support.paths import DEMO_DATA_DIR

pytestmark = pytest.mark.vllm

_N = 3  # MedNLI items
_BUDGET = 16  # servers/smollm2-135m-think.toml reasoning.thinking_budget
_ANSWER = 20  # MedNLI's answer tokens (prompts/mednli.toml)


def _eval(server: SharedVllm, model: str, tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "out"
    run = run_medsweep("eval", "--base-url", server.base_url, "--model", model, "--task", "mednli",
                       "--limit", str(_N), "--data-dir", str(DEMO_DATA_DIR), "--out", str(out),
                       env=medsweep_env(tmp_path / "state"))  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM results")]


def test_serve_passes_the_reasoning_parser(tmp_path: Path) -> None:
    run = run_medsweep("serve", "--engine", "cpu", "--model", THINKING, "--dry-run",
                       env=medsweep_env(tmp_path / "state"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "--reasoning-parser deepseek_r1" in run.stdout


def test_the_budget_ends_the_trace_and_the_answer_is_stored_apart(
    cpu_vllm_thinking: SharedVllm, tmp_path: Path
) -> None:
    rows = _eval(cpu_vllm_thinking, THINKING, tmp_path)
    assert len(rows) == _N and {r["status"] for r in rows} == {"succeeded"}
    for row in rows:
        request = json.loads(row["request_json"])
        assert (
            request["max_tokens"] == _BUDGET + _ANSWER
            and request["extra"]["thinking_token_budget"] == _BUDGET
        )
        assert row["reasoning"]  # the server's message.reasoning: the trace, apart
        # vLLM forced </think> at the budget: the reply went on past the trace, an answer (not a no-answer)
        assert row["output"] is not None
        assert "<think>" not in row["output"] and "</think>" not in row["output"]
        # vLLM 0.32 counts 0 reasoning tokens when the prompt opened the tag: stored as "not reported"
        assert row["reasoning_tokens"] is None


def test_without_a_budget_the_trace_runs_out_and_is_a_no_answer(
    cpu_vllm_thinking: SharedVllm, tmp_path: Path
) -> None:
    rows = _eval(cpu_vllm_thinking, THINKING_UNBUDGETED, tmp_path)  # not in the registry: no budget
    assert len(rows) == _N
    for row in rows:
        request = json.loads(row["request_json"])
        assert request["max_tokens"] == _ANSWER and "thinking_token_budget" not in request["extra"]
        assert (row["status"], row["output"], row["finish_reason"]) == ("succeeded", None, "length")
        assert row["reasoning"] and row["reasoning_tokens"] == row["completion_tokens"] == _ANSWER
    status = run_medsweep(
        "status", "--out", str(tmp_path / "out"), "--json", env=medsweep_env(tmp_path / "s")
    )
    assert json.loads(status.stdout)["no_answer"] == _N
