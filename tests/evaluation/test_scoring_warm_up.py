"""What scoring loads on first use (ROUGE, the ICD-10 table) is loaded while the server generates, so that
the summary follows the last answer at once. The fake server holds every request until the test has seen
the warm-up: no timing is assumed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.evaluation.evaluate import EvalOutcome, run_evaluation
from pipeline.tasks import scores
from pipeline.tasks.registry import get_def
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.servers import fake_server

TASKS = ["meqsum", "medisumcode", "mednli"]


def test_every_task_with_a_lazily_loaded_scorer_declares_its_warm_up() -> None:
    # The free-text tasks load ROUGE on first use, MeDiSumCode the ICD-10 table; MedNLI parses labels only.
    assert get_def("meqsum").warm_up is not None
    assert get_def("medisumcode").warm_up is not None
    assert get_def("mednli").warm_up is None
    scores.warm_up(TASKS)  # loads them, and a second call costs nothing
    scores.warm_up(TASKS)


def test_scoring_is_warmed_up_while_requests_are_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warmed = threading.Event()
    calls: list[list[str]] = []
    original = scores.warm_up

    def recording(tasks: Sequence[str]) -> None:
        calls.append(list(tasks))
        original(tasks)
        warmed.set()

    monkeypatch.setattr(scores, "warm_up", recording)
    outcome: list[EvalOutcome] = []
    with fake_server("--hold") as server:
        config = load_config(None, {
            "endpoint": {"base_urls": [server.base_url]}, "model": {"name": "fake-model"},
            "run": {"tasks": TASKS, "data_dir": DEMO, "out": tmp_path, "limit": 2},
            "client": {"concurrency": 4},
        })  # fmt: skip
        runner = threading.Thread(target=lambda: outcome.append(run_evaluation(config)))
        runner.start()
        try:
            server.wait_held(4)  # the server holds a full batch: the eval is busy
            assert warmed.wait(timeout=120), "the eval never warmed scoring up while it waited"
            assert not any(server.stats()["answered"].values())  # all still held: this was during generation
        finally:
            server.release()
            runner.join()
    assert calls == [TASKS]
    assert outcome and outcome[0].run.sent == 6
    assert {s.task for s in outcome[0].summaries} == set(TASKS)


def test_an_eval_that_does_not_score_loads_nothing_for_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Sequence[str]] = []
    monkeypatch.setattr(scores, "warm_up", calls.append)
    with fake_server() as server:
        config = load_config(None, {
            "endpoint": {"base_urls": [server.base_url]}, "model": {"name": "fake-model"},
            "run": {"tasks": ["meqsum"], "data_dir": DEMO, "out": tmp_path, "limit": 2, "score": False},
        })  # fmt: skip
        assert run_evaluation(config).summaries == ()
    assert calls == []
