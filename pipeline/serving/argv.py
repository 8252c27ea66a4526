"""Exact command lines for each engine. Pure functions (no I/O) so tests can assert the argv."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.registry import ServerConfig
from pipeline.serving.lora import lora_flags

CONTAINER_PORT = 8000
CONTAINER_HF_CACHE = "/root/.cache/huggingface"
CONTAINER_ADAPTERS = "/adapters"  # docker: each LoRA adapter folder is mounted read-only at /adapters/NAME
# Environment for the embedded CPU server (measured: ../shared/docs/cpu-serving.md): 1 GiB of KV cache
# (without it start-up fails on the memory check), no core reserved for the API process (~30 % faster).
# No telemetry: vLLM's usage reporting is off for every engine (servers may hold credentialed data).
NO_TELEMETRY_ENV: dict[str, str] = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
CPU_ENV: dict[str, str] = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "HF_HUB_OFFLINE": "1",
    **NO_TELEMETRY_ENV,
}


@dataclass(frozen=True)
class LaunchPlan:
    """What to run: argv, the environment entries to add (values, or None = pass through by name only),
    and where the server will answer."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    image: str | None = None  # docker: the pinned image the argv runs

    def shell(self) -> str:
        """The command as one copy-pastable shell line (env assignments first)."""
        prefix = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join([*prefix, shlex.join(self.argv)])


def vllm_flags(
    cfg: ServerConfig,
    *,
    tensor_parallel: int,
    pipeline_parallel: int = 1,
    max_model_len: int | None = None,
    with_revision: bool = True,
    adapters: Sequence[ServerConfig] = (),
    adapter_dirs: Sequence[str] | None = None,
) -> list[str]:
    """The vLLM server flags shared by every engine, after the model (``--model X`` or ``serve X``), and the
    LoRA flags when ``adapters`` are served beside it (``adapter_dirs``: their folders as the server sees
    them, default the folders on this machine)."""
    args = ["--revision", cfg.revision] if with_revision else []
    args += ["--served-model-name", cfg.name, "--tensor-parallel-size", str(tensor_parallel)]
    if pipeline_parallel > 1:
        args += ["--pipeline-parallel-size", str(pipeline_parallel)]
    args += ["--max-model-len", str(max_model_len or cfg.max_model_len), "--dtype", cfg.dtype]
    return args + list(cfg.extra_vllm_args) + lora_flags(adapters, adapter_dirs)


def vllm_model_args(
    cfg: ServerConfig,
    *,
    tensor_parallel: int,
    max_model_len: int | None = None,
    adapters: Sequence[ServerConfig] = (),
    adapter_dirs: Sequence[str] | None = None,
) -> list[str]:
    """``--model HF_ID`` and the shared flags (docker and local GPU serving)."""
    flags = vllm_flags(
        cfg,
        tensor_parallel=tensor_parallel,
        max_model_len=max_model_len,
        adapters=adapters,
        adapter_dirs=adapter_dirs,
    )
    return ["--model", cfg.hf_id, *flags]


def container_name(cfg: ServerConfig, port: int) -> str:
    return f"medsweep-{cfg.name}-{port}"


def docker_run_argv(
    cfg: ServerConfig,
    *,
    image: str,
    gpus: Sequence[int],
    port: int,
    host: str,
    hf_cache: Path,
    api_key: bool,
    max_model_len: int | None = None,
    adapters: Sequence[ServerConfig] = (),
) -> list[str]:
    """``docker run -d ...`` for the vLLM OpenAI image; TP = number of GPUs. Secrets pass by name only
    (``-e HF_TOKEN`` copies the variable from the caller's environment). LoRA adapter folders are mounted
    read-only at /adapters/NAME."""
    argv = [
        "docker", "run", "-d",
        "--name", container_name(cfg, port),
        # docker splits --gpus on commas unless the device list is quoted inside the value.
        "--gpus", f'"device={",".join(str(g) for g in gpus)}"',
        "--ipc=host",
        "-p", f"{host}:{port}:{CONTAINER_PORT}",
        "-v", f"{hf_cache}:{CONTAINER_HF_CACHE}",
        "-e", "HF_TOKEN",
        *(x for k, v in NO_TELEMETRY_ENV.items() for x in ("-e", f"{k}={v}")),
    ]  # fmt: skip
    if api_key:
        argv += ["-e", "VLLM_API_KEY"]
    inside = [f"{CONTAINER_ADAPTERS}/{a.name}" for a in adapters]
    for adapter, mount in zip(adapters, inside, strict=True):
        assert adapter.adapter is not None
        argv += ["-v", f"{adapter.adapter.folder}:{mount}:ro"]  # the adapters' own files, read-only
    argv.append(image)
    return argv + vllm_model_args(
        cfg, tensor_parallel=len(gpus), max_model_len=max_model_len, adapters=adapters, adapter_dirs=inside
    )


def local_argv(
    cfg: ServerConfig,
    *,
    vllm_bin: str,
    gpus: Sequence[int],
    port: int,
    host: str,
    max_model_len: int | None = None,
    adapters: Sequence[ServerConfig] = (),
) -> LaunchPlan:
    """``vllm serve`` on this machine's GPUs (CUDA_VISIBLE_DEVICES picks them)."""
    args = vllm_model_args(cfg, tensor_parallel=len(gpus), max_model_len=max_model_len, adapters=adapters)
    argv = [vllm_bin, "serve", *args, "--host", host, "--port", str(port)]
    env = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus), **NO_TELEMETRY_ENV}
    return LaunchPlan(argv=argv, env=env, url=server_url(host, port))


def cpu_argv(
    cfg: ServerConfig,
    *,
    vllm_bin: str,
    model_dir: Path,
    port: int,
    host: str,
    max_model_len: int | None = None,
    adapters: Sequence[ServerConfig] = (),
) -> LaunchPlan:
    """The embedded CPU server: the local model folder, TP 1, the CPU environment."""
    # `vllm serve PATH` (positional) is the documented form; the flags after it are the shared ones.
    args = vllm_flags(
        cfg, tensor_parallel=1, max_model_len=max_model_len, with_revision=False, adapters=adapters
    )
    argv = [vllm_bin, "serve", str(model_dir), *args, "--host", host, "--port", str(port)]
    return LaunchPlan(argv=argv, env=dict(CPU_ENV), url=server_url(host, port))


def multinode_plan(
    cfg: ServerConfig,
    *,
    nodes: int,
    gpus_per_node: int,
    port: int,
    host: str,
    max_model_len: int | None = None,
    head_address: str = "HEAD_IP",
    ray_port: int = 6379,
) -> list[tuple[str, str]]:
    """(where, shell command) steps for one model over a Ray cluster: TP inside a node, PP across nodes."""
    serve = [
        "vllm", "serve", cfg.hf_id,
        *vllm_flags(cfg, tensor_parallel=gpus_per_node, pipeline_parallel=nodes, max_model_len=max_model_len),
        "--distributed-executor-backend", "ray",
        "--host", host, "--port", str(port),
    ]  # fmt: skip
    return [
        ("head node", f"ray start --head --port={ray_port}"),
        (f"each of the {nodes - 1} worker node(s)", f"ray start --address={head_address}:{ray_port}"),
        ("head node, after `ray status` shows all GPUs", "export HF_TOKEN  # and VLLM_API_KEY if used"),
        ("head node", shlex.join(serve)),
    ]


def connect_host(host: str) -> str:
    """The address that reaches a server bound to ``host`` (plain form, for sockets): a server bound to
    all interfaces is reached locally through the loopback address."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def server_url(host: str, port: int) -> str:
    """``http://HOST:PORT`` of a server bound to ``host``; an IPv6 address goes in brackets."""
    h = connect_host(host)
    return f"http://[{h}]:{port}" if ":" in h else f"http://{h}:{port}"
