"""Generate now, score later (`run.score = false`, then `score_stored`): what a sweep does so that a
server's GPUs are not held through CPU-only scoring. The scores are the ones an eval that scores at once
writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.config import load_config
from pipeline.evaluation.evaluate import run_evaluation, score_stored
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.servers import fake_server

TASKS = ["mednli", "meqsum"]


def _scores(out: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return sorted(conn.execute("SELECT key, task, metrics_json FROM scores"))


def test_generate_without_scoring_then_score_the_store(tmp_path: Path) -> None:
    at_once, later = tmp_path / "at-once", tmp_path / "later"
    outcomes = {}
    with fake_server() as server:
        for out, score in ((at_once, True), (later, False)):
            config = load_config(None, {
                "endpoint": {"base_urls": [server.base_url]}, "model": {"name": "fake-model"},
                "run": {"tasks": TASKS, "data_dir": DEMO, "out": out, "limit": 3, "score": score},
            })  # fmt: skip
            outcomes[score] = run_evaluation(config)
            assert outcomes[score].run.sent == 6
            assert bool(outcomes[score].summaries) == score
    assert _scores(later) == []  # generated, nothing scored
    summaries = score_stored(later, outcomes[False].target.identity, "paper", TASKS)
    assert summaries == list(outcomes[True].summaries)
    assert _scores(later) == _scores(at_once) and len(_scores(later)) == 6
