"""Two evals of the same model into the same store: the second stops at once with one line naming the holder,
so no request is sent twice; a lock left by a dead process is taken over. Timing is controlled: the fake
server holds the first eval's requests, so it is provably mid-run when the second starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import orjson
import pytest

from pipeline.store.lock import Holder, StoreLockedError, lock_path, store_lock
from tests.support.datasets import write_mednli
from tests.support.servers import REPO, RunningServer, fake_server


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = str(REPO)
    return env


def _eval(server: RunningServer, data: Path, out: Path) -> subprocess.Popen[str]:
    args = [
        "eval", "--task", "mednli", "--model", "fake-model", "--base-url", server.base_url,
        "--data-dir", str(data), "--out", str(out), "--concurrency", "2", "--no-backpressure",
    ]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args], cwd=out.parent, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def test_a_second_eval_of_the_same_model_stops_at_once_naming_the_holder(tmp_path: Path) -> None:
    data = write_mednli(tmp_path / "data", 23)
    out = tmp_path / "out"
    with fake_server("--hold") as server:
        first = _eval(server, data, out)
        server.wait_held(2)  # the first eval is sending: it holds the lock
        second = _eval(server, data, out)
        _, err = second.communicate(timeout=120)
        held_meanwhile = server.stats()
        server.release()
        _, first_err = first.communicate(timeout=120)
        seen = server.stats()["bodies_seen"]
    assert second.returncode == 2, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: fake-model (paper) is already being evaluated"), (
        err
    )
    assert f"by pid {first.pid} on {socket.gethostname()} since " in lines[0]
    assert held_meanwhile["received"] == 2  # the second sent nothing
    assert first.returncode == 0, first_err[-3000:]
    assert len(seen) == 20 and set(seen.values()) == {1}  # every request sent exactly once


def test_the_lock_of_a_killed_eval_is_taken_over_and_the_rerun_completes(tmp_path: Path) -> None:
    data = write_mednli(tmp_path / "data", 23)
    out = tmp_path / "out"
    with fake_server("--hold") as server:
        first = _eval(server, data, out)
        server.wait_held(2)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
        (lock,) = out.glob("medsweep.sqlite.*.lock")
        assert orjson.loads(lock.read_bytes())["pid"] == first.pid  # the dead holder's record is left
        server.release()
        again = _eval(server, data, out)
        _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    assert lock.read_bytes() == b""  # released


def _hold_in_child(store: Path, model: str, variant: str) -> subprocess.Popen[str]:
    code = (
        "import sys; from pathlib import Path; from pipeline.store.lock import store_lock\n"
        f"with store_lock(Path({str(store)!r}), {model!r}, {variant!r}):\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_the_lock_is_per_store_model_and_variant(tmp_path: Path) -> None:
    store = tmp_path / "medsweep.sqlite"
    child = _hold_in_child(store, "org/model-a@rev", "paper")
    try:
        with (
            pytest.raises(StoreLockedError, match=f"by pid {child.pid} on "),
            store_lock(store, "org/model-a@rev", "paper"),
        ):
            pass
        with store_lock(store, "org/model-a@rev", "structured"), store_lock(store, "model-b", "paper"):
            pass
        with store_lock(tmp_path / "other.sqlite", "org/model-a@rev", "paper"):
            pass
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)
    with store_lock(store, "org/model-a@rev", "paper") as holder:
        assert holder.pid == os.getpid()


def _write_record(store: Path, **changes: object) -> None:
    """A holder record as a process of this host writes it, with ``changes``."""
    record = {**asdict(Holder.me("m", "paper")), **changes}
    lock_path(store, "m", "paper").write_bytes(orjson.dumps(record))


def test_a_record_of_a_dead_pid_on_this_host_is_stale_one_from_another_host_is_not(tmp_path: Path) -> None:
    store = tmp_path / "medsweep.sqlite"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_record(store, pid=gone.pid, proc_start=None)
    with store_lock(store, "m", "paper"):
        pass
    _write_record(store, host="another-node", started_at=time.time())
    with (
        pytest.raises(
            StoreLockedError, match=r"on another-node since .*If that process no longer runs, delete"
        ),
        store_lock(store, "m", "paper"),
    ):
        pass
