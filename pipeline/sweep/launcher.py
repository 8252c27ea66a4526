"""Start, watch and stop one model's server for the sweep.

``Launcher`` is what the runner and the watchdog need; ``EngineLauncher`` is the real one: the same engine
modules as `medsweep serve` (pipeline.serving.engines), without the single-server state file (a sweep runs
several
servers; its journal records them instead).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.models.registry import Device, ServerConfig
from pipeline.serving.engines import Running, Target, get_engine
from pipeline.serving.launch import api_key_from_env, child_env
from pipeline.serving.lora import server_models, verify

if TYPE_CHECKING:
    from pipeline.sweep.plan import SweepSettings


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
    def start(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> ServerHandle:
        """Launch the server (returns once launched, before it is healthy); MedsweepError if it cannot.
        ``adapters``: LoRA entries of ``model`` (a base) served beside it (the sweep's riders)."""
        ...

    def alive(self, handle: ServerHandle) -> str | None:
        """None while the process/container runs; else why not."""
        ...

    def stop(self, handle: ServerHandle) -> None: ...

    def logs(self, handle: ServerHandle, lines: int = 50) -> str: ...

    def command(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> str:
        """The exact command ``start`` runs, as one shell line (``--dry-run``)."""
        ...


class EngineLauncher:
    """Any engine of pipeline.serving.engines, as `medsweep serve --engine NAME --device DEVICE` runs it."""

    def __init__(
        self,
        engine: str,
        *,
        device: Device | None = None,
        host: str,
        log_dir: Path,
        api_key_env: str | None = None,
        tensor_parallel: int | None = None,
        pipeline_parallel: int = 1,
        executor: str | None = None,
    ) -> None:
        self.engine = get_engine(engine, "engine")
        self.tensor_parallel = tensor_parallel
        self.pipeline_parallel = pipeline_parallel
        self.executor = executor
        self.device: Device = device or self.engine.devices[0]
        self.host = host
        self.log_dir = log_dir
        self.api_key_env = api_key_env

    def _target(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> Target:
        """A LoRA entry's server is its base's, with the base's adapters (as `medsweep serve` starts it);
        a base with ``adapters`` serves those beside it."""
        base, own = server_models(model)
        return Target(
            model=base,
            adapters=tuple(adapters or own),
            device=self.device,
            port=port,
            host=self.host,
            gpus=tuple(gpus),
            api_key=self.api_key_env is not None,
            tensor_parallel=self.tensor_parallel,
            pipeline_parallel=self.pipeline_parallel,
            executor=self.executor,
        )

    def command(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> str:
        return self.engine.plan(self._target(model, gpus, port, adapters)).shell()

    def start(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> ServerHandle:
        target = self._target(model, gpus, port, adapters)
        launch = self.engine.plan(target)
        verify(target.adapters)
        self.engine.check(target, launch)
        env = child_env(launch.env, api_key_from_env(self.api_key_env, "api_key_env"))
        log_path = (self.log_dir / f"{model.name}.server.log").resolve()
        running = self.engine.start(target, launch, env, log_path)
        handle = ServerHandle(
            model=model.name,
            gpus=tuple(gpus),
            port=port,
            url=launch.url,
            container_id=running.container_id,
            pid=running.pid,
            log_path=running.log_path,
        )
        handle.provenance = {
            "engine": self.engine.name,
            "device": self.device,
            "gpus": list(gpus),
            "tensor_parallel_size": target.parallel()["tensor_parallel"],
            "pipeline_parallel_size": target.pipeline_parallel,
            "offers": self.engine.offers.as_dict(),
        }
        if launch.image:
            handle.provenance["image"] = launch.image
        handle.provenance.update(running.provenance)
        return handle

    def _running(self, handle: ServerHandle) -> Running:
        return Running(
            engine=self.engine.name,
            url=handle.url,
            container_id=handle.container_id,
            pid=handle.pid,
            log_path=handle.log_path,
        )

    def alive(self, handle: ServerHandle) -> str | None:
        if not (handle.container_id or handle.pid):
            return "no container id or pid"
        return self.engine.alive(self._running(handle))

    def stop(self, handle: ServerHandle) -> None:
        if handle.container_id or handle.pid:
            self.engine.stop(self._running(handle), grace=20.0)

    def logs(self, handle: ServerHandle, lines: int = 50) -> str:
        return self.engine.logs(self._running(handle), lines)


def launcher_for(settings: SweepSettings, **split: Any) -> EngineLauncher:
    """The launcher of a sweep's servers (``split``: a Slurm job's TP x PP, see ``Target``): one place for
    the local sweep and each Slurm job."""
    return EngineLauncher(
        settings.engine,
        device=settings.on_device,
        host=settings.host,
        log_dir=settings.out / "logs",
        api_key_env=settings.api_key_env,
        **split,
    )
