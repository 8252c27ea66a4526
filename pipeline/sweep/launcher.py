"""Start, watch and stop one model's server for the sweep.

``Launcher`` is what the runner and the watchdog need; ``EngineLauncher`` is the real one: the start path of
`medsweep serve` (pipeline.serving.lifecycle), without the single-server state file (a sweep runs several
servers; it holds their ``RunningServer`` records in memory and its journal records their ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.models.registry import Device, ServerConfig
from pipeline.serving import lifecycle
from pipeline.serving.engines import get_engine
from pipeline.serving.lifecycle import ServerPlan, api_key_from_env, plan_server, start_server
from pipeline.serving.running import RunningServer

if TYPE_CHECKING:
    from pipeline.sweep.journal import ServerStarted
    from pipeline.sweep.plan import SweepSettings


class Launcher(Protocol):
    def start(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> RunningServer:
        """Launch the server (returns once launched, before it is healthy); MedsweepError if it cannot.
        ``adapters``: LoRA entries of ``model`` (a base) served beside it (the sweep's riders)."""
        ...

    def alive(self, server: RunningServer) -> str | None:
        """None while the process/container runs; else why not."""
        ...

    def stop(self, server: RunningServer) -> None: ...

    def logs(self, server: RunningServer, lines: int = 50) -> str: ...

    def command(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> str:
        """The exact command ``start`` runs, as one shell line (``--dry-run``)."""
        ...


def journal_ids(server: RunningServer) -> dict[str, Any]:
    """What the journal keeps of a started server (the ids to clean up after a crashed sweep; no secrets)."""
    return {
        "gpus": list(server.gpus),
        "port": server.port,
        "container_id": server.container_id,
        "pid": server.pid,
        "log_path": server.log_path,
    }


def leftover(record: ServerStarted, settings: SweepSettings) -> RunningServer:
    """The server a journal's ``server_started`` record names (``journal_ids``), to stop it: a crashed
    sweep's leftover, started by this plan's engine."""
    return RunningServer(
        url="",
        openai_base_url="",
        served_model=record.model,
        model=record.model,
        engine=settings.engine,
        host=settings.host,
        port=record.port,
        gpus=list(record.gpus),
        container_id=record.container_id,
        pid=record.pid or None,
    )


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

    def _plan(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> ServerPlan:
        return plan_server(
            model,
            self.engine,
            device=self.device,
            port=port,
            host=self.host,
            gpus=gpus,
            api_key_env=self.api_key_env,
            adapters=adapters,
            tensor_parallel=self.tensor_parallel,
            pipeline_parallel=self.pipeline_parallel,
            executor=self.executor,
        )

    def command(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> str:
        return self._plan(model, gpus, port, adapters).launch().shell()

    def start(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> RunningServer:
        return start_server(
            self._plan(model, gpus, port, adapters),
            log_path=(self.log_dir / f"{model.name}.server.log").resolve(),
            api_key=api_key_from_env(self.api_key_env, "api_key_env"),
        )

    def alive(self, server: RunningServer) -> str | None:
        if not (server.container_id or server.pid):
            return "no container id or pid"
        return lifecycle.is_alive(server)

    def stop(self, server: RunningServer) -> None:
        if server.container_id or server.pid:
            lifecycle.stop(server, grace=20.0)

    def logs(self, server: RunningServer, lines: int = 50) -> str:
        return lifecycle.logs(server, lines)


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
