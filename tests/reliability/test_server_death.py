"""Server death: the server is killed mid-run and comes back on the same port; the client waits (bounded by
``max_retry_time``), reconnects and completes. With replicas, the others carry the load meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.support.counting import CountingTask, engine_config, run_engine
from tests.support.servers import RunningServer, fake_server


def _rows(out: Path) -> list[tuple[str, str | None, int]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return list(conn.execute("SELECT status, error_class, attempts FROM results"))


async def _wait_received(server: RunningServer, n: int) -> None:
    while (await asyncio.to_thread(server.stats))["received"] < n:
        await asyncio.sleep(0.02)


async def test_server_killed_and_restarted_the_run_waits_and_completes(tmp_path: Path) -> None:
    with fake_server("--delay", "0.02") as server:
        config = engine_config([server.base_url], tmp_path, concurrency=4, max_attempts=8)
        run = asyncio.create_task(run_engine(config, CountingTask(150)))
        await _wait_received(server, 20)
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(1.0)
        assert not run.done()  # waiting for the server, not failing everything
        await asyncio.to_thread(server.restart)
        result = await run
        after = server.stats()  # the restarted process
    rows = _rows(tmp_path)
    assert len(rows) == 150
    assert all(status == "succeeded" for status, _, _ in rows)
    assert after["received"] > 0  # requests went to the restarted server
    assert result.sent == 150
    with sqlite3.connect(tmp_path / "medsweep.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_server_that_never_returns_fails_the_requests_within_the_bound(tmp_path: Path) -> None:
    with fake_server() as server:
        server.kill()
        config = engine_config(
            [server.base_url], tmp_path, concurrency=4, max_attempts=50, max_retry_time=1.0
        )
        result = await run_engine(config, CountingTask(8))
    rows = _rows(tmp_path)
    assert len(rows) == 8 and result.sent == 8
    assert {(status, cls) for status, cls, _ in rows} == {("failed", "connection")}


async def test_with_replicas_the_others_carry_the_load_while_one_is_down(tmp_path: Path) -> None:
    with fake_server("--delay", "0.02") as a, fake_server("--delay", "0.02") as b:
        config = engine_config([a.base_url, b.base_url], tmp_path, concurrency=8, max_attempts=8)
        run = asyncio.create_task(run_engine(config, CountingTask(300)))
        await _wait_received(b, 20)
        await asyncio.to_thread(b.kill)
        a_at_kill = (await asyncio.to_thread(a.stats))["received"]
        await asyncio.sleep(1.0)
        a_after_outage = (await asyncio.to_thread(a.stats))["received"]
        await asyncio.to_thread(b.restart)
        await run
    rows = _rows(tmp_path)
    assert len(rows) == 300 and all(status == "succeeded" for status, _, _ in rows)
    assert a_after_outage - a_at_kill >= 20  # A kept answering while B was down
