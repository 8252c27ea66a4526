"""`medsweep eval` on every task of the synthetic demo data against our OpenAI-compatible test server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.tasks import task_names
from pipeline.tasks.prompts import load_prompts
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.servers import fake_server

TASKS = set(task_names())


@pytest.mark.parametrize("variant", ["paper", "structured"])
def test_every_task_end_to_end(tmp_path: Path, variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with fake_server("--max-model-len", "8192") as server:
        args = ["eval", "--base-url", server.base_url, "--model", "fake-model", "--data-dir", str(DEMO),
                "--out", str(out), "--variant", variant]  # fmt: skip
        assert main(args) == 0
        sent = server.stats()["received"]
        assert main(args) == 0  # resumes: nothing left to send
        assert server.stats()["received"] == sent
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM results GROUP BY status"))
        scored = {t for (t,) in conn.execute("SELECT DISTINCT task FROM scores")}
        subtasks = {
            s for (s,) in conn.execute("SELECT DISTINCT subtask FROM results WHERE task='longhealth'")
        }
        lh_valid = {v for (v,) in conn.execute("SELECT strict_valid FROM scores WHERE task = 'longhealth'")}
        qa_valid = {v for (v,) in conn.execute("SELECT strict_valid FROM scores WHERE task = 'medqa'")}
        formats = {t: f for t, f in conn.execute("SELECT task, request_json FROM results GROUP BY task")}
    assert statuses == {"succeeded": sent}
    assert scored == TASKS
    assert subtasks == {"task1", "task2", "task3"}
    closed = {t for t in TASKS if load_prompts(t).structured is not None}
    assert {"mednli", "longhealth", "medisumcode"} <= closed
    for task, meta in formats.items():
        has_schema = json.loads(meta)["response_format"] is not None
        assert has_schema == (variant == "structured" and task in closed), task
    if variant == "structured":  # the test server answers {"answer": "A"} to a schema: valid for LongHealth
        assert lh_valid == {1} == qa_valid
    printed = capsys.readouterr().out
    assert "longhealth/task3" in printed and "medisumcode" in printed
