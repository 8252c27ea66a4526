"""The sweep's child processes (pipeline/sweep/children.py): started before their job, with the evaluation
code imported, replaced while jobs remain, ended when the sweep is done."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.sweep.children import Children
from tests.support import child_jobs


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until_dead(pid: int) -> None:
    """Until the killed child is a zombie (its parent, this process, has not reaped it yet)."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(10_000):
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


def _run(children: Children, target: Any, *args: Any) -> tuple[object | None, str, list[object]]:
    heard: list[object] = []

    def hear(message: object) -> bool:
        if isinstance(message, int):
            heard.append(message)
            return True
        return False

    message, why = children.run(target, args, lambda: False, hear)
    return message, why, heard


def test_a_job_runs_in_a_child_started_before_it_with_the_evaluation_code_imported() -> None:
    children = Children(expected=1, at_once=1)
    try:
        (waiting,) = children.waiting(warm_within=60)
        message, why, _ = _run(children, child_jobs.report, "x")
    finally:
        children.close()
    assert why == "exited with status 0"
    assert message == {"pid": waiting, "evaluation": True, "torch": False, "extra": "x"}


def test_children_are_replaced_while_jobs_remain_and_the_unused_end_with_close() -> None:
    children = Children(expected=3, at_once=2)
    first = children.waiting(warm_within=60)
    assert len(first) == 2
    message, _, _ = _run(children, child_jobs.report, "")
    assert isinstance(message, dict) and message["pid"] == first[0]
    assert len(children.waiting(warm_within=60)) == 2  # two jobs remain: one more was started
    _run(children, child_jobs.report, "")
    left = children.waiting(warm_within=60)
    assert len(left) == 1  # one job remains: no new one
    children.close()
    assert not any(_pid_alive(pid) for pid in [*first, *left])
    assert children.waiting() == []
    message, why, _ = _run(children, child_jobs.report, "after")  # a job after close: a fresh process
    assert why == "exited with status 0" and isinstance(message, dict) and message["extra"] == "after"


def test_messages_go_to_the_listener_and_the_last_other_one_is_returned() -> None:
    children = Children(expected=1, at_once=1)
    try:
        message, why, heard = _run(children, child_jobs.chatter, 3)
    finally:
        children.close()
    assert (message, why, heard) == ("done", "exited with status 0", [0, 1, 2])


def test_ctrl_c_does_not_end_a_child_waiting_for_its_job() -> None:
    children = Children(expected=1, at_once=1)
    try:
        (waiting,) = children.waiting(warm_within=60)
        os.kill(waiting, signal.SIGINT)  # the terminal sends it to the whole process group
        message, why, _ = _run(children, child_jobs.report, "still here")
    finally:
        children.close()
    assert why == "exited with status 0"
    assert isinstance(message, dict) and message["pid"] == waiting and message["extra"] == "still here"


def test_a_child_that_died_while_waiting_is_replaced_by_a_fresh_one() -> None:
    children = Children(expected=1, at_once=1)
    try:
        (waiting,) = children.waiting(warm_within=60)
        os.kill(waiting, signal.SIGKILL)
        _wait_until_dead(waiting)
        message, why, _ = _run(children, child_jobs.report, "")
    finally:
        children.close()
    assert why == "exited with status 0"
    assert isinstance(message, dict) and message["pid"] != waiting


def test_a_listener_that_fails_takes_its_child_down_with_it() -> None:
    children = Children(expected=1, at_once=1)

    def hear(message: object) -> bool:
        raise ValueError("a bug in the listener")

    try:
        (waiting,) = children.waiting(warm_within=60)
        with pytest.raises(ValueError, match="a bug"):
            children.run(child_jobs.linger, (), lambda: False, hear)
    finally:
        children.close()
    assert not _pid_alive(waiting)
