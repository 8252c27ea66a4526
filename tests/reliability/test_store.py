"""A damaged store: every command that opens it (eval, status, report, sweep) prints one `error:` line naming
the file, that it is damaged and how to recover, exits 2, and leaves the file exactly as it was. A full disk:
one `error:` line, exit 2, sending stops once nothing more can be committed, what was committed is intact
and a rerun elsewhere sends exactly the rest."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.datasets import write_mednli
from tests.support.require import ran, unavailable
from tests.support.servers import REPO, RunningServer, fake_server


def _medsweep(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _eval_args(server: RunningServer, data: Path, out: Path) -> list[str]:
    return [
        "eval", "--task", "mednli", "--model", "fake-model", "--base-url", server.base_url,
        "--data-dir", str(data), "--out", str(out), "--no-backpressure",
    ]  # fmt: skip


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage(data: bytes) -> bytes:
    return random.Random(1).randbytes(len(data))


def _garbage_inside(data: bytes) -> bytes:
    """The header is intact; pages after the first are overwritten (a torn or scribbled file)."""
    return data[:4096] + random.Random(2).randbytes(len(data) - 4096)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": _truncate,
    "garbage": _garbage,
    "garbage_inside": _garbage_inside,
}


@pytest.fixture(scope="module")
def sound_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store of 60 MedNLI results (several pages), closed and checkpointed."""
    root = tmp_path_factory.mktemp("sound")
    data = write_mednli(root / "data", 63)
    with fake_server() as server:
        done = _medsweep(*_eval_args(server, data, root / "out"), cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    conn = sqlite3.connect(root / "out" / "medsweep.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()  # the last connection closes: the WAL is folded into the main file and removed
    assert not (root / "out" / "medsweep.sqlite-wal").exists()
    return root / "out"


def _fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_ino, st.st_mtime_ns


def _assert_damaged_error(result: subprocess.CompletedProcess[str], store: Path) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert f"{store} is damaged" in lines[0]
    assert f'sqlite3 {store} ".recover"' in lines[0] and "restore it from a backup" in lines[0]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_every_command_refuses_a_damaged_store_and_leaves_it_unchanged(
    tmp_path: Path, sound_store: Path, damage: str
) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    store = out / "medsweep.sqlite"
    store.write_bytes(DAMAGE[damage]((sound_store / "medsweep.sqlite").read_bytes()))
    before = _fingerprint(store)
    data = write_mednli(tmp_path / "data", 63)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[sweep]\nout = "{out}"\ndata_dir = "{data}"\ntasks = ["mednli"]\nengine = "cpu"\n\n'
        '[[models]]\nname = "smollm2-135m-instruct"\n'
    )
    with fake_server() as server:
        results = {
            "eval": _medsweep(*_eval_args(server, data, out), cwd=tmp_path),
            "status": _medsweep("status", "--out", str(out), cwd=tmp_path),
            "status --json": _medsweep("status", "--out", str(out), "--json", cwd=tmp_path),
            "report": _medsweep("report", "--out", str(out), "--dest", str(tmp_path / "r"), cwd=tmp_path),
            "sweep": _medsweep("sweep", "--plan", str(plan), cwd=tmp_path),
        }
        received = server.stats()["received"]
    for command, result in results.items():
        assert "Traceback" not in result.stderr, command
        _assert_damaged_error(result, store)
    assert received == 0  # the eval sent nothing
    assert _fingerprint(store) == before  # not written to, not replaced


def test_a_sound_store_passes_and_a_copy_keeps_working(tmp_path: Path, sound_store: Path) -> None:
    """The check has no false alarm on a real store (and the damaged ones above are copies of it)."""
    out = tmp_path / "out"
    shutil.copytree(sound_store, out)
    status = _medsweep("status", "--out", str(out), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert '"succeeded": 60' in status.stdout


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: a disk that fills up during the eval (needs root: mount(8))."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        unavailable("tmpfs", f"cannot mount a 1 MB tmpfs here (needs root): {mounted.stderr.strip()}")
    ran("tmpfs")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_error_line_keeps_what_was_committed_and_the_rerun_sends_the_rest(
    tmp_path: Path, tiny_disk: Path
) -> None:
    from pipeline.evaluation.committer import max_uncommitted

    n = 1000
    data = write_mednli(tmp_path / "data", n + 3)
    out = tiny_disk / "out"
    with fake_server("--answer", "A long answer. " * 200) as server:  # ~3 kB per result: 1 MB fills
        full = _medsweep(*_eval_args(server, data, out), "--concurrency", "4", cwd=tmp_path)
        received = server.stats()["received"]
        roomy = tmp_path / "roomy"
        shutil.copytree(out, roomy)
        rerun = _medsweep(*_eval_args(server, data, roomy), "--concurrency", "4", cwd=tmp_path)
        after = server.stats()
    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors == full.stderr.strip().splitlines()[-1:], full.stderr[-3000:]
    assert f"cannot write to {out / 'medsweep.sqlite'}: the disk is full" in errors[0]
    conn = sqlite3.connect(f"file:{out / 'medsweep.sqlite'}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = conn.execute("SELECT COUNT(*) FROM results WHERE status = 'succeeded'").fetchone()[0]
    finally:
        conn.close()
    assert 0 < committed < n
    # Sending stopped once the store could not commit: every request sent was either committed or is one of
    # the few answers named lost (under the cap on uncommitted answers, plus the workers in flight).
    assert received - committed <= max_uncommitted(4) + 4
    lost = int(errors[0].split("; ")[-1].split()[0])
    assert received == committed + lost
    # The rerun, from a copy on a roomy disk, sends exactly the rest.
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert after["received"] - received == n - committed
    assert len(after["answered"]) == n
