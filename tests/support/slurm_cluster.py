"""A real one-node Slurm cluster for the tests: Debian's slurm-wlm and munge (installed once by
scripts/setup_test_tools.sh), configured in a temp folder and stopped afterwards.

Everything is private to the fixture: its own munge key and socket (``AuthInfo=socket=``, which the
daemons and the client commands read from slurm.conf), ports from the OS, state/spool/log folders, and
four GPUs declared in gres.conf on character devices with the null device's numbers (Slurm needs device
files: a count alone leaves the node INVAL; ../shared/docs/real-engines.md). The daemons are stopped by
pid. Tests that use it skip, saying why, only where the daemons cannot start (no slurm-wlm, not root).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.require import ran, unavailable

GPUS = 4
_TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


@dataclass(frozen=True)
class SlurmCluster:
    root: Path
    conf: Path
    node: str
    partition: str = "debug"

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def jobs(self) -> list[str]:
        """Ids of the jobs squeue lists as pending or running."""
        out = self.run("squeue", "--noheader", "--format=%i").stdout
        return out.split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(root: Path, node: str) -> str:
    return "\n".join([
        "ClusterName=medsweeptest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "GresTypes=gpu",
        "ReturnToService=2",
        "MpiDefault=none",
        "SchedulerType=sched/backfill",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        # Declared CPUs beyond the machine's two, so that four one-GPU jobs can run side by side.
        "SlurmdParameters=config_overrides",
        "KillWait=10",
        "MinJobAge=600",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs=8 RealMemory=4000 Gres=gpu:{GPUS} State=UNKNOWN",
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n"  # fmt: skip


def _why_not() -> str | None:
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} missing; scripts/setup_test_tools.sh installs it)"
        )
    if os.geteuid() != 0:
        return "the one-node Slurm cluster runs its daemons as root"
    return None


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop(pid: int | None) -> None:
    """SIGTERM, then SIGKILL after 10 s, to a daemon that is not our child (munged forks)."""
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    why = _why_not()
    if why:
        unavailable("slurm", why)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "log", "dev"):
        (root / sub).mkdir()
    node = socket.gethostname().split(".")[0]
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    os.chmod(root / "munge", 0o700)
    os.chmod(key, 0o400)
    devices = []
    for i in range(GPUS):
        dev = root / "dev" / f"fakegpu{i}"
        os.mknod(dev, 0o600 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null
        devices.append(dev)
    conf = root / "slurm.conf"
    conf.write_text(_config(root, node))
    (root / "gres.conf").write_text(f"Name=gpu File={root / 'dev'}/fakegpu[0-{GPUS - 1}]\n")
    munge_pid = root / "munge" / "munged.pid"
    munged: int | None = None
    daemons: list[subprocess.Popen[bytes]] = []  # slurmctld and slurmd in the foreground (-D): our children
    try:
        subprocess.run(
            ["munged", "--force", f"--socket={root / 'munge' / 'munge.socket'}", f"--key-file={key}",
             f"--pid-file={munge_pid}", f"--seed-file={root / 'munge' / 'seed'}",
             f"--log-file={root / 'log' / 'munged.log'}"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        munged = _pid(munge_pid)  # munged forks; its pid file is written before the command returns
        env = {**os.environ, "SLURM_CONF": str(conf)}
        for daemon in ("slurmctld", "slurmd"):
            log = open(root / "log" / f"{daemon}.out", "wb")  # noqa: SIM115 (open while the daemon runs)
            daemons.append(subprocess.Popen([daemon, "-D", "-f", str(conf)], stdout=log, stderr=log, env=env))
        slurmd = daemons[-1]
        cluster = SlurmCluster(root=root, conf=conf, node=node)
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = cluster.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip()
            if state == "idle":
                break
            if slurmd.poll() is not None:
                break
            time.sleep(0.2)
        if state != "idle":
            tail = (root / "log" / "slurmd.out").read_text(errors="replace")[-500:]
            unavailable("slurm", f"the one-node Slurm cluster did not become idle (sinfo: {state!r}): {tail}")
        ran("slurm")
        yield cluster
        left = cluster.jobs()
        if left:
            cluster.run("scancel", *left, check=False)
            raise AssertionError(f"jobs still in squeue after the tests: {left} (cancelled now)")
    except (subprocess.CalledProcessError, OSError) as exc:
        unavailable("slurm", f"the one-node Slurm cluster could not start: {exc}")
    finally:
        for proc in reversed(daemons):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _stop(munged)
