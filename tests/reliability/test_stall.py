"""A server that stalls: the run stays bounded by ``max_retry_time``, ends with the right failure class, and
its progress counts only committed results; the ETA follows the recent rate, so a stall shows at once.

No real minutes pass: the stall is the fake server holding requests (``--hold``) that it never releases, and
the ETA is checked against a clock the test advances.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path

from rich.console import Console

from pipeline.evaluation.progress import RATE_WINDOW, Progress
from pipeline.evaluation.scheduler import EvalRun
from tests.support.counting import CountingTask, eval_config, run_eval
from tests.support.servers import fake_server

TIMEOUT, MAX_RETRY_TIME = 1.0, 3.0


def _rows(out: Path) -> list[tuple[str, str | None, int]]:
    with sqlite3.connect(f"file:{out / 'medsweep.sqlite'}?mode=ro", uri=True) as conn:
        return list(conn.execute("SELECT status, error_class, attempts FROM results ORDER BY item_id"))


def _committed(out: Path) -> int:
    if not (out / "medsweep.sqlite").exists():
        return 0
    try:
        return sum(status == "succeeded" for status, _, _ in _rows(out))
    except sqlite3.OperationalError:
        return 0  # the tables are not there yet


async def test_a_stalled_server_ends_within_the_retry_budget_and_progress_counts_only_commits(
    tmp_path: Path,
) -> None:
    with fake_server("--hold") as server:
        config = eval_config(
            [server.base_url], tmp_path, concurrency=8, timeout=TIMEOUT, max_retry_time=MAX_RETRY_TIME,
            max_attempts=50,
        )  # fmt: skip
        runs: list[object] = []
        running = asyncio.create_task(run_eval(config, CountingTask(12), runs=runs))
        await asyncio.to_thread(server.release, 5)  # the server answers five, then stalls for good
        while True:
            committed = _committed(tmp_path)
            shown = runs[0].progress.tasks["counting"].succeeded if runs else 0  # type: ignore[attr-defined]
            assert shown <= committed  # the display never runs ahead of the store
            if shown == 5:
                break
            assert not running.done(), running.result()
            await asyncio.sleep(0.01)
        run = runs[0]
        assert isinstance(run, EvalRun)
        assert run.progress.line().startswith("progress: 5/12 done, 0 failed")
        # Nothing more is ever answered: only the retry budget can end the run, and it does.
        result = await running
        seen = server.stats()["bodies_seen"]
    rows = _rows(tmp_path)
    failed = [r for r in rows if r[0] == "failed"]
    assert len(rows) == 12 and len(failed) == 7 and result.sent == 12
    assert {cls for _, cls, _ in failed} == {"timeout"}
    # Every attempt of a stalled request took its full timeout and none started after the budget was spent,
    # so no request made more than MAX_RETRY_TIME / TIMEOUT + 1 attempts; each was retried at least once.
    assert all(2 <= attempts <= MAX_RETRY_TIME / TIMEOUT + 1 for _, _, attempts in failed)
    assert len(seen) == 12
    p = run.progress.tasks["counting"]
    assert (p.done, p.succeeded, p.failed) == (12, 5, 7)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _commit(progress: Progress, clock: _Clock, per_second: int, seconds: int) -> None:
    for _ in range(seconds):
        clock.now += 1
        for _ in range(per_second):
            progress.add_committed("mednli", True, None, 4)
        progress.line()  # the display samples the counters, as it does every refresh


def test_the_eta_follows_the_recent_rate_and_says_stalled_when_nothing_commits() -> None:
    clock = _Clock()
    progress = Progress(["mednli"], console=Console(file=io.StringIO()), clock=clock)
    progress.tasks["mednli"].total = 10_000
    assert progress.line().endswith("ETA -")  # nothing committed yet: no guess
    _commit(progress, clock, per_second=100, seconds=10)  # 1,000 in 10 s
    assert "ETA 1m30s" in progress.line()  # 9,000 left at 100/s
    clock.now += RATE_WINDOW + 1  # the server stalls: nothing for a minute
    assert "ETA stalled" in progress.line()
    _commit(progress, clock, per_second=1, seconds=120)  # then it answers one a second
    # 8,880 left at the recent 1/s: 2 h 28 min, not the 14 min the whole run's average would promise.
    assert "ETA 2h28m" in progress.line()
    table = io.StringIO()
    Console(file=table, width=200).print(progress.render())
    assert "1,120/10000" not in table.getvalue() and "1120/10000" in table.getvalue()
    assert "2h28m" in table.getvalue()
