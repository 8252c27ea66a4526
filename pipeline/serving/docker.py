"""Docker engine calls (through the ``docker`` CLI, so tests can put a fake one on PATH)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence

from pipeline.errors import EndpointError


def docker_bin() -> str:
    path = shutil.which("docker")
    if path is None:
        raise EndpointError("docker not found on PATH; install Docker or use --engine local|cpu")
    return path


def run_detached(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Run ``docker run -d ...`` and return the container id it prints."""
    proc = subprocess.run(
        [docker_bin(), *argv[1:]], env=dict(env), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EndpointError(f"docker run failed (exit {proc.returncode}): {' | '.join(tail)}")
    container_id = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if not container_id:
        raise EndpointError("docker run printed no container id")
    return container_id


def container_status(container_id: str) -> str | None:
    """None while running; else a reason (exited, missing)."""
    proc = subprocess.run(
        [docker_bin(), "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container_id],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return "container is gone"
    status = proc.stdout.strip()
    return None if status.startswith(("running", "created", "restarting")) else f"container {status}"


def logs_tail(container_id: str, lines: int = 50) -> str:
    proc = subprocess.run(
        [docker_bin(), "logs", "--tail", str(lines), container_id],
        capture_output=True,
        text=True,
        check=False,
    )
    return (proc.stdout + proc.stderr).rstrip()


def stop_and_remove(container_id: str) -> None:
    """``docker stop ID`` then ``docker rm ID``; a container that is already gone is fine."""
    docker = docker_bin()
    subprocess.run([docker, "stop", container_id], capture_output=True, text=True, check=False)
    rm = subprocess.run([docker, "rm", container_id], capture_output=True, text=True, check=False)
    if rm.returncode != 0 and "No such container" not in rm.stderr:
        raise EndpointError(f"docker rm {container_id} failed: {rm.stderr.strip()}")
