"""A reasoning model's replies, end to end against our fake server in the four shapes reasoning models
answer in: the trace is stored apart, only the answer is parsed and scored, a reply cut inside its trace
is a no-answer (succeeded, scored wrong, never sent again) that status and the summary report."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from tests.support.fakeserver import TRACE
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.servers import RunningServer, fake_server

_N = 4


def _eval(server: RunningServer, out: Path, *extra: str, model: str = "fake-model") -> int:
    return main(["eval", "--base-url", server.base_url, "--model", model, "--task", "mednli",
                 "--data-dir", str(DEMO), "--out", str(out), "--limit", str(_N), *extra])  # fmt: skip


def _rows(out: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return [
            dict(r)
            for r in conn.execute(
                "SELECT r.status, r.output, r.reasoning, r.reasoning_tokens, r.finish_reason, "
                "r.request_json, s.parsed_json, s.strict_valid, s.metrics_json "
                "FROM results r LEFT JOIN scores s USING (key)"
            )
        ]


@pytest.mark.parametrize("shape", ["reasoning", "reasoning_content", "inline"])
def test_the_trace_is_stored_apart_and_only_the_answer_is_scored(tmp_path: Path, shape: str) -> None:
    with fake_server("--reasoning", shape, "--answer", "ENTAILMENT") as server:
        assert _eval(server, tmp_path) == 0
    rows = _rows(tmp_path)
    assert len(rows) == _N
    for row in rows:
        assert row["status"] == "succeeded"
        assert row["output"] == "ENTAILMENT"  # the trace names CONTRADICTION: a parser reading it is wrong
        assert row["reasoning"] == TRACE
        assert json.loads(row["parsed_json"]) == {"strict": "entailment", "lenient": "entailment"}
        assert row["strict_valid"] == 1  # format adherence counts the answer, not the trace
        # vLLM's parser counts the trace's tokens; an unsplit reply comes without a count.
        assert (row["reasoning_tokens"] is None) == (shape == "inline")


def test_a_model_that_does_not_reason_has_no_trace(tmp_path: Path) -> None:
    with fake_server("--answer", "ENTAILMENT") as server:
        assert _eval(server, tmp_path) == 0
    assert {(r["output"], r["reasoning"]) for r in _rows(tmp_path)} == {("ENTAILMENT", None)}


def test_reasoning_split_none_keeps_the_trace_in_the_answer_under_its_own_keys(tmp_path: Path) -> None:
    with fake_server("--reasoning", "inline", "--answer", "ENTAILMENT") as server:
        assert _eval(server, tmp_path) == 0
        sent = server.stats()["received"]
        assert _eval(server, tmp_path, "--reasoning-split", "none") == 0
        assert server.stats()["received"] == 2 * sent  # another splitter: other answers, other keys
    kept = [r for r in _rows(tmp_path) if r["reasoning"] is None]
    assert len(kept) == _N and all(r["output"].startswith("<think>") for r in kept)
    assert all(r["strict_valid"] == 0 for r in kept)


def test_a_reply_cut_inside_its_trace_is_a_no_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_server("--reasoning", "cut") as server:
        assert _eval(server, tmp_path) == 0  # not a failure: nothing for the user to fix
        sent = server.stats()["received"]
        assert sent == _N  # never retried
        assert _eval(server, tmp_path) == 0
        assert server.stats()["received"] == sent  # nor sent again by a rerun
    printed = capsys.readouterr().out  # the summary's no-answer and trace columns (narrow: labels wrap)
    assert "100.0" in printed and "p50" in printed and "p95" in printed
    rows = _rows(tmp_path)
    assert {(r["status"], r["output"], r["finish_reason"]) for r in rows} == {("succeeded", None, "length")}
    assert all(r["reasoning"] == TRACE[: len(TRACE) // 2] for r in rows)
    # Scored as a wrong answer, as the model gave none.
    assert all(r["strict_valid"] == 0 and json.loads(r["metrics_json"])["accuracy"] == 0 for r in rows)
    assert main(["status", "--out", str(tmp_path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["no_answer"] == _N and status["failed"] == 0 and status["succeeded"] == _N
    assert [t["no_answer"] for t in status["tasks"]] == [_N]


def test_a_registry_reasoning_model_is_asked_with_its_budget_and_switch(tmp_path: Path) -> None:
    model = "qwen3-0.6b"  # servers/qwen3-0.6b.toml: parser qwen3, 2048 thinking tokens, enable_thinking
    with fake_server("--model", model, "--reasoning", "reasoning", "--max-model-len", "32768") as server:
        assert _eval(server, tmp_path, model=model) == 0
        bodies = server.requests()
    assert len(bodies) == _N
    for body in bodies:
        assert body["max_tokens"] == 2048 + 256  # the budget + the answer budget (MedNLI's is smaller)
        assert body["thinking_token_budget"] == 2048
        assert body["chat_template_kwargs"] == {"enable_thinking": True}
    rows = _rows(tmp_path)
    assert all(json.loads(r["request_json"])["extra"]["thinking_token_budget"] == 2048 for r in rows)
    with sqlite3.connect(tmp_path / "medsweep.sqlite") as conn:
        (config,) = conn.execute("SELECT config_json FROM runs").fetchone()
    assert json.loads(config)["target"]["reasoning"] == {
        "split": "think-tags", "thinking_budget": 2048, "answer_tokens": 256, "parser": "qwen3",
        "chat_template_kwargs": {"enable_thinking": True},
    }  # fmt: skip


def test_a_server_without_the_parser_rejects_the_budget_and_says_so(tmp_path: Path) -> None:
    model = "qwen3-0.6b"
    with fake_server("--model", model, "--reasoning", "inline", "--max-model-len", "32768") as server:
        assert _eval(server, tmp_path, model=model) == 1  # a request the user must fix: serve with the parser
    rows = _rows(tmp_path)
    assert {r["status"] for r in rows} == {"failed"}


def test_markdown_headings_are_split_for_the_model_that_writes_them(tmp_path: Path) -> None:
    model, reply = "huatuogpt-o1-8b", "## Thinking\nCONTRADICTION? No.\n\n## Final Response\nENTAILMENT"
    with fake_server("--model", model, "--answer", reply, "--max-model-len", "32768") as server:
        assert _eval(server, tmp_path, model=model) == 0
        assert all("thinking_token_budget" not in b for b in server.requests())  # no parser: no budget field
    assert {(r["output"], r["reasoning"], r["strict_valid"]) for r in _rows(tmp_path)} == {
        ("ENTAILMENT", "CONTRADICTION? No.", 1)
    }


def test_a_budget_larger_than_the_served_context_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_server("--model", "qwen3-0.6b", "--max-model-len", "2048") as server:  # budget 2048 + 256
        assert _eval(server, tmp_path, model="qwen3-0.6b") == 2
        assert server.stats()["received"] == 0  # said before anything was sent
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: servers/qwen3-0.6b.toml: reasoning.thinking_budget: 2304 tokens")
        and "\n" not in err
    )
