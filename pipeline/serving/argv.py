"""The vLLM server flags every engine shares, the Ray multi-node launch, and server addresses. Pure functions
(no I/O) so tests can assert the argv; each engine builds its own command from these
(pipeline/serving/engines)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from pipeline.models.registry import ServerConfig
from pipeline.serving.lora import lora_flags

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


def vllm_flags(
    cfg: ServerConfig,
    *,
    tensor_parallel: int,
    pipeline_parallel: int = 1,
    executor: str | None = None,
    max_model_len: int | None = None,
    with_revision: bool = True,
    adapters: Sequence[ServerConfig] = (),
    adapter_dirs: Sequence[str] | None = None,
) -> list[str]:
    """The vLLM server flags shared by every engine, after the model (``--model X`` or ``serve X``), and the
    LoRA flags when ``adapters`` are served beside it (``adapter_dirs``: their folders as the server sees
    them, e.g. a container's mount points; default: the folders on this machine)."""
    args = ["--revision", cfg.revision] if with_revision else []
    args += ["--served-model-name", cfg.name, "--tensor-parallel-size", str(tensor_parallel)]
    if pipeline_parallel > 1:
        args += ["--pipeline-parallel-size", str(pipeline_parallel)]
    if executor:
        args += ["--distributed-executor-backend", executor]
    args += ["--max-model-len", str(max_model_len or cfg.max_model_len), "--dtype", cfg.dtype]
    return args + reasoning_flags(cfg) + list(cfg.extra_vllm_args) + lora_flags(adapters, adapter_dirs)


def reasoning_flags(cfg: ServerConfig) -> list[str]:
    """``--reasoning-parser NAME`` for a reasoning model the server splits (registry ``reasoning.parser``):
    vLLM then returns the trace apart and honours the requests' ``thinking_token_budget``."""
    parser = cfg.reasoning.parser if cfg.reasoning is not None else None
    return ["--reasoning-parser", parser] if parser else []


def vllm_model_args(
    cfg: ServerConfig,
    *,
    tensor_parallel: int,
    pipeline_parallel: int = 1,
    executor: str | None = None,
    max_model_len: int | None = None,
    adapters: Sequence[ServerConfig] = (),
) -> list[str]:
    """``--model HF_ID`` and the shared flags (docker and local GPU serving)."""
    flags = vllm_flags(
        cfg,
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        executor=executor,
        max_model_len=max_model_len,
        adapters=adapters,
    )
    return ["--model", cfg.hf_id, *flags]


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
        *vllm_flags(cfg, tensor_parallel=gpus_per_node, pipeline_parallel=nodes, executor="ray",
                    max_model_len=max_model_len),
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
