"""Server death: the server is killed mid-run and comes back on the same port; the client waits (bounded by
``max_retry_time``), reconnects and completes. With replicas, the others carry the load meanwhile.

Timing is controlled, never hoped for: the servers hold requests (``--hold``) so that the kill lands while
requests are provably in flight and the run cannot finish first; the outage lasts until the client has
provably taken the dead replica out (``Client.healthy_replicas``), whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pipeline.evaluation.client import Client
from pipeline.evaluation.scheduler import EvalRun
from tests.support.counting import CountingTask, eval_config, run_eval, until
from tests.support.servers import fake_server


def _rows(out: Path) -> list[tuple[str, str | None, int]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return list(conn.execute("SELECT status, error_class, attempts FROM results"))


async def _client(runs: list[object]) -> Client:
    await until(lambda: bool(runs), "the run started")
    run = runs[0]
    assert isinstance(run, EvalRun)
    return run.client


async def test_server_killed_and_restarted_the_run_waits_and_completes(tmp_path: Path) -> None:
    with fake_server("--hold") as server:
        config = eval_config([server.base_url], tmp_path, concurrency=4, max_attempts=8)
        runs: list[object] = []
        run = asyncio.create_task(run_eval(config, CountingTask(150), runs=runs))
        # Twenty answered, four more in flight: the kill lands mid-run with work committed and work left.
        await asyncio.to_thread(server.release, 20)
        await asyncio.to_thread(server.wait_held, 4, answered=20)
        await asyncio.to_thread(server.kill)
        client = await _client(runs)
        await until(lambda: client.healthy_replicas == 0, "the client took the dead server out")
        assert not run.done()  # waiting for the server, not failing everything
        await asyncio.to_thread(server.restart)
        await asyncio.to_thread(server.release)  # the restarted process holds too: let everything through
        result = await run
        after = server.stats()  # the restarted process
    rows = _rows(tmp_path)
    assert len(rows) == 150
    assert all(status == "succeeded" for status, _, _ in rows)
    assert after["received"] >= 130  # the rest went to the restarted server
    assert result.sent == 150
    with sqlite3.connect(tmp_path / "medsweep.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_server_that_never_returns_fails_the_requests_within_the_bound(tmp_path: Path) -> None:
    with fake_server() as server:
        server.kill()
        config = eval_config([server.base_url], tmp_path, concurrency=4, max_attempts=50, max_retry_time=1.0)
        result = await run_eval(config, CountingTask(8))
    rows = _rows(tmp_path)
    assert len(rows) == 8 and result.sent == 8
    assert {(status, cls) for status, cls, _ in rows} == {("failed", "connection")}


async def test_with_replicas_the_others_carry_the_load_while_one_is_down(tmp_path: Path) -> None:
    with fake_server("--hold") as a, fake_server("--hold") as b:
        config = eval_config([a.base_url, b.base_url], tmp_path, concurrency=8, max_attempts=8)
        runs: list[object] = []
        run = asyncio.create_task(run_eval(config, CountingTask(300), runs=runs))
        # Least-outstanding balancing puts four on each; B dies with its four in flight.
        await asyncio.to_thread(b.wait_held, 4)
        await asyncio.to_thread(b.kill)
        client = await _client(runs)
        await until(lambda: client.healthy_replicas == 1, "the client took B out")
        # While B is out (its probe cannot succeed: nothing listens on its port), A carries the load.
        a_at_kill = a.stats()["answers"]
        await asyncio.to_thread(a.release)
        await asyncio.to_thread(a.wait_held, 0, answered=a_at_kill + 20)
        a_during_outage = a.stats()["answers"] - a_at_kill
        assert client.healthy_replicas == 1  # B really was out all along
        await asyncio.to_thread(b.restart)
        await asyncio.to_thread(b.release)
        await run
    rows = _rows(tmp_path)
    assert len(rows) == 300 and all(status == "succeeded" for status, _, _ in rows)
    assert a_during_outage >= 20  # A kept answering while B was down
