"""Crash and resume: `kill -9` the real `medsweep eval` process at 10 seeded random points, SIGINT and
SIGTERM it (while requests are in flight, while it scores, while it prints the summary), and read the store
while it writes.

After every crash the store passes ``PRAGMA integrity_check``; no request whose result was committed is
ever sent again (the fake server counts every body it receives); after resuming, the store holds exactly
the keys, results and scores of an uninterrupted run.

Timing is controlled, never hoped for: the fake server holds every request until the test releases it
(``--hold``), so a kill or a signal lands while requests are provably in flight and the run cannot finish
first, however fast the machine; signals after the requests use ``tests/support/pausing_eval.py``, which
stops the real CLI at the start of a phase until the test has sent its signal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.datasets import write_mednli
from tests.support.paths import TESTS_DIR
from tests.support.servers import REPO, RunningServer, fake_server

N_REQUESTS = 120
SERVER_ARGS = ("--delay", "0.05")
PAUSING_EVAL = TESTS_DIR / "support" / "pausing_eval.py"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _eval_args(server: RunningServer, data: Path, out: Path, concurrency: int = 4) -> list[str]:
    return [
        "eval", "--task", "mednli", "--model", "fake-model", "--base-url", server.base_url,
        "--data-dir", str(data), "--out", str(out), "--concurrency", str(concurrency), "--timeout", "10",
        "--no-backpressure",
    ]  # fmt: skip


def _spawn(args: list[str], cwd: Path, pause_at: str | None = None) -> subprocess.Popen[str]:
    program = [str(PAUSING_EVAL), pause_at] if pause_at else ["-m", "pipeline"]
    return subprocess.Popen(
        [sys.executable, *program, *args], cwd=cwd, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.PIPE if pause_at else subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _wait_committed(out: Path, n: int, proc: subprocess.Popen[str]) -> None:
    """Poll the store (read-only) until it holds ``n`` succeeded results; the eval must still be running."""
    while _committed(out) < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.01)


def _committed(out: Path) -> int:
    """Succeeded results a reader sees now (read-only, concurrently with the writer)."""
    path = out / "medsweep.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM results WHERE status = 'succeeded'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the writer has not created the tables yet


def _integrity(out: Path) -> str:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _results(out: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return {
            key: rest
            for key, *rest in conn.execute(
                "SELECT key, task, item_id, status, error_class, output, finish_reason FROM results"
            )
        }


def _scores(out: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return {
            key: tuple(rest)
            for key, *rest in conn.execute("SELECT key, parsed_json, metrics_json FROM scores")
        }


def _body_digests(server: RunningServer, data: Path) -> dict[str, str]:
    """content key → sha256 of the request body the eval loop sends for it (what the server counts)."""
    from pipeline.config import load_config
    from pipeline.endpoint import Endpoint
    from pipeline.evaluation.evaluate import resolve_target
    from pipeline.evaluation.scheduler import prompt_options
    from pipeline.evaluation.tokens import make_counter
    from pipeline.request import content_key, request_body
    from pipeline.tasks import get_task
    from pipeline.tasks.base import RenderContext

    async def collect() -> dict[str, str]:
        config = load_config(
            None, {"endpoint": {"base_urls": [server.base_url]}, "model": {"name": "fake-model"}}, environ={}
        )
        async with Endpoint(server.base_url) as endpoint:
            target, config = resolve_target(config, await endpoint.list_models(), server.base_url)
            target = dataclasses.replace(target, truncation="v3")  # the fake server answers vLLM's /version
            counter = await make_counter(endpoint, target.served_name)
            ctx = RenderContext(chat_mode=target.chat_mode, max_model_len=target.max_model_len,  # type: ignore[arg-type]
                                counter=counter, truncation=target.truncation)  # fmt: skip
            sampling = config.sampling.to_sampling()
            out: dict[str, str] = {}
            async for request in get_task("mednli").requests(data, ctx):
                body = request_body(request, target.served_name, sampling.as_body())
                key = content_key(target.identity, request, sampling, prompt_options(config, target))
                out[key] = hashlib.sha256(body).hexdigest()
            return out

    return asyncio.run(collect())


def test_kill_9_at_ten_random_points_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    data = write_mednli(tmp_path / "data", N_REQUESTS + 3)
    rng = random.Random(20240611)
    with fake_server(*SERVER_ARGS) as baseline_server:
        baseline = _spawn(_eval_args(baseline_server, data, tmp_path / "baseline"), tmp_path)
        assert baseline.wait(timeout=300) == 0, baseline.communicate()[1][-3000:]
    out = tmp_path / "crashed"
    kills: list[tuple[int, int, int]] = []
    with fake_server(*SERVER_ARGS, "--hold") as server:
        digests = _body_digests(server, data)
        assert len(digests) == N_REQUESTS
        sent_when_committed: dict[str, int] = {}
        for _ in range(10):
            # A kill point: `want` new commits, with `extra` more answers let through that may be anywhere
            # between the server and the store at the kill (want 0: a random moment, maybe at start-up).
            # Every other request is held, so the run cannot finish before the kill on any machine: at most
            # 10 x (7 + 3) answers are let through, fewer than the 120 requests.
            before = _committed(out)
            want, extra = rng.randint(0, 7), rng.randint(0, 3)
            grace = rng.uniform(0.0, 2.0)
            proc = _spawn(_eval_args(server, data, out), tmp_path)
            if want:
                server.release(want + extra)
                _wait_committed(out, before + want, proc)
            else:
                time.sleep(grace)  # picks the kill moment; nothing is asserted about what happened by then
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            server.hold()  # permits the killed process did not use are not carried over
            kills.append((want, extra, _committed(out) - before))
            if not (out / "medsweep.sqlite").exists():
                continue
            assert _integrity(out) == "ok"
            seen = server.stats()["bodies_seen"]
            committed = {k for k, row in _results(out).items() if row[2] == "succeeded"}
            for key in committed:
                # No committed key is received again, now or later; every committed key was received once
                # before (a crash can lose an answer that was not yet committed, never a committed one).
                n = seen.get(digests[key], 0)
                assert n >= 1
                assert sent_when_committed.setdefault(key, n) == n, f"committed key {key} was sent again"
        server.release()
        resumed = _spawn(_eval_args(server, data, out), tmp_path)
        _, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err[-3000:]
        seen = server.stats()["bodies_seen"]
    assert _integrity(out) == "ok"
    for key, n in sent_when_committed.items():
        assert seen[digests[key]] == n, f"committed key {key} was sent again after resume"
    assert any(n for _, _, n in kills), kills  # some kills landed mid-run, after commits
    crashed, clean = _results(out), _results(tmp_path / "baseline")
    assert set(crashed) == set(clean) == set(digests)
    assert crashed == clean
    assert _scores(out) == _scores(tmp_path / "baseline")
    print("kill points (commits wanted, extra answers let through, commits seen):", kills)


def _signal_mid_run(tmp_path: Path, sig: int) -> None:
    data = write_mednli(tmp_path / "data", 43)
    out = tmp_path / "out"
    with fake_server("--hold") as server:
        args = _eval_args(server, data, out, concurrency=2)
        proc = _spawn(args, tmp_path)
        server.release(4)
        statuses = []
        while _committed(out) < 4:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            # `medsweep status` reads the store while the eval writes it (WAL).
            status = subprocess.run(
                [sys.executable, "-m", "pipeline", "status", "--out", str(out), "--json"],
                cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if (out / "medsweep.sqlite").exists() and status.returncode == 0:
                statuses.append(json.loads(status.stdout)["succeeded"])
            time.sleep(0.05)
        # Both workers now wait on a held request: the eval is provably mid-run when the signal comes.
        server.wait_held(2)
        # And `medsweep report` builds from the store while it is being written.
        report = subprocess.run(
            [sys.executable, "-m", "pipeline", "report", "--out", str(out),
             "--dest", str(tmp_path / "report"), "--format", "md,csv"],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert report.returncode == 0, report.stderr[-3000:]
        assert proc.poll() is None
        proc.send_signal(sig)
        # The two in flight get their answers during the settle and are committed. (Were the signal handled
        # only after they came back, a worker's next request would be held until the settle ends: the same
        # six are committed, the run just takes the settle's ten seconds longer.)
        server.release(2)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-3000:]
        assert "Resume with:" in err
        resume_line = err.split("Resume with:", 1)[1].strip().splitlines()[0]
        resume = shlex.split(resume_line)
        assert resume[0] == "medsweep" and resume[1:] == args
        assert _integrity(out) == "ok"
        committed = {k for k, row in _results(out).items() if row[2] == "succeeded"}
        assert len(committed) == 6
        seen_before = server.stats()["bodies_seen"]
        server.release()
        again = subprocess.run(
            [sys.executable, "-m", "pipeline", *resume[1:]], cwd=tmp_path, env=_env(), capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        seen_after = server.stats()["bodies_seen"]
    assert statuses == sorted(statuses)
    results = _results(out)
    assert len(results) == 40 and all(row[2] == "succeeded" for row in results.values())
    # The resumed run sent only what was not committed: 40 distinct bodies, none of the committed re-sent.
    resent = {d for d, n in seen_after.items() if n > seen_before.get(d, 0)}
    assert len(seen_after) == 40
    assert len(resent) == 40 - len(committed)
    assert _integrity(out) == "ok"


def test_sigint_exits_130_prints_the_resume_command_and_the_rerun_completes(tmp_path: Path) -> None:
    _signal_mid_run(tmp_path, signal.SIGINT)


def test_sigterm_exits_130_prints_the_resume_command_and_the_rerun_completes(tmp_path: Path) -> None:
    _signal_mid_run(tmp_path, signal.SIGTERM)


@pytest.mark.parametrize("phase", ["score_tasks", "print_summary"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_after_the_requests_exits_130_with_the_resume_command(
    tmp_path: Path, sig: int, phase: str
) -> None:
    """Every request is answered and committed; the signal comes while the eval scores or prints its
    summary. It still ends with the resume line and 130, and the rerun sends nothing and completes."""
    data = write_mednli(tmp_path / "data", 13)
    out = tmp_path / "out"
    with fake_server() as server:
        args = _eval_args(server, data, out, concurrency=2)
        proc = _spawn(args, tmp_path, pause_at=phase)
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            if line.strip() == f"paused at {phase}":
                break
        else:
            raise AssertionError(f"the eval never reached {phase}: {proc.communicate()[1][-3000:]}")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-3000:]
        resume = shlex.split(err.split("Resume with:", 1)[1].strip().splitlines()[0])
        assert resume[1:] == args
        assert "Traceback" not in err
        received = server.stats()["received"]
        again = subprocess.run(
            [sys.executable, "-m", "pipeline", *resume[1:]], cwd=tmp_path, env=_env(), capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        assert server.stats()["received"] == received == 10
    assert _integrity(out) == "ok"
    assert len(_scores(out)) == 10
