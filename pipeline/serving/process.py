"""Detached server processes (``--engine local|cpu``): start in a new session, stop the whole group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline import proc
from pipeline.errors import EndpointError
from pipeline.files import open_private, private_dir


def spawn_detached(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> int:
    """Start ``argv`` in its own session (one process group to signal), logging to a file."""
    private_dir(log_path.parent)
    fd = open_private(log_path, os.O_WRONLY | os.O_TRUNC)
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise EndpointError(f"cannot start {argv[0]}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return proc.pid


def exit_reason(pid: int) -> str | None:
    """None while ``pid`` runs; else why not. Reaps it if it is our child."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done, status = 0, 0
        if not _exists(pid):
            return "process is gone"
    if done:
        return f"process exited with status {os.waitstatus_to_exitcode(status)}"
    return None if _exists(pid) else "process is gone"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); /proc tells it apart.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def cmdline(pid: int) -> str | None:
    """``pid``'s command line, arguments joined by spaces; None when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def identity(pid: int) -> tuple[str, int | None]:
    """What tells ``pid`` from a later process with the same pid: this boot's id and its start time."""
    return proc.boot_id(), proc.start_ticks(pid)


def not_the_one(pid: int, boot_id: str | None, started: int | None) -> str | None:
    """Why ``pid`` is not the process recorded as (``boot_id``, ``started``), or None when it is (or when
    nothing was recorded, or this host cannot tell)."""
    now = proc.boot_id()
    if boot_id and now and boot_id != now:
        return f"pid {pid} was recorded before the machine restarted (another boot id)"
    current = proc.start_ticks(pid)
    if started is not None and current is not None and current != started:
        return f"pid {pid} is another process now (it started at another time: the pid was reused)"
    return None


def looks_like_server(pid: int) -> bool:
    """For a record without the process's identity (written by an older medsweep): only signal a process
    whose command line mentions vllm or python."""
    line = cmdline(pid)
    if line is None:
        return _exists(pid)
    return "vllm" in line or "python" in line


def stop_group(pid: int, grace: float = 20.0, boot_id: str | None = None, started: int | None = None) -> str:
    """SIGTERM the process group led by ``pid`` (vLLM spawns engine workers), SIGKILL after ``grace`` s —
    only when ``pid`` is still the process recorded as (``boot_id``, ``started``): else nothing is signalled
    and the answer says why (the recorded server is gone: the pid or the whole machine moved on)."""
    if exit_reason(pid) is not None:
        return "already stopped"
    other = not_the_one(pid, boot_id, started)
    if other is not None:
        return f"not signalled: {other}; the server medsweep started is gone"
    if boot_id is None and started is None and not looks_like_server(pid):
        raise EndpointError(f"pid {pid} is not a vLLM server any more (pid reused?); remove the state file")
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if exit_reason(pid) is not None:
            return "stopped"
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    for _ in range(50):
        if exit_reason(pid) is not None:
            break
        time.sleep(0.1)
    return "killed"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def tail_file(path: Path, lines: int = 50) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
