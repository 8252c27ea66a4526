"""Knowledge or format: the report puts strict, lenient and log-likelihood accuracy side by side, with the
format gap and, per pair, the paired differences (synthetic store: marked synthetic, no model behind it)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline.report.build import build_report
from pipeline.report.tables import named_tables
from tests.support.stores import StoreBuilder

N = 20


def _model(store: StoreBuilder, model: str, strict: int, lenient: int, loglik: int) -> None:
    """How many of the N items each measure gets right (the first ones)."""
    store.add_run(f"{model}-paper", model)
    store.add_run(f"{model}-loglik", model, variant="loglik")
    for i in range(N):
        item = f"{i:02d}"
        paper = {"accuracy": 100.0 * (i < strict), "accuracy_lenient": 100.0 * (i < lenient)}
        store.add(f"{model}-paper", model, "mednli", item, paper)
        scores = {"accuracy_loglik": 100.0 * (i < loglik), "accuracy_loglik_norm": 0.0}
        store.add(f"{model}-loglik", model, "mednli", item, scores, variant="loglik")


@pytest.fixture
def report_out(tmp_path: Path) -> Path:
    store = StoreBuilder(tmp_path / "out")
    # The fine-tune knows as much as its base (log-likelihood) but never writes the answer format.
    _model(store, "bio-7b", strict=0, lenient=15, loglik=16)
    _model(store, "base-7b", strict=14, lenient=15, loglik=15)
    store.close()
    return tmp_path / "out"


def test_knowledge_and_format_side_by_side_with_paired_differences(report_out: Path) -> None:
    report = build_report([report_out], pair_flags=["bio-7b=base-7b"], seed=1)
    rows = {r["model"]: r for r in report.knowledge.iter_rows(named=True)}
    bio, base = rows["bio-7b"], rows["base-7b"]
    assert (bio["unit"], bio["n"], bio["strict"], bio["lenient"], bio["loglik"]) == (
        "mednli",
        N,
        0.0,
        75.0,
        80.0,
    )
    assert bio["format_gap"] == 80.0 and bio["gap_ci_low"] <= 80.0 <= bio["gap_ci_high"]
    assert base["format_gap"] == pytest.approx(5.0)

    paired = {r["metrics"]: r for r in report.knowledge_paired.iter_rows(named=True)}
    assert set(paired) == {"strict", "lenient", "loglik", "format_gap"}
    strict, loglik = paired["strict"], paired["loglik"]
    assert strict["mean_diff"] == -70.0 and strict["test"] == "McNemar exact (b=0, c=14)"
    assert strict["ci_high"] < 0 and strict["verdict"] == "worse"  # the format was lost...
    assert loglik["mean_diff"] == 5.0 and loglik["test"] == "McNemar exact (b=1, c=0)"
    assert loglik["verdict"] == "no significant difference"  # ...not the knowledge
    assert paired["format_gap"]["verdict"] == "larger format gap"
    assert paired["format_gap"]["mean_diff"] == 75.0 and paired["format_gap"]["test"].startswith("sign-flip")
    tables = named_tables(report)
    assert tables["knowledge"][1].height == 2 and tables["knowledge_paired"][1].height == 4


def test_without_loglik_results_the_tables_are_empty(tmp_path: Path) -> None:
    store = StoreBuilder(tmp_path / "out")
    store.add_run("r", "m")
    store.add("r", "m", "mednli", "1", {"accuracy": 100.0})
    store.close()
    report = build_report([tmp_path / "out"], seed=1)
    assert report.knowledge.is_empty() and report.knowledge_paired.is_empty()
    assert isinstance(report.knowledge, pl.DataFrame)
