"""Start, watch and stop one model's server for the sweep.

``Launcher`` is what the runner and the watchdog need; ``EngineLauncher`` is the real one: the same argv
builders, docker calls and detached processes as `medsweep serve` (pipeline.serving), without the
single-server state file (a sweep runs several servers; its journal records them instead).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import ConfigError
from pipeline.paths import REPO_ROOT
from pipeline.registry import ServerConfig
from pipeline.serving import docker, process
from pipeline.serving.argv import LaunchPlan, container_name
from pipeline.serving.launch import api_key_from_env, child_env, engine_plan, hf_cache_dir
from pipeline.serving.lora import server_models, verify
from pipeline.sweep.plan import Engine


@dataclass
class ServerHandle:
    """One started server. ``url`` is the server root (``/health``); ``base_url`` adds ``/v1``."""

    model: str
    gpus: tuple[int, ...]
    port: int
    url: str
    container_id: str | None = None
    pid: int | None = None
    log_path: Path | None = None
    started_at: float = field(default_factory=time.time)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def record(self) -> dict[str, Any]:
        """What the journal keeps (ids to clean up after a crashed sweep; no secrets)."""
        return {
            "gpus": list(self.gpus),
            "port": self.port,
            "container_id": self.container_id,
            "pid": self.pid,
            "log_path": str(self.log_path) if self.log_path else None,
        }


class Launcher(Protocol):
    def start(self, model: ServerConfig, gpus: Sequence[int], port: int) -> ServerHandle:
        """Launch the server (returns once launched, before it is healthy); MedsweepError if it cannot."""
        ...

    def alive(self, handle: ServerHandle) -> str | None:
        """None while the process/container runs; else why not."""
        ...

    def stop(self, handle: ServerHandle) -> None: ...

    def logs(self, handle: ServerHandle, lines: int = 50) -> str: ...

    def command(self, model: ServerConfig, gpus: Sequence[int], port: int) -> str:
        """The exact command ``start`` runs, as one shell line (``--dry-run``)."""
        ...


class EngineLauncher:
    """docker / local vLLM / the embedded CPU build, as `medsweep serve --engine ...` runs them."""

    def __init__(self, engine: Engine, *, host: str, log_dir: Path, api_key_env: str | None = None) -> None:
        self.engine = engine
        self.host = host
        self.log_dir = log_dir
        self.api_key_env = api_key_env

    def _plan(self, model: ServerConfig, gpus: Sequence[int], port: int) -> LaunchPlan:
        """A LoRA entry's server is its base's, with the base's adapters (as `medsweep serve` starts it)."""
        base, adapters = server_models(model)
        return engine_plan(
            base,
            self.engine,
            gpus=gpus,
            port=port,
            host=self.host,
            api_key=self.api_key_env is not None,
            adapters=adapters,
        )

    def command(self, model: ServerConfig, gpus: Sequence[int], port: int) -> str:
        return self._plan(model, gpus, port).shell()

    def start(self, model: ServerConfig, gpus: Sequence[int], port: int) -> ServerHandle:
        base, adapters = server_models(model)
        verify(adapters)
        plan = self._plan(model, gpus, port)
        env = self._env(plan.env)
        handle = ServerHandle(model=model.name, gpus=tuple(gpus), port=port, url=plan.url)
        handle.provenance = {"engine": self.engine, "gpus": list(gpus), "tensor_parallel_size": len(gpus)}
        if self.engine == "docker":
            hf_cache_dir().mkdir(parents=True, exist_ok=True)
            # A container of this name left by a crashed sweep would make `docker run --name` fail.
            docker.stop_and_remove(container_name(base, port))
            handle.container_id = docker.run_detached(plan.argv, env)
            handle.provenance["image"] = plan.image
            return handle
        if self.engine == "local" and shutil.which("vllm") is None:
            raise ConfigError(
                'engine = "local": `vllm` is not on PATH; install vLLM or use engine = "docker"'
            )
        if self.engine == "cpu" and not Path(plan.argv[0]).exists():
            raise ConfigError(
                f"{plan.argv[0]} missing: run `make setup-server` (scripts/setup_cpu_server.sh)"
            )
        handle.log_path = (self.log_dir / f"{model.name}.server.log").resolve()
        handle.pid = process.spawn_detached(plan.argv, env, handle.log_path, cwd=REPO_ROOT)
        return handle

    def alive(self, handle: ServerHandle) -> str | None:
        if handle.container_id:
            return docker.container_status(handle.container_id)
        if handle.pid:
            return process.exit_reason(handle.pid)
        return "no container id or pid"

    def stop(self, handle: ServerHandle) -> None:
        if handle.container_id:
            docker.stop_and_remove(handle.container_id)
        elif handle.pid:
            process.stop_group(handle.pid, grace=20.0)

    def logs(self, handle: ServerHandle, lines: int = 50) -> str:
        if handle.container_id:
            return docker.logs_tail(handle.container_id, lines)
        if handle.log_path:
            return process.tail_file(handle.log_path, lines)
        return ""

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        return child_env(extra, api_key_from_env(self.api_key_env, "api_key_env"))
