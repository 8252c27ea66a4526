"""One server's life: plan it, start it, wait until it is ready, watch it, show its log, stop it.

``start_server`` is the one start path: `medsweep serve` (pipeline.serving.launch), the sweep and each Slurm
job (pipeline.sweep.launcher) call it, so a new vLLM flag (``Target`` and the engines' ``plan``) or a new
engine (pipeline.serving.engines) is added once. It returns the one record of the running server
(``RunningServer``), which `medsweep serve` writes as its state file and the sweep holds in memory; every
other step here takes that record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.endpoint import Endpoint
from pipeline.errors import ConfigError
from pipeline.models.registry import Device, ServerConfig
from pipeline.serving.engines import Engine, Launch, Target, get_engine
from pipeline.serving.engines.base import BATCH_INVARIANT_ENV
from pipeline.serving.lora import server_models, verify
from pipeline.serving.running import RunningServer


@dataclass(frozen=True)
class ServerPlan:
    """What to start: the registry entry asked for (``entry``; a LoRA entry is served on its base's server),
    the engine, and the engine's ``Target`` (the model it loads, adapters, device, GPUs, address, split)."""

    entry: ServerConfig
    engine: Engine
    target: Target
    api_key_env: str | None = None  # the variable holding the key the server requires (its name only)
    memory_class: int | None = None

    def launch(self) -> Launch:
        """The exact command (no I/O): what ``start_server`` runs and ``--dry-run`` prints."""
        return self.engine.plan(self.target)


def plan_server(
    entry: ServerConfig,
    engine: Engine,
    *,
    device: Device,
    port: int,
    host: str,
    gpus: Sequence[int] = (),
    api_key_env: str | None = None,
    max_model_len: int | None = None,
    image: str | None = None,
    adapters: Sequence[ServerConfig] = (),
    tensor_parallel: int | None = None,
    pipeline_parallel: int = 1,
    executor: str | None = None,
    memory_class: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerPlan:
    """The plan that serves ``entry``: a LoRA entry's server is its base's, with every adapter of that base;
    a base with ``adapters`` given (the sweep's riders) serves those beside it. ``environ`` (default: ours)
    is where ``VLLM_BATCH_INVARIANT`` is read: every engine passes it on, and the record keeps it."""
    base, own = server_models(entry)
    target = Target(
        model=base,
        adapters=tuple(adapters or own),
        device=device,
        port=port,
        host=host,
        gpus=tuple(gpus),
        api_key=api_key_env is not None,
        max_model_len=max_model_len,
        image=image,
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        executor=executor,
        batch_invariant=batch_invariant(environ),
    )
    return ServerPlan(entry, engine, target, api_key_env, memory_class)


def batch_invariant(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``VLLM_BATCH_INVARIANT`` asks for batch invariance, read as vLLM reads it (an integer, 0 is
    off; unset or empty is off); anything else is a one-line ConfigError before a server starts."""
    value = (os.environ if environ is None else environ).get(BATCH_INVARIANT_ENV, "").strip()
    if not value:
        return False
    try:
        return int(value) != 0
    except ValueError:
        raise ConfigError(
            f"{BATCH_INVARIANT_ENV}={value!r}: vLLM reads it as an integer; set it to 1 (on) or 0 (off), "
            "or unset it"
        ) from None


def start_server(plan: ServerPlan, *, log_path: Path, api_key: str | None = None) -> RunningServer:
    """Check and start the server of ``plan`` (detached; it is not ready yet: ``wait_ready``) and return
    its record. ``log_path``: where a process engine logs; ``api_key``: the value of ``plan.api_key_env``.
    A ConfigError (one line naming the fix) when it cannot start here."""
    target, engine, entry = plan.target, plan.engine, plan.entry
    launch = plan.launch()
    verify(target.adapters)
    engine.check(target, launch)  # a port already taken: docker run or the server itself says so
    server = RunningServer(
        url=launch.url,
        openai_base_url=launch.url + "/v1",
        served_model=entry.name,
        served_models=[target.model.name, *(a.name for a in target.adapters)],
        model=entry.name,
        engine=engine.name,
        device=target.device,
        host=target.host,
        port=target.port,
        hf_id=entry.hf_id,
        revision=None if entry.local_path else entry.revision,
        image=launch.image,
        offers=engine.offers.as_dict(),
        gpus=list(target.gpus),
        tensor_parallel_size=target.parallel()["tensor_parallel"],
        pipeline_parallel_size=target.pipeline_parallel,
        memory_class=plan.memory_class,
        max_model_len=target.max_model_len or entry.max_model_len,
        chat_mode=entry.chat_mode,
        stop=entry.stop,
        api_key_env=plan.api_key_env,
        vllm_batch_invariant=target.batch_invariant,
        log_path=str(log_path),
    )
    return engine.start(target, launch, child_env(launch.env, api_key), server)


def wait_ready(
    server: RunningServer,
    timeout: float,
    api_key: str | None = None,
    alive: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """Wait until ``server`` answers and lists its model (pipeline.endpoint); the ``/v1/models`` body.
    ``alive`` (e.g. ``lambda: is_alive(server)``) ends the wait as soon as it gives a reason. ``timeout=0``
    is one probe (the sweep's watchdog)."""
    return Endpoint(server.url, api_key).wait_healthy(timeout, served_model=server.served_model, alive=alive)


def is_alive(server: RunningServer) -> str | None:
    """None while its process or container runs; else why not."""
    return _engine(server).alive(server)


def stop(server: RunningServer, grace: float = 20.0) -> str:
    """Stop it and leave nothing behind; what was done (already gone is fine)."""
    return _engine(server).stop(server, grace=grace)


def logs(server: RunningServer, lines: int = 50) -> str:
    return _engine(server).logs(server, lines)


def follow_argv(server: RunningServer, lines: int) -> list[str]:
    """A command that shows its log and follows it (`make logs`)."""
    return _engine(server).follow_argv(server, lines)


def _engine(server: RunningServer) -> Engine:
    return get_engine(server.engine, "serve state")


def api_key_from_env(
    variable: str | None, field: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """The key held in ``$variable`` (None when none is named); ``field`` names the setting in errors."""
    if variable is None:
        return None
    key = (os.environ if environ is None else environ).get(variable)
    if not key:
        raise ConfigError(f"{field}: environment variable {variable} is not set or empty")
    return key


def child_env(extra: dict[str, str], api_key: str | None) -> dict[str, str]:
    """The server's environment: ours, the launch plan's, and the API key as VLLM_API_KEY."""
    env = {**os.environ, **extra}
    if api_key is not None:
        env["VLLM_API_KEY"] = api_key  # vLLM reads it; the key never appears on a command line
    return env
