"""The Slurm commands medsweep runs — sbatch, squeue, sacct, scancel — and their failures as one line.

The commands are used as the user has them: ``SLURM_CONF`` and the user's defaults apply. Job state comes
from ``squeue --states=all`` (it keeps ended jobs for the cluster's MinJobAge) and from ``sacct`` where the
cluster keeps accounting (without it, sacct fails and is ignored).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.errors import ConfigError, EndpointError

_TIMEOUT_S = 60.0
# Slurm job states after which a job holds no resources (squeue(1), JOB STATE CODES).
ENDED = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
    "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobInfo:
    job_id: str
    name: str
    state: str  # e.g. PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT
    reason: str = ""  # squeue's reason / node list
    nodes: str = ""

    @property
    def active(self) -> bool:
        return self.state not in ENDED


def require(*tools: str) -> None:
    """ConfigError naming the first Slurm command that is not on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise ConfigError(
                f'{tool} not found on PATH: scheduler = "slurm" submits from a Slurm login node (install '
                'the Slurm client tools or load their module), or use scheduler = "local"'
            )


def _run(argv: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    require(argv[0])
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise EndpointError(
            f"{argv[0]} did not answer within {_TIMEOUT_S:g} s ({what}); is slurmctld up?"
        ) from None


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    text = " ".join(line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip())
    return text or f"exit status {proc.returncode}"


def submit(script: Path, *, test_only: bool = False, dependency: str | None = None) -> str:
    """Submit ``script`` (after ``dependency``, e.g. ``afterany:4711``); the job id (``--test-only``:
    sbatch's answer). ConfigError with sbatch's own message when it refuses (a partition that does not
    exist, a time over the partition's limit)."""
    argv = submit_argv(script, test_only=test_only, dependency=dependency)
    proc = _run(argv, "submitting")
    if proc.returncode != 0:
        raise ConfigError(f"sbatch refused {script.name}: {_message(proc)}")
    if test_only:
        return _message(proc)
    # --parsable prints "jobid" or "jobid;cluster".
    return proc.stdout.strip().split(";")[0]


def submit_argv(script: Path, *, test_only: bool = False, dependency: str | None = None) -> list[str]:
    """The sbatch command line of ``submit`` (tests assert it)."""
    if test_only:
        return ["sbatch", "--test-only", str(script)]
    after = [f"--dependency={dependency}"] if dependency else []
    return ["sbatch", "--parsable", *after, str(script)]


def queue(prefix: str) -> dict[str, JobInfo]:
    """The user's jobs whose name starts with ``prefix``, ended ones too while Slurm still lists them."""
    proc = _run(["squeue", "--me", "--noheader", "--states=all", "--format=%i|%j|%T|%r|%N"], "listing jobs")
    if proc.returncode != 0:
        raise EndpointError(f"squeue failed: {_message(proc)}")
    jobs: dict[str, JobInfo] = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5 or not parts[1].startswith(prefix):
            continue
        job_id, name, state, reason, nodes = parts
        jobs[job_id] = JobInfo(job_id, name, state, "" if reason in ("None", "(null)") else reason, nodes)
    return jobs


def accounting(job_ids: Iterable[str]) -> dict[str, str]:
    """job id -> state from sacct; empty where the cluster keeps no accounting."""
    ids = sorted(set(job_ids))
    if not ids or shutil.which("sacct") is None:
        return {}
    try:
        proc = subprocess.run(
            ["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", ",".join(ids),
             "--format=JobID,State"],
            capture_output=True, text=True, timeout=_TIMEOUT_S, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {}
    if proc.returncode != 0:
        return {}
    states: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        job_id, _, state = line.partition("|")
        if job_id in ids and state:
            states[job_id] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def job_times(job_id: str) -> tuple[float, float] | None:
    """(submitted, started) of a job that has started, in seconds since the epoch, from squeue (``%V``,
    ``%S``; the job itself asks while it runs), else from sacct; None when neither says."""
    proc = _run(["squeue", "--noheader", "--jobs", job_id, "--states=all", "--format=%V|%S"], "job times")
    times = _times(proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else "")
    if times is None and shutil.which("sacct") is not None:
        proc = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job_id,
                     "--format=Submit,Start"], "job times")  # fmt: skip
        times = _times(proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else "")
    return times


def _times(line: str) -> tuple[float, float] | None:
    """``2026-12-03T14:00:00|2026-12-03T14:00:07`` (Slurm's local time) as epoch seconds; None for a job
    not started (``N/A``, ``Unknown``) or a line that is not two times."""
    parts = line.strip().split("|")
    if len(parts) != 2:
        return None
    try:
        submitted, started = (datetime.fromisoformat(p).timestamp() for p in parts)
    except ValueError:
        return None
    return submitted, started


def cancel(job_ids: Iterable[str]) -> None:
    ids = sorted(set(job_ids))
    if not ids:
        return
    proc = _run(["scancel", *ids], "cancelling")
    if proc.returncode != 0:
        raise EndpointError(f"scancel {' '.join(ids)} failed: {_message(proc)}")
