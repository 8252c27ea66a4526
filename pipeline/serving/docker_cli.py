"""Docker engine calls through the ``docker`` CLI as the user has it (``DOCKER_HOST`` and contexts are
honoured; tests put a fake one on PATH or point DOCKER_HOST at a private daemon). Every failure a user can
fix is one ConfigError line naming the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from pipeline.errors import ConfigError, EndpointError

# Every container medsweep starts carries these labels: leftovers are found by label, never by name.
MANAGED_LABEL = "medsweep.managed"
MODEL_LABEL = "medsweep.model"
PORT_LABEL = "medsweep.port"
CLI_TIMEOUT = 60.0  # seconds for one quick CLI call (inspect, ps, rm); a hung daemon must not hang serve


def docker_bin() -> str:
    path = shutil.which("docker")
    if path is None:
        raise ConfigError(
            "docker not found on PATH: install Docker (Debian: apt-get install docker.io) or use --engine cpu"
        )
    return path


def _run(args: Sequence[str], timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [docker_bin(), *args], capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise EndpointError(f"`docker {' '.join(args[:2])}` did not answer in {timeout:.0f} s") from exc


def daemon_host() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket /var/run/docker.sock"


def check_daemon() -> str:
    """The daemon's version; ConfigError when it cannot be reached (not running, or no permission)."""
    proc = _run(["version", "--format", "{{.Server.Version}}"])
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    said = (proc.stderr or proc.stdout).strip()
    where = daemon_host()
    if "permission denied" in said.lower():
        raise ConfigError(
            f"permission denied on the Docker socket ({where}): add your user to the docker group and log "
            "in again, or run as root"
        )
    raise ConfigError(
        f"the Docker daemon is not running ({where}): start it (systemctl start docker, or dockerd) or "
        "point DOCKER_HOST at one"
    )


def image_present(image: str) -> bool:
    return _run(["image", "inspect", "--format", "{{.Id}}", image]).returncode == 0


def pull(image: str) -> bool:
    """``docker pull`` with its progress on stderr; False when it fails (e.g. no registry reachable)."""
    proc = subprocess.run([docker_bin(), "pull", image], stdout=sys.stderr, stderr=sys.stderr, check=False)
    return proc.returncode == 0


class ImageIds(NamedTuple):
    """An image's content id (``.Id``) and registry digests (``.RepoDigests``); None and () when unknown."""

    image_id: str | None = None
    digests: tuple[str, ...] = ()


def image_provenance(image: str) -> ImageIds:
    """The image's content id and registry digests (``docker image inspect``)."""
    proc = _run(["image", "inspect", "--format", "{{json .Id}} {{json .RepoDigests}}", image])
    if proc.returncode != 0:
        return ImageIds()
    try:
        image_id, digests = proc.stdout.strip().split(" ", 1)
        return ImageIds(str(json.loads(image_id)), tuple(str(d) for d in json.loads(digests) or []))
    except ValueError:
        return ImageIds()


def managed_containers(port: int | None = None, running_only: bool = False) -> list[str]:
    """Ids of the containers medsweep started (by label), optionally those published on ``port``."""
    args = ["ps", "-q", "--no-trunc", "--filter", f"label={MANAGED_LABEL}=1"]
    if port is not None:
        args += ["--filter", f"label={PORT_LABEL}={port}"]
    if not running_only:
        args.insert(1, "-a")
    proc = _run(args)
    return proc.stdout.split() if proc.returncode == 0 else []


def run_detached(argv: Sequence[str], env: Mapping[str, str], name: str) -> str:
    """Run ``docker run -d ...`` and return the container id it prints. When it fails, the container it
    may have created (e.g. the port could not be published) is removed: nothing is left behind."""
    proc = subprocess.run(
        [docker_bin(), *argv[1:]], env=dict(env), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        remove(name)
        said = (proc.stderr or proc.stdout).strip().splitlines()
        tail = " | ".join(said[-3:])
        if "address already in use" in tail or "port is already allocated" in tail:
            raise ConfigError(f"docker run: the port is already in use ({tail}): pick another --port")
        raise EndpointError(f"docker run failed (exit {proc.returncode}): {tail}")
    container_id = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if not container_id:
        raise EndpointError("docker run printed no container id")
    return container_id


def container_status(container_id: str) -> str | None:
    """None while running; else a reason (exited, missing)."""
    proc = _run(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container_id])
    if proc.returncode != 0:
        return "container is gone"
    status = proc.stdout.strip()
    return None if status.startswith(("running", "created", "restarting")) else f"container {status}"


def logs_tail(container_id: str, lines: int = 50) -> str:
    proc = _run(["logs", "--tail", str(lines), container_id])
    return (proc.stdout + proc.stderr).rstrip()


def remove(container: str) -> None:
    """``docker rm -f`` (name or id); one that does not exist is fine."""
    _run(["rm", "-f", container])


def stop_and_remove(container_id: str, grace: float = 20.0) -> None:
    """``docker stop -t GRACE ID`` then ``docker rm ID``; a container that is already gone is fine."""
    _run(["stop", "-t", str(int(grace)), container_id], timeout=grace + CLI_TIMEOUT)
    rm = _run(["rm", "-f", container_id])
    if rm.returncode != 0 and "No such container" not in rm.stderr:
        raise EndpointError(f"docker rm {container_id} failed: {rm.stderr.strip()}")
