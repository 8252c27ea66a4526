"""A private Docker engine for the real-docker tests: Debian's ``dockerd`` on its own socket, exec root and
pid file in a temp folder, and a data root kept under ``.cache/dockerd`` so the CPU image built once (about
10 minutes) is there for the next run. Stopped by its pid. Measured flags: ../shared/docs/real-engines.md.

Its own network too: several engines on one machine (another checkout's tests) would all use ``docker0``,
number their first containers alike and publish through one set of iptables rules, so a request to one
engine's port could reach another engine's container. Each engine gets a bridge of its own on a subnet no
interface uses, no iptables rules (``--iptables=false``), and publishes ports through docker's userland
proxy, which listens on the host address itself."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT

DATA_ROOT = REPO_ROOT / ".cache" / "dockerd" / "root"
START_TIMEOUT = 60.0


class DockerdUnavailable(Exception):
    """Why a private dockerd cannot run here (the tests that need it skip with this reason)."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def make_bridge() -> str:
    """A new bridge with a free 10.213.N.1/24 address; its name (msdN, at most 15 bytes)."""
    if shutil.which("ip") is None:
        raise DockerdUnavailable("`ip` (iproute2) not installed: a private dockerd needs its own bridge")
    used = _ip("-4", "-o", "addr").stdout
    for n in random.sample(range(1, 255), 254):
        name = f"msd{n}"
        if f" 10.213.{n}." in used or _ip("link", "show", name).returncode == 0:
            continue
        if _ip("link", "add", "name", name, "type", "bridge").returncode != 0:
            continue  # taken meanwhile by another test run
        _ip("addr", "add", f"10.213.{n}.1/24", "dev", name)
        _ip("link", "set", name, "up")
        return name
    raise DockerdUnavailable("no free 10.213.N.0/24 subnet for a private bridge")


@dataclass
class Dockerd:
    process: subprocess.Popen[bytes]
    run_dir: Path
    host: str  # unix://.../docker.sock, for DOCKER_HOST
    bridge: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True, check=False, timeout=timeout
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        _ip("link", "delete", self.bridge)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def start_dockerd(data_root: Path = DATA_ROOT) -> Dockerd:
    """Start dockerd and wait until ``docker version`` answers; DockerdUnavailable says why it cannot."""
    binary = shutil.which("dockerd")
    if binary is None:
        raise DockerdUnavailable("dockerd not installed (scripts/setup_test_tools.sh installs docker.io)")
    if shutil.which("docker") is None:
        raise DockerdUnavailable("the docker CLI is not installed")
    if os.geteuid() != 0:
        raise DockerdUnavailable("a private dockerd needs root")
    data_root.mkdir(parents=True, exist_ok=True)
    # A short path: unix socket paths are limited to 108 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix="msdockerd."))
    bridge = make_bridge()
    log = (run_dir / "dockerd.log").open("wb")
    argv = [
        binary,
        "--data-root", str(data_root),
        "--exec-root", str(run_dir / "exec"),
        "--pidfile", str(run_dir / "dockerd.pid"),
        "-H", f"unix://{run_dir / 'docker.sock'}",
        "--bridge", bridge, "--iptables=false", "--ip-masq=false", "--userland-proxy=true",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    host = f"unix://{run_dir / 'docker.sock'}"
    daemon = Dockerd(process=process, run_dir=run_dir, host=host, bridge=bridge)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (run_dir / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
            shutil.rmtree(run_dir, ignore_errors=True)
            _ip("link", "delete", bridge)
            raise DockerdUnavailable(f"dockerd exited ({process.returncode}): {' | '.join(tail)}")
        if (run_dir / "docker.sock").exists() and daemon.docker("version", timeout=10).returncode == 0:
            return daemon
        time.sleep(0.5)
    daemon.stop()
    raise DockerdUnavailable(f"dockerd did not answer within {START_TIMEOUT:.0f} s")
