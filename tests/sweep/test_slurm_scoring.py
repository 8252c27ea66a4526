"""The Slurm scoring job without a cluster: a GPU job stopped after every answer was stored and before its
``model_done`` (only ``model_generated`` journaled, e.g. killed in the server's stop) is scored by the
scoring job alone — a rerun's ``generated_earlier`` finds it, so no GPU job is submitted — and then counts as
finished. (The cluster runs of both jobs: tests/sweep/test_slurm.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.config import load_config
from pipeline.evaluation.evaluate import run_evaluation
from pipeline.sweep.journal import Journal, ModelDone, ModelGenerated
from pipeline.sweep.plan import load_plan, resolve_models
from pipeline.sweep.slurm.job import job_runner, run_scoring_job
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.servers import fake_server

MODEL = "meta-llama-3-8b-instruct"
TASKS = ["mednli", "meqsum"]


def test_answers_stored_but_never_scored_are_scored_by_the_scoring_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        f'[sweep]\nout = "{tmp_path / "out"}"\nscheduler = "slurm"\nengine = "local"\ndata_dir = "{DEMO}"\n'
        f'tasks = {TASKS}\nlimit = 3\n\n[slurm]\ngpus_per_node = 4\n\n[[models]]\nname = "{MODEL}"\n'
    )
    plan = load_plan(path)
    (model,) = resolve_models(plan, path)
    runner = job_runner(plan, model, (), Console(), {})
    assert runner.generated_earlier(model) is None  # nothing generated yet: the GPU job is due
    with fake_server("--model", MODEL) as server:  # what the GPU job's eval does: generate, not score
        config = load_config(None, {
            "endpoint": {"base_urls": [server.base_url]}, "model": {"name": MODEL},
            "run": {"tasks": TASKS, "data_dir": DEMO, "out": runner.out, "limit": 3, "score": False},
        })  # fmt: skip
        outcome = run_evaluation(config)
    assert outcome.run.sent == 6
    # The job journaled that generation ended, then was killed before its model_done.
    runner.journal.write(
        ModelGenerated(model=MODEL, identity=outcome.target.identity, tasks=TASKS,
                       settings=runner._settings(model))
    )  # fmt: skip
    assert isinstance(
        runner.generated_earlier(model), ModelGenerated
    )  # a rerun submits the scoring job alone
    assert runner.finished_earlier(model) is None
    assert run_scoring_job(path, MODEL, environ={}) == 0
    with sqlite3.connect(runner.out / "medsweep.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 6
    (done,) = Journal(runner.out).read(ModelDone)
    assert done.status == "done" and done.scored and done.identity == outcome.target.identity
    assert done.timeline is not None and done.timeline["scoring_s"] == done.wall_s  # no GPU job's part
    assert runner.finished_earlier(model) is not None  # a rerun skips it now
    assert "mednli" in capsys.readouterr().out  # the scores, in the job's log
    assert run_scoring_job(path, MODEL, environ={}) == 0  # a second scoring job finds nothing to do
    assert "nothing to score (it is scored already)" in capsys.readouterr().err
    assert len(Journal(runner.out).read(ModelDone)) == 1
