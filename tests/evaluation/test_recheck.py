"""``medsweep eval --recheck N`` against our fake server (its answers depend on the prompt alone, so they
agree) and the report's agreement table; the real server's check is in tests/test_vllm_loglik.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.paths import DEMO_DATA_DIR
from pipeline.report.build import build_report
from tests.support.servers import fake_server


def test_recheck_resends_n_committed_items_one_at_a_time_and_records_the_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    with fake_server() as server:
        code = main(["eval", "--base-url", server.base_url, "--model", "fake-model", "--task", "mednli,medqa",
                     "--data-dir", str(DEMO_DATA_DIR), "--out", str(out), "--recheck", "4"])  # fmt: skip
        sent = server.requests()
    assert code == 0
    assert "recheck: 4 of 4 raw outputs and 4 of 4 parsed answers agree" in capsys.readouterr().err
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        (provenance,) = conn.execute("SELECT provenance_json FROM runs").fetchone()
        n_results = conn.execute("SELECT count(*) FROM results").fetchone()[0]
    recorded = json.loads(provenance)
    checked = recorded["recheck"]
    assert (checked["n"], checked["raw_agree"], checked["parsed_agree"]) == (4, 4, 4)
    assert len({(i["task"], i["item_id"]) for i in checked["items"]}) == 4
    assert (
        recorded["concurrency"] == 64 and "prefix_caching" in recorded and "vllm_batch_invariant" in recorded
    )
    # Each rechecked body is one the run sent before (temperature 0 is the default): 4 more requests.
    bodies = [json.dumps(b, sort_keys=True) for b in sent]
    assert len(bodies) == n_results + 4 and all(bodies.count(b) == 2 for b in bodies[-4:])

    report = build_report([out], seed=1)
    ((row),) = report.recheck.iter_rows(named=True)
    assert (row["model"], row["rechecked"], row["raw_agree_pct"], row["parsed_agree_pct"]) == (
        "fake-model",
        4,
        100.0,
        100.0,
    )


def test_a_changed_answer_is_counted_as_disagreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [
        "eval",
        "--model",
        "fake-model",
        "--task",
        "mednli",
        "--data-dir",
        str(DEMO_DATA_DIR),
        "--out",
        str(out),
    ]
    with fake_server("--answer", "ENTAILMENT") as server:
        assert main([*args, "--base-url", server.base_url]) == 0
    # Another server answers otherwise: every re-sent item disagrees, raw and parsed.
    with fake_server("--answer", "The relation is CONTRADICTION") as server:
        assert main([*args, "--base-url", server.base_url, "--recheck", "3"]) == 0
    assert "recheck: 0 of 3 raw outputs and 0 of 3 parsed answers agree" in capsys.readouterr().err
