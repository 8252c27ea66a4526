"""The client against our fault-injecting server: what is retried, what is not, and how it is recorded."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.support.counting import CountingTask, eval_config, run_eval
from tests.support.servers import fake_server


def _rows(out: Path) -> list[tuple[str, str | None, int]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return list(conn.execute("SELECT status, error_class, attempts FROM results ORDER BY item_id"))


async def test_retryable_500s_are_retried_until_success(tmp_path: Path) -> None:
    with fake_server("--fail-first", "3") as server:
        result = await run_eval(eval_config([server.base_url], tmp_path, concurrency=1), CountingTask(2))
    rows = _rows(tmp_path)
    assert [r[0] for r in rows] == ["succeeded", "succeeded"]
    assert max(r[2] for r in rows) == 4  # three injected 500s, then success
    assert result.sent == 2


async def test_400_is_not_retried(tmp_path: Path) -> None:
    with fake_server("--status-always", "400") as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(3))
        assert server.stats()["received"] == 3
    assert _rows(tmp_path) == [("failed", "bad_request", 1)] * 3


async def test_429_with_retry_after_is_honoured_and_retried(tmp_path: Path) -> None:
    with fake_server("--p429", "0.5", "--retry-after", "0.05", "--seed", "3") as server:
        await run_eval(eval_config([server.base_url], tmp_path, max_attempts=20), CountingTask(20))
        stats = server.stats()
    rows = _rows(tmp_path)
    assert all(r[0] == "succeeded" for r in rows)
    assert stats["received"] > 20  # some were refused and sent again


async def test_context_length_400_is_its_own_class(tmp_path: Path) -> None:
    with fake_server("--max-model-len", "4") as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(2, max_tokens=64))
        assert server.stats()["received"] == 2
    assert _rows(tmp_path) == [("failed", "context_length", 1)] * 2


async def test_exhausted_retries_record_the_class_not_a_wrong_answer(tmp_path: Path) -> None:
    with fake_server("--p500", "1.0") as server:
        await run_eval(eval_config([server.base_url], tmp_path, max_attempts=3), CountingTask(2))
        assert server.stats()["received"] == 6
    assert _rows(tmp_path) == [("failed", "server_error", 3)] * 2


async def test_timeouts_resets_and_truncated_bodies_are_retried(tmp_path: Path) -> None:
    args = ("--phang", "0.1", "--preset", "0.1", "--ptruncated", "0.1", "--hang-seconds", "30", "--seed", "7")
    with fake_server(*args) as server:
        # The timeout ends the hangs; it is 2 s so that an answer of a loaded machine never reaches it.
        config = eval_config([server.base_url], tmp_path, timeout=2.0, max_attempts=30, concurrency=16)
        await run_eval(config, CountingTask(60))
    rows = _rows(tmp_path)
    assert len(rows) == 60
    assert all(r[0] == "succeeded" for r in rows)
    assert any(r[2] > 1 for r in rows)


async def test_wrong_api_key_is_class_auth(tmp_path: Path) -> None:
    with fake_server("--api-key", "right-key") as server:
        await run_eval(eval_config([server.base_url], tmp_path), CountingTask(2), api_key="wrong-key")
    assert _rows(tmp_path) == [("failed", "auth", 1)] * 2


async def test_replicas_share_load_and_a_dead_one_is_taken_out(tmp_path: Path) -> None:
    with fake_server() as a, fake_server() as b:
        b.kill()
        config = eval_config([a.base_url, b.base_url], tmp_path, max_attempts=10)
        await run_eval(config, CountingTask(40))
        assert a.stats()["received"] == 40
    assert all(r[0] == "succeeded" for r in _rows(tmp_path))


async def test_least_outstanding_balancing_uses_both_replicas(tmp_path: Path) -> None:
    # Both servers hold every request: the eight in flight must be spread four and four, whatever the speed.
    with fake_server("--hold") as a, fake_server("--hold") as b:
        config = eval_config([a.base_url, b.base_url], tmp_path, concurrency=8)
        run = asyncio.create_task(run_eval(config, CountingTask(80)))
        await asyncio.to_thread(a.wait_held, 4)
        await asyncio.to_thread(b.wait_held, 4)
        held = (a.stats()["held"], b.stats()["held"])
        a.release()
        b.release()
        await run
        received = (a.stats()["received"], b.stats()["received"])
    assert held == (4, 4)
    assert sum(received) == 80
