"""The paper's numbers beside a run's: the published CLUE v3 figures of a registry model (by its site_label)
next to the run's, the difference, the bound and the verdict (pipeline/report/published.py)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from pipeline.datasets.clue_v3 import published
from pipeline.report import build_report
from pipeline.report.tables import report_markdown
from tests.support.datasets import write_mednli
from tests.support.stores import SUMMARY_METRICS, StoreBuilder

MODEL = (
    "meta-llama-3-8b-instruct@5f0b02c75b57c5855da9ae460ce51323ea669d8a"  # site_label Meta-Llama-3-8B-Instruct
)
PAPER = published()["Meta-Llama-3-8B-Instruct"]


def _store(
    out: Path, data_dir: Path, mednli_right: int, *, variant: str = "paper", longhealth_questions: int = 0
) -> None:
    """200 MedNLI items (``mednli_right`` of them right), and MeQSum and ProbSum items scoring exactly the
    published figures; LongHealth questions answered right in all 3 sub-tasks x 5 repeats; the run read
    ``data_dir``."""
    store = StoreBuilder(out)
    store.add_run(
        "r1", MODEL, variant=variant, config_extra={"run": {"variant": variant, "data_dir": str(data_dir)}}
    )
    for i in range(200):
        store.add(
            "r1", MODEL, "mednli", f"m{i}", {"accuracy": 100.0 if i < mednli_right else 0.0}, variant=variant
        )
    for task, names in (("meqsum", SUMMARY_METRICS[:4]), ("probsum", SUMMARY_METRICS)):
        values = {name: PAPER[f"{task}_{name}"] for name in names}
        for i in range(30):
            store.add("r1", MODEL, task, f"{task}{i}", values, variant=variant)
    for subtask in ("task1", "task2", "task3"):
        for question in range(longhealth_questions):
            for repeat in range(5):
                right = {"accuracy": 100.0}
                store.add("r1", MODEL, "longhealth", f"p{question}", right, subtask=subtask, repeat=repeat)
    # A model the study did not run (no site_label): no published rows.
    store.add_run("r2", "smollm2-135m-instruct@abc", config_extra={"run": {"data_dir": str(data_dir)}})
    store.add("r2", "smollm2-135m-instruct@abc", "mednli", "m0", {"accuracy": 100.0})
    store.close()


def _row(frame: pl.DataFrame, unit: str, metric: str) -> dict[str, object]:
    rows = frame.filter((pl.col("unit") == unit) & (pl.col("metric") == metric)).to_dicts()
    assert len(rows) == 1, frame
    return rows[0]


@pytest.fixture
def full_mednli(tmp_path: Path) -> Path:
    return write_mednli(tmp_path / "data", 1422)  # SYNTHETIC pairs in the shape of the real test split


def test_a_run_that_reproduces_the_paper(tmp_path: Path, full_mednli: Path) -> None:
    _store(tmp_path / "run", full_mednli, mednli_right=148)  # 74.00 against the published 74.08
    report = build_report([tmp_path / "run"], servers_dir=None)
    frame = report.published
    assert set(frame["model"]) == {MODEL} and set(frame["site_label"]) == {"Meta-Llama-3-8B-Instruct"}
    nli = _row(frame, "mednli", "accuracy")
    assert nli["published"] == 74.08 and nli["run"] == pytest.approx(74.0)
    assert nli["diff"] == pytest.approx(-0.08) and nli["n_items"] == 200 and nli["paper_n"] == 1419
    # The bound, from the definition: the per-item SD (from the bootstrap CI, at least the Bernoulli SD
    # of the published accuracy) over both sample sizes, plus the published rounding.
    metric = report.task_metrics.filter((pl.col("model") == MODEL) & (pl.col("task") == "mednli")).to_dicts()[
        0
    ]
    s = max((metric["ci_high"] - metric["ci_low"]) / (2 * 1.96) * math.sqrt(200), math.sqrt(74.08 * 25.92))
    assert nli["bound"] == pytest.approx(1.96 * s * math.sqrt(1 / 200 + 1 / 1419) + 0.005)
    assert nli["verdict"] == "reproduces" and "MedNLI v1.0.0 test split" in str(nli["data"])
    # Metrics equal to the published ones, with a CI of width 0: reproduce within the rounding.
    rouge = _row(frame, "meqsum", "rougeL")
    assert (
        rouge["diff"] == pytest.approx(0.0, abs=1e-9)
        and rouge["bound"] == pytest.approx(0.005)
        and rouge["verdict"] == "reproduces"
    )
    assert "not checked" in str(
        rouge["data"]
    )  # the run's data folder has no MeQSum: its version is unchecked
    level = _row(frame, "Level 1", "level1")
    assert level["published"] == 48.37 and level["run"] == pytest.approx(48.37, abs=0.03)
    assert level["verdict"] == "reproduces"
    assert frame.filter(pl.col("unit") == "Level 2").is_empty()  # no Level-2 run: no row
    summary = [line for line in report.summary if line.startswith("Against the paper's numbers")]
    assert summary == [
        f"Against the paper's numbers (Meta-Llama-3-8B-Instruct in CLUE v3): {MODEL} reproduces on mednli, "
        "meqsum, probsum, Level 1."
    ]
    markdown = report_markdown(report)
    assert "## The paper's numbers beside this run's" in markdown and "| reproduces |" in markdown


def test_a_run_that_differs_is_flagged(tmp_path: Path, full_mednli: Path) -> None:
    _store(tmp_path / "run", full_mednli, mednli_right=100)  # 50.00 against 74.08
    report = build_report([tmp_path / "run"], servers_dir=None)
    nli = _row(report.published, "mednli", "accuracy")
    assert nli["diff"] == pytest.approx(-24.08) and nli["verdict"] == "differs"
    assert _row(report.published, "Level 1", "level1")["verdict"] == "differs"
    (line,) = [s for s in report.summary if s.startswith("Against the paper's numbers")]
    assert "differs on mednli (-24.08, bound ±" in line and "reproduces on meqsum, probsum" in line


def test_longhealth_sub_tasks_and_a_few_agreeing_items(tmp_path: Path, full_mednli: Path) -> None:
    """LongHealth is compared per sub-task; 20 questions all answered right have a CI of width 0, but the
    bound still allows for what 20 items can show (the Bernoulli SD of the published accuracy)."""
    _store(tmp_path / "run", full_mednli, mednli_right=148, longhealth_questions=20)
    frame = build_report([tmp_path / "run"], servers_dir=None).published
    task1 = _row(frame, "longhealth", "task1_accuracy")
    assert task1["published"] == 68.3 and task1["run"] == 100.0 and task1["n_items"] == 20
    assert task1["paper_n"] == 400
    expected = 1.96 * math.sqrt(68.3 * 31.7) * math.sqrt(1 / 20 + 1 / 400) + 0.005
    assert task1["bound"] == pytest.approx(expected) and task1["verdict"] == "differs"  # 31.7 > 20.9
    task3 = _row(frame, "longhealth", "task3_accuracy")
    assert task3["published"] == 56.25 and task3["verdict"] == "differs"
    mean = _row(frame, "longhealth", "(task mean)")
    assert mean["published"] == pytest.approx((68.3 + 66.55 + 56.25) / 3) and mean["run"] == 100.0


def test_another_data_version_or_variant_is_not_comparable(tmp_path: Path) -> None:
    subset = write_mednli(tmp_path / "subset", 500)  # not the 1,422-pair test split
    _store(tmp_path / "run", subset, mednli_right=148)
    nli = _row(build_report([tmp_path / "run"], servers_dir=None).published, "mednli", "accuracy")
    assert nli["verdict"] == "not comparable" and nli["bound"] is None
    assert "unknown version (500 rows" in str(nli["data"])
    full = write_mednli(tmp_path / "full", 1422)
    _store(tmp_path / "structured", full, mednli_right=148, variant="structured")
    report = build_report([tmp_path / "structured"], servers_dir=None)
    nli = _row(report.published, "mednli", "accuracy")
    assert nli["verdict"] == "not comparable" and str(nli["data"]).startswith("variant structured")
