"""The report of a reasoning model: no-answer rate and trace lengths per model x task, and a paired
difference that comes from no-answers is called so. Stores filled by real evals against our fake server."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.cli import main
from pipeline.report.build import build_report
from pipeline.report.tables import named_tables
from tests.support.datasets import write_mednli
from tests.support.servers import fake_server


def _eval(base_url: str, model: str, data: Path, out: Path) -> None:
    args = ["eval", "--base-url", base_url, "--model", model, "--task", "mednli", "--data-dir", str(data),
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0


def test_a_difference_made_of_no_answers_is_called_so(tmp_path: Path) -> None:
    data, out = write_mednli(tmp_path / "data", 33), tmp_path / "out"  # 30 items, 10 of them entailment
    with fake_server("--model", "thinker", "--reasoning", "cut") as bio:
        _eval(bio.base_url, "thinker", data, out)
    with fake_server("--model", "base", "--answer", "ENTAILMENT") as gen:
        _eval(gen.base_url, "base", data, out)
    report = build_report([out], pair_flags=["thinker=base"])

    traces = report.traces.row(0, named=True)
    assert report.traces.height == 1 and traces["model"] == "thinker" and traces["unit"] == "mednli"
    assert traces["n"] == 30 and traces["no_answer_pct"] == 100.0
    assert traces["reasoning_tokens_p50"] == traces["reasoning_tokens_p95"] > 0
    assert "traces" in named_tables(report)

    paired = report.paired.filter(pl.col("unit") == "mednli").row(0, named=True)
    assert paired["verdict"] == "worse" and paired["no_answer_share"] == 1.0
    assert any("comes mostly from no-answers" in line for line in report.summary)


def test_models_without_traces_get_no_reasoning_table(tmp_path: Path) -> None:
    data, out = write_mednli(tmp_path / "data", 9), tmp_path / "out"
    with fake_server("--model", "plain", "--answer", "ENTAILMENT") as server:
        _eval(server.base_url, "plain", data, out)
    report = build_report([out])
    assert report.traces.is_empty() and "traces" not in named_tables(report)
