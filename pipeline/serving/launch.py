"""`medsweep serve` and `medsweep stop`: pick the engine, device and GPUs, then plan, start and wait through
pipeline.serving.lifecycle (the start path the sweep uses too) and record the server as the state file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass

from pipeline.errors import ConfigError, EndpointError
from pipeline.models.registry import GPUS_PER_NODE, Device, ServerConfig, get_model, pp_size, tp_size
from pipeline.serving import lifecycle
from pipeline.serving.argv import multinode_plan
from pipeline.serving.engines import Engine, default_engine, get_engine
from pipeline.serving.lifecycle import api_key_from_env, plan_server, start_server, wait_ready
from pipeline.serving.lora import server_models
from pipeline.serving.running import RunningServer
from pipeline.serving.state import clear_state, read_state, state_dir, write_state

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


def serve(request: ServeRequest, out: object = sys.stdout) -> RunningServer | None:
    """Start the server (or print the command for --dry-run) and return its record, written as the state
    file. A LoRA entry is served on its base model's server, with every adapter of that base."""
    cfg, engine, device = resolve(request)
    base, _ = server_models(cfg)
    if request.nodes > 1:
        _print_multinode(base, request)
        return None
    memory_class: int | None = None
    gpus: list[int] = []
    if device == "gpu":
        memory_class = request.memory_class or detect_memory_class()
        gpus = _gpu_list(base, request, memory_class)
    plan = plan_server(
        cfg,
        engine,
        device=device,
        port=request.port,
        host=request.host,
        gpus=gpus,
        api_key_env=request.api_key_env,
        max_model_len=request.max_model_len,
        image=request.image,
        memory_class=memory_class,
    )
    if request.dry_run:
        print(plan.launch().shell())
        return None
    _refuse_if_running()
    api_key = api_key_from_env(request.api_key_env, "--api-key-env")
    log_path = (state_dir() / f"serve-{cfg.name}-{request.port}.log").resolve()
    server = start_server(plan, log_path=log_path, api_key=api_key)
    write_state(server)
    print(f"started {engine.name} server {server.describe()}; waiting for {server.url}")
    try:
        timeout = request.timeout or DEFAULT_TIMEOUTS[device]
        wait_ready(server, timeout, api_key, alive=lambda: lifecycle.is_alive(server))
    except (EndpointError, KeyboardInterrupt):
        print(f"--- last log lines of the {engine.name} server ({server.describe()}) ---", file=sys.stderr)
        print(lifecycle.logs(server), file=sys.stderr)
        lifecycle.stop(server)
        clear_state()
        raise
    return server


def _refuse_if_running() -> None:
    current = read_state()
    if current is None:
        return
    if lifecycle.is_alive(current) is None:
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
    outcome = lifecycle.stop(current, grace=grace)
    clear_state()
    return f"{current.model}: {outcome}"
