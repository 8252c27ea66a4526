"""Which truncation a run applies, what it sends, and that the choice (and the demonstrations') keys results.

vLLM endpoints (our test server answers ``/version`` like vLLM) get v3's whole-prompt truncation through
``truncate_prompt_tokens``; a plain OpenAI-compatible server (``--no-vllm-api``) gets the per-letter budget.
The real-server check of the same is in tests/test_vllm_eval.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.tasks.prompts import load_prompts
from tests.support.datasets import LETTER_WORDS, long_probsum
from tests.support.paths import FIDELITY_DATA
from tests.support.servers import RunningServer, fake_server

CONTEXT = 1024


def _eval(server: RunningServer, data: Path, out: Path, *extra: str, task: str = "probsum") -> int:
    return main(["eval", "--base-url", server.base_url, "--model", "fake-model", "--task", task,
                 "--data-dir", str(data), "--out", str(out), *extra])  # fmt: skip


def _runs(out: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        rows = conn.execute("SELECT config_json, provenance_json FROM runs ORDER BY started_at").fetchall()
    return [(json.loads(c), json.loads(p)) for c, p in rows]


def _results(out: Path) -> list[tuple[str, int, dict[str, Any]]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        rows = conn.execute("SELECT status, prompt_tokens, request_json FROM results").fetchall()
    return [(s, n, json.loads(r)) for s, n, r in rows]


def test_vllm_endpoint_gets_v3_truncation_of_the_whole_prompt(tmp_path: Path) -> None:
    end = long_probsum(tmp_path / "data")
    with fake_server("--max-model-len", str(CONTEXT)) as server:
        assert _eval(server, tmp_path / "data", tmp_path / "out") == 0
        (body,) = server.requests()
    keep = CONTEXT - load_prompts("probsum").prompt.max_new_tokens  # v3: max_position_embeddings - 100
    assert (body["truncate_prompt_tokens"], body["truncation_side"]) == (keep, "left")
    query = body["messages"][-2]["content"]  # the last user turn; the prefill follows it
    assert " ".join(f"w{i}" for i in range(LETTER_WORDS)) in query and end in query  # sent whole
    ((status, prompt_tokens, meta),) = _results(tmp_path / "out")
    assert status == "succeeded" and prompt_tokens == keep  # the server kept `keep` tokens
    assert meta["extra"]["truncate_prompt_tokens"] == keep
    ((config, provenance),) = _runs(tmp_path / "out")
    assert config["run"]["truncation"] == "auto" and config["target"]["truncation"] == "v3"
    assert provenance["truncation"] == "v3" and provenance["vllm_version"] == "0.0.0-fake"
    assert set(provenance["scorers"]) == {"bertscore_f1", "umls_f1"}  # versions, or why they are missing


def test_other_endpoints_get_the_per_letter_budget(tmp_path: Path) -> None:
    end = long_probsum(tmp_path / "data")
    system = load_prompts("probsum").prompt.system
    with fake_server("--max-model-len", str(CONTEXT), "--no-vllm-api") as server:
        assert _eval(server, tmp_path / "data", tmp_path / "out") == 0
        (body,) = server.requests()
    assert "truncate_prompt_tokens" not in body and "truncation_side" not in body
    assert body["messages"][0] == {"role": "system", "content": system}  # kept whole
    query = body["messages"][-2]["content"]
    assert end in query and "w0 " not in query  # the letter's end is kept, its start cut
    assert "Short note 0." in body["messages"][1]["content"]  # short letters stay whole
    ((status, _, meta),) = _results(tmp_path / "out")
    assert status == "succeeded" and "truncate_prompt_tokens" not in meta["extra"]
    ((config, provenance),) = _runs(tmp_path / "out")
    assert config["target"]["truncation"] == "letters" and provenance["truncation"] == "letters"
    assert provenance["vllm_version"] is None


def test_truncation_letters_on_vllm_is_the_named_option(tmp_path: Path) -> None:
    long_probsum(tmp_path / "data")
    with fake_server("--max-model-len", str(CONTEXT)) as server:
        assert _eval(server, tmp_path / "data", tmp_path / "out", "--truncation", "letters") == 0
        (body,) = server.requests()
    assert "truncate_prompt_tokens" not in body
    assert "w0 " not in body["messages"][-2]["content"]


@pytest.mark.parametrize(
    ("task", "first", "second"),
    [
        ("probsum", ["--truncation", "letters"], []),
        ("mednli", [], ["--demonstrations", "shuffled"]),
    ],
)
def test_switching_an_option_never_reuses_results(
    tmp_path: Path, task: str, first: list[str], second: list[str]
) -> None:
    data = tmp_path / "data"
    if task == "probsum":
        long_probsum(data)
    else:
        data = FIDELITY_DATA
    out = tmp_path / "out"
    with fake_server("--max-model-len", str(CONTEXT)) as server:
        assert _eval(server, data, out, *first, task=task) == 0
        sent = server.stats()["received"]
        assert _eval(server, data, out, *first, task=task) == 0
        assert server.stats()["received"] == sent  # the same options resume: nothing is sent again
        assert _eval(server, data, out, *second, task=task) == 0
        assert server.stats()["received"] == 2 * sent  # the other option: every item is asked again
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        assert (
            conn.execute("SELECT COUNT(*) FROM results WHERE status = 'succeeded'").fetchone()[0] == 2 * sent
        )
    runs = [c["run"] for c, _ in _runs(out)]
    chosen = [(r["demonstrations"], r["truncation"]) for r in (runs[0], runs[-1])]
    assert chosen == (
        [("v3", "letters"), ("v3", "auto")] if task == "probsum" else [("v3", "auto"), ("shuffled", "auto")]
    )
