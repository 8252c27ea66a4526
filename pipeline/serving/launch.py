"""`medsweep serve`: pick the engine and device, plan the command, check, start, wait for health, record the
state. Every engine is behind pipeline.serving.engines (the sweep uses the same ones)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.endpoint import Endpoint
from pipeline.errors import ConfigError, EndpointError
from pipeline.models.registry import GPUS_PER_NODE, Device, ServerConfig, get_model, pp_size, tp_size
from pipeline.serving.argv import multinode_plan
from pipeline.serving.engines import Engine, Running, Target, default_engine, get_engine
from pipeline.serving.lora import server_models, verify
from pipeline.serving.state import ServeState, clear_state, read_state, state_dir, write_state

CPU_DEFAULT_MODEL = "smollm2-135m-instruct"
# Seconds to wait for health by default: a GPU server may download and load a 70B model first.
DEFAULT_TIMEOUTS: dict[Device, float] = {"gpu": 1800.0, "cpu": 300.0}


@dataclass(frozen=True)
class ServeRequest:
    """The parsed `medsweep serve` flags."""

    model: str | None = None
    engine: str | None = None
    device: Device | None = None
    image: str | None = None
    gpus: list[int] | None = None
    port: int = 8000
    host: str = "127.0.0.1"
    memory_class: int | None = None
    max_model_len: int | None = None
    timeout: float | None = None
    api_key_env: str | None = None
    nodes: int = 1
    dry_run: bool = False


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


def detect_memory_class() -> int:
    """80/40/24 from the first GPU's memory; 80 when it cannot be read (e.g. a dry run without GPUs)."""
    if not has_gpu():
        return 80
    proc = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        mib = int(proc.stdout.split()[0])
    except (IndexError, ValueError):
        return 80
    gib = mib / 1024
    return 80 if gib >= 70 else 40 if gib >= 35 else 24


def resolve(request: ServeRequest) -> tuple[ServerConfig, Engine, Device]:
    """(model config, engine, device). No model: the embedded CPU default when serving on a CPU (asked
    for with --device cpu or an engine that only runs on CPUs, or no GPU here)."""
    engine = get_engine(request.engine) if request.engine else None
    name = request.model
    if name is None:
        on_cpu = request.device == "cpu" or (
            request.device is None and (engine is None or "gpu" not in engine.devices) and not has_gpu()
        )
        if not on_cpu:
            raise ConfigError(
                "--model NAME is required unless serving the CPU default (--device cpu); "
                "see `medsweep models`"
            )
        name = CPU_DEFAULT_MODEL
    cfg = get_model(name)
    device: Device = request.device or (
        engine.devices[0] if engine is not None and len(engine.devices) == 1 else cfg.device
    )
    if engine is None:
        engine = get_engine(default_engine(device))
    if device not in engine.devices:
        raise ConfigError(
            f"--engine {engine.name} runs on {' or '.join(engine.devices)} only, not --device {device}"
        )
    if device == "cpu" and cfg.device != "cpu":
        raise ConfigError(
            f"--device cpu serves local CPU models only ({CPU_DEFAULT_MODEL}); {cfg.name} needs GPUs "
            "(--device gpu)"
        )
    return cfg, engine, device


def _gpu_list(cfg: ServerConfig, request: ServeRequest, memory_class: int) -> list[int]:
    need = tp_size(cfg, memory_class) * pp_size(cfg, memory_class)
    if need > GPUS_PER_NODE:
        raise ConfigError(
            f"{cfg.name} needs {need} GPUs of {memory_class} GB (more than one node): print a Ray launch "
            "with --nodes N --dry-run (docs/multinode.md) or use a larger --memory-class"
        )
    if request.gpus is None:
        return list(range(need))
    if len(request.gpus) < need:
        raise ConfigError(
            f"--gpus: {cfg.name} needs {need} GPUs of {memory_class} GB "
            f"(servers/{cfg.name}.toml gpus.{memory_class}); got {len(request.gpus)}"
        )
    n = len(request.gpus)
    if cfg.attention_heads % n:
        raise ConfigError(
            f"--gpus: tensor-parallel size {n} must divide the {cfg.attention_heads} attention heads "
            f"of {cfg.name}"
        )
    return request.gpus


def _api_key(request: ServeRequest) -> str | None:
    return api_key_from_env(request.api_key_env, "--api-key-env")


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


def serve(request: ServeRequest, out: object = sys.stdout) -> ServeState | None:
    """Start the server (or print the command for --dry-run) and return the recorded state. A LoRA entry
    is served on its base model's server, with every adapter of that base."""
    cfg, engine, device = resolve(request)
    base, adapters = server_models(cfg)
    if request.nodes > 1:
        _print_multinode(base, request)
        return None
    memory_class: int | None = None
    gpus: list[int] = []
    if device == "gpu":
        memory_class = request.memory_class or detect_memory_class()
        gpus = _gpu_list(base, request, memory_class)
    target = Target(
        model=base,
        adapters=tuple(adapters),
        device=device,
        port=request.port,
        host=request.host,
        gpus=tuple(gpus),
        api_key=request.api_key_env is not None,
        max_model_len=request.max_model_len,
        image=request.image,
    )
    launch = engine.plan(target)
    if request.dry_run:
        print(launch.shell())
        return None
    _refuse_if_running()
    verify(adapters)
    engine.check(target, launch)  # a port already taken: docker run or the server itself says so
    api_key = _api_key(request)
    log_path = (state_dir() / f"serve-{cfg.name}-{request.port}.log").resolve()
    running = engine.start(target, launch, child_env(launch.env, api_key), log_path)
    state = ServeState(
        url=launch.url,
        openai_base_url=launch.url + "/v1",
        served_model=cfg.name,
        served_models=[base.name, *(a.name for a in adapters)],
        model=cfg.name,
        engine=engine.name,
        device=device,
        host=request.host,
        port=request.port,
        container_id=running.container_id,
        pid=running.pid,
        boot_id=running.boot_id,
        pid_start=running.pid_start,
        hf_id=cfg.hf_id,
        revision=None if cfg.local_path else cfg.revision,
        image=launch.image,
        image_id=_str_or_none(running.provenance.get("image_id")),
        image_digests=[str(d) for d in running.provenance.get("image_digests") or []],
        offers=engine.offers.as_dict(),
        gpus=gpus,
        tensor_parallel_size=max(1, len(gpus)),
        memory_class=memory_class,
        max_model_len=request.max_model_len or cfg.max_model_len,
        chat_mode=cfg.chat_mode,
        stop=cfg.stop,
        api_key_env=request.api_key_env,
        log_path=str(running.log_path) if running.log_path else None,
    )
    write_state(state)
    print(f"started {engine.name} server {running.describe()}; waiting for {launch.url}")
    try:
        Endpoint(launch.url, api_key).wait_healthy(
            request.timeout or DEFAULT_TIMEOUTS[device],
            served_model=cfg.name,
            alive=lambda: engine.alive(running),
        )
    except (EndpointError, KeyboardInterrupt):
        print(f"--- last log lines of the {engine.name} server ({running.describe()}) ---", file=sys.stderr)
        print(engine.logs(running), file=sys.stderr)
        engine.stop(running)
        clear_state()
        raise
    return state


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def running_of(state: ServeState) -> Running:
    """The ids a recorded server is watched and stopped by."""
    return Running(
        engine=state.engine,
        url=state.url,
        container_id=state.container_id,
        pid=state.pid,
        boot_id=state.boot_id,
        pid_start=state.pid_start,
        log_path=Path(state.log_path) if state.log_path else None,
    )


def _refuse_if_running() -> None:
    current = read_state()
    if current is None:
        return
    if get_engine(current.engine, "serve state").alive(running_of(current)) is None:
        raise ConfigError(
            f"a server is already running ({current.model} at {current.url}); run `medsweep stop` first"
        )
    clear_state()


def _print_multinode(cfg: ServerConfig, request: ServeRequest) -> None:
    if not request.dry_run:
        raise ConfigError(
            "--nodes > 1 only prints the Ray-cluster launch: add --dry-run (see docs/multinode.md)"
        )
    memory_class = request.memory_class or 80
    if request.gpus is not None:
        per_node = len(request.gpus)
    else:
        total = max(tp_size(cfg, memory_class) * pp_size(cfg, memory_class), request.nodes)
        per_node = max(1, -(-total // request.nodes))
        per_node = 1 << (per_node - 1).bit_length()  # round up to a power of two
    if cfg.attention_heads % per_node:
        raise ConfigError(
            f"{per_node} GPUs per node does not divide the {cfg.attention_heads} heads of {cfg.name}"
        )
    print(
        f"# {cfg.name} on {request.nodes} nodes x {per_node} GPUs ({memory_class} GB): "
        f"TP {per_node} inside a node, PP {request.nodes} across nodes. See docs/multinode.md."
    )
    steps = multinode_plan(
        cfg,
        nodes=request.nodes,
        gpus_per_node=per_node,
        port=request.port,
        host=request.host,
        max_model_len=request.max_model_len,
    )
    for where, command in steps:
        print(f"# {where}:")
        print(command)


def stop(grace: float = 20.0) -> str:
    """Stop what the state file names and remove the state. Returns a one-line summary."""
    current = read_state()
    if current is None:
        return "nothing to stop (no .medsweep/serve.json)"
    outcome = get_engine(current.engine, "serve state").stop(running_of(current), grace=grace)
    clear_state()
    return f"{current.model}: {outcome}"
