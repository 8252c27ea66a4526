"""A private Docker engine for the real-docker tests: Debian's ``dockerd`` on its own socket, exec root and
pid file in a temp folder, and a data root kept under ``.cache/dockerd`` so the CPU image built once (about
10 minutes) is there for the next run. Stopped by its pid. Measured flags: ../shared/docs/real-engines.md."""

from __future__ import annotations

import os
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


@dataclass
class Dockerd:
    process: subprocess.Popen[bytes]
    run_dir: Path
    host: str  # unix://.../docker.sock, for DOCKER_HOST

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
    log = (run_dir / "dockerd.log").open("wb")
    argv = [
        binary,
        "--data-root", str(data_root),
        "--exec-root", str(run_dir / "exec"),
        "--pidfile", str(run_dir / "dockerd.pid"),
        "-H", f"unix://{run_dir / 'docker.sock'}",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    daemon = Dockerd(process=process, run_dir=run_dir, host=f"unix://{run_dir / 'docker.sock'}")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (run_dir / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
            shutil.rmtree(run_dir, ignore_errors=True)
            raise DockerdUnavailable(f"dockerd exited ({process.returncode}): {' | '.join(tail)}")
        if (run_dir / "docker.sock").exists() and daemon.docker("version", timeout=10).returncode == 0:
            return daemon
        time.sleep(0.5)
    daemon.stop()
    raise DockerdUnavailable(f"dockerd did not answer within {START_TIMEOUT:.0f} s")
