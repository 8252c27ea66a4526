"""Fault soak: the real `medsweep eval` against our server injecting 10 % HTTP 500, 5 % 429 with
Retry-After, 2 % connection resets, 1 % hangs past the timeout and 1 % truncated JSON bodies.

Every request ends succeeded or recorded failed with its class; none is lost, none is stored twice, no
failure is scored as a wrong answer, and a rerun sends only the failed ones: no committed request is ever
sent again. Memory: scoring and the summary add at most 25 % to the peak RSS the eval reached while sending
(tests/support/rss_eval.py measures both peaks in the eval's own process; memory, not time). `make test`
runs 20,000 requests at concurrency 256; `make soak` (``-m slow``) runs 100,000 at concurrency 256
(``SOAK_REQUESTS``, ``SOAK_CONCURRENCY`` and ``SOAK_TIMEOUT`` override).

What the server counts is at-least-once by nature: an attempt the client gave up on (its timeout passed,
on a loaded machine too) may still be answered by the server, and the retry is answered again. The store
keeps one row per request whatever the server did, so the assertions are about the store and about what
was sent after a commit, never about how fast the server answered. The timeout is sized to the load (the
hangs still hang past it) so that the soak exercises the fault mix rather than an overloaded machine.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.datasets import write_mednli
from tests.support.paths import TESTS_DIR
from tests.support.servers import REPO, fake_server

FAULTS = (
    "--p500", "0.10", "--p429", "0.05", "--retry-after", "0.2", "--preset", "0.02",
    "--phang", "0.01", "--hang-seconds", "3600", "--ptruncated", "0.01",
)  # fmt: skip
TRANSIENT_CLASSES = {"server_error", "rate_limited", "connection", "timeout", "invalid_response"}
RSS_EVAL = TESTS_DIR / "support" / "rss_eval.py"
MAX_SCORING_GROWTH = 0.25  # of the peak RSS while sending: what scoring and the summary may add


def medsweep(
    *args: str, cwd: Path, rss_phases: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real CLI; return its result and its peak RSS in MB (its own, not the server's). With
    ``rss_phases``, through tests/support/rss_eval.py, which writes its peaks by phase there."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = str(REPO)
    command = ["-m", "pipeline"] if rss_phases is None else [str(RSS_EVAL), str(rss_phases)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, *command, *args], cwd=cwd, env=env, stdout=out, stderr=err,
            stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss in KiB
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())
    return result, usage.ru_maxrss / 1024


def _soak(tmp_path: Path, n_requests: int, concurrency: int, timeout: float) -> dict[str, Any]:
    data = write_mednli(tmp_path / "data", n_requests + 3)
    out = tmp_path / "out"
    config = tmp_path / "soak.toml"
    # Short backoff so the test is quick; 3 attempts so that some requests exhaust them and are recorded.
    config.write_text("[client]\nbackoff_base = 0.01\nbackoff_max = 0.2\nmax_retry_time = 600\n")
    args = (
        "eval", "--task", "mednli", "--model", "fake-model", "--data-dir", str(data), "--out", str(out),
        "--config", str(config), "--concurrency", str(concurrency), "--timeout", f"{timeout:g}",
        "--max-attempts", "3", "--no-backpressure",
    )  # fmt: skip
    with fake_server(*FAULTS, "--seed", "11") as server:
        started = time.monotonic()
        phases = tmp_path / "rss.json"
        first, peak_rss_mb = medsweep(*args, "--base-url", server.base_url, cwd=tmp_path, rss_phases=phases)
        first_s = time.monotonic() - started  # reported, never asserted
        after_first = server.stats()
        rows = _results(out)
        scored = _scored_keys(out)
        # Rerun until nothing is left failed (each rerun retries only the failed keys).
        reruns = 0
        last = first
        while _results_failed(out) and reruns < 5:
            reruns += 1
            last, _ = medsweep(*args, "--base-url", server.base_url, cwd=tmp_path)
        final_stats = server.stats()
    failed = [r for r in rows if r["status"] == "failed"]
    succeeded = [r for r in rows if r["status"] == "succeeded"]
    answered = after_first["answered"]
    # Answers the server gave to attempts the client had already given up on (then retried).
    late_answers = sum(n - 1 for n in answered.values())
    seen_first, seen_final = after_first["bodies_seen"], final_stats["bodies_seen"]
    resent = {d for d, n in seen_final.items() if n > seen_first.get(d, 0)}
    figures = {
        "requests": n_requests,
        "concurrency": concurrency,
        "timeout_s": timeout,
        "seconds_first_run": round(first_s, 1),
        "peak_rss_mb_first_run": round(peak_rss_mb),
        "peak_rss_mb_by_phase": json.loads(phases.read_text()) if phases.exists() else None,
        "received_first_run": after_first["received"],
        "succeeded_first_run": len(succeeded),
        "failed_first_run": _by_class(failed),
        "attempts_histogram": _attempts(rows),
        "answers_after_the_client_gave_up": late_answers,
        "reruns_to_complete": reruns,
        "sent_by_the_reruns": len(resent),
    }
    print("soak figures:", json.dumps(figures))  # before the assertions: a failed soak still reports
    assert first.returncode == 0, first.stderr[-3000:]  # every request has a final outcome
    assert last.returncode == 0, last.stderr[-3000:]
    # 0. Scoring and the summary work in bounded batches: they add little to the peak reached while sending.
    peaks = figures["peak_rss_mb_by_phase"]
    assert peaks["end"] <= peaks["sending"] * (1 + MAX_SCORING_GROWTH), peaks

    # 1. None lost, none stored twice: one row per planned request, every item exactly once.
    assert len(rows) == n_requests
    assert len({r["item_id"] for r in rows}) == n_requests
    assert len(failed) + len(succeeded) == n_requests
    # 2. Every failure carries its class and message, and is neither an output nor a score.
    assert all(r["error_class"] in TRANSIENT_CLASSES and r["error_message"] for r in failed)
    assert all(r["output"] is None for r in failed)
    assert not {r["key"] for r in failed} & scored
    assert {r["key"] for r in succeeded} == scored
    # 3. Transient failures that outlived their retries are named by class in a note (exit 0: final outcomes).
    assert ("ended failed and are not scored" in first.stderr) == bool(failed)
    # 4. Each planned request is one request body (a failed one may never have reached the server); the
    #    server answered every stored success, and a body more than once only when the client had given up
    #    on an attempt and retried it.
    assert len(succeeded) <= len(seen_first) <= n_requests
    assert len(answered) >= len(succeeded)
    assert late_answers <= sum(r["attempts"] - 1 for r in rows)
    # 5. No committed request was sent again: the reruns sent exactly the bodies of the failed requests
    #    (each failed key is sent again, since all end succeeded; any more would be a committed one).
    assert len(resent) == len(failed)
    assert len(seen_final) == n_requests
    final_rows = _results(out)
    assert len(final_rows) == n_requests and all(r["status"] == "succeeded" for r in final_rows)
    kept = {r["key"]: r["output"] for r in succeeded}
    assert {r["key"]: r["output"] for r in final_rows if r["key"] in kept} == kept  # none overwritten
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return figures


def _results(out: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM results")]


def _results_failed(out: Path) -> bool:
    return any(r["status"] == "failed" for r in _results(out))


def _scored_keys(out: Path) -> set[str]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return {k for (k,) in conn.execute("SELECT key FROM scores")}


def _by_class(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["error_class"]] = counts.get(r["error_class"], 0) + 1
    return counts


def _attempts(rows: list[dict[str, Any]]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for r in rows:
        counts[r["attempts"]] = counts.get(r["attempts"], 0) + 1
    return dict(sorted(counts.items()))


def test_fault_soak_20000_requests_bounded_memory(tmp_path: Path) -> None:
    _soak(tmp_path, 20_000, concurrency=256, timeout=10.0)


@pytest.mark.slow
def test_fault_soak_full_size(tmp_path: Path) -> None:
    n = int(os.environ.get("SOAK_REQUESTS", "100000"))
    concurrency = int(os.environ.get("SOAK_CONCURRENCY", "256"))
    # 256 requests in flight against one server process on a small machine wait a while for their turn.
    timeout = float(os.environ.get("SOAK_TIMEOUT", "10"))
    _soak(tmp_path, n, concurrency=concurrency, timeout=timeout)
