"""The Level formula reproduces the published CLUE v3 Level-1/Level-2 values from the published
per-metric numbers (pipeline/scoring/clue_v3_results.csv, transcribed from clue-spec.md §3; the report reads
the same file to put the published numbers beside a run's)."""

from __future__ import annotations

import csv

import pytest

from pipeline.datasets.clue_v3 import RESULTS
from pipeline.scoring import level_scores
from pipeline.tasks.scores import paper_metrics

_DATA = RESULTS
_TASKS = ("mednli", "meqsum", "probsum", "medisumqa", "medisumcode", "longhealth")


def _rows() -> list[dict[str, str]]:
    with _DATA.open(encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def _task_metrics(row: dict[str, str]) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    for task in _TASKS:
        values = {name: row[f"{task}_{name}"] for name in paper_metrics(task)}
        if all(values.values()):
            result[task] = {name: float(value) for name, value in values.items()}
    return result


ROWS = _rows()


def test_data_file_has_every_published_model() -> None:
    # 25 ranked models plus Mixtral-8x7B-v0.1 (per-task numbers only); 18 with Level 2.
    assert len(ROWS) == 26
    assert sum(bool(row["level1"]) for row in ROWS) == 25
    assert sum(bool(row["level2"]) for row in ROWS) == 18


@pytest.mark.parametrize("row", [r for r in ROWS if r["level1"]], ids=lambda r: r["model"])
def test_level1_reproduces_published_value(row: dict[str, str]) -> None:
    levels = level_scores(_task_metrics(row))
    assert levels.level1 is not None
    assert levels.level1 == pytest.approx(float(row["level1"]), abs=0.01)


@pytest.mark.parametrize("row", [r for r in ROWS if r["level2"]], ids=lambda r: r["model"])
def test_level2_reproduces_published_value(row: dict[str, str]) -> None:
    levels = level_scores(_task_metrics(row))
    assert levels.level2 is not None
    assert levels.level2 == pytest.approx(float(row["level2"]), abs=0.01)


def test_level2_absent_for_models_without_long_context_runs() -> None:
    row = next(r for r in ROWS if r["model"] == "llama2-7b")
    levels = level_scores(_task_metrics(row))
    assert levels.level2 is None and levels.level2_partial is None
    assert "longhealth.task1_accuracy" in levels.missing


def test_level_by_hand() -> None:
    metrics = {
        "mednli": {"accuracy": 60.0},
        "meqsum": {"rougeL": 10.0, "rouge1": 20.0, "rouge2": 30.0, "bertscore_f1": 40.0},
        "probsum": {"rougeL": 0.0, "rouge1": 0.0, "rouge2": 0.0, "bertscore_f1": 50.0, "umls_f1": 0.0},
    }
    levels = level_scores(metrics)
    # (60 + 25 + 10) / 3
    assert levels.level1 == pytest.approx(95 / 3)
    assert levels.used["meqsum"] == ("rougeL", "rouge1", "rouge2", "bertscore_f1")


def test_missing_metric_gives_no_level_but_a_partial_one() -> None:
    metrics = {
        "mednli": {"accuracy": 60.0},
        "meqsum": {"rougeL": 10.0, "rouge1": 20.0, "rouge2": 30.0},
        "probsum": {"rougeL": 0.0, "rouge1": 0.0, "rouge2": 30.0},
    }
    levels = level_scores(metrics)
    assert levels.level1 is None
    assert levels.level1_partial == pytest.approx((60 + 20 + 10) / 3)
    assert "meqsum.bertscore_f1" in levels.missing and "probsum.umls_f1" in levels.missing
