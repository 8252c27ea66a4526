"""A base model and its LoRA adapters on one vLLM server: which models a server holds and the LoRA flags.

vLLM (0.32, the CPU build included) serves adapters beside the base with ``--enable-lora --max-lora-rank R
--lora-modules NAME=DIR ...``; ``/v1/models`` lists the base and each adapter under its registry name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.models.adapters import verify_adapter
from pipeline.models.registry import ServerConfig, adapters_of, get_model
from pipeline.paths import SERVERS_DIR

# The --max-lora-rank values vLLM accepts; the flag takes the smallest that covers every adapter's rank.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
CONTAINER_ADAPTERS = "/adapters"  # where container engines mount the adapter folders


def server_models(
    cfg: ServerConfig, directory: Path = SERVERS_DIR
) -> tuple[ServerConfig, list[ServerConfig]]:
    """(the model the server loads, the adapters served beside it) for serving ``cfg``: a LoRA entry is
    served on its base's server with every adapter of that base; a model without adapters alone."""
    if cfg.adapter is None:
        return cfg, []
    return get_model(cfg.adapter.base, directory), adapters_of(cfg.adapter.base, directory)


def verify(adapters: Sequence[ServerConfig]) -> None:
    """Each adapter folder holds the adapter its registry entry pins (checked before a server starts)."""
    for cfg in adapters:
        assert cfg.adapter is not None
        verify_adapter(_folder(cfg), cfg.adapter.sha256, f"servers/{cfg.name}.toml")


def _folder(cfg: ServerConfig) -> Path:
    assert cfg.adapter is not None
    return cfg.adapter.folder


def adapter_mounts(adapters: Sequence[ServerConfig], flag: str) -> tuple[list[str], list[str]]:
    """Container engines: (``FLAG HOST_DIR:/adapters/NAME:ro`` per adapter, the folders inside), with
    ``-v`` for docker, ``--bind`` for apptainer: the adapters' own files, read-only."""
    inside = [f"{CONTAINER_ADAPTERS}/{cfg.name}" for cfg in adapters]
    mounts = [x for cfg, at in zip(adapters, inside, strict=True) for x in (flag, f"{_folder(cfg)}:{at}:ro")]
    return mounts, inside


def max_lora_rank(adapters: Sequence[ServerConfig]) -> int:
    need = max(cfg.adapter.rank for cfg in adapters if cfg.adapter is not None)
    for rank in VLLM_LORA_RANKS:
        if rank >= need:
            return rank
    raise ConfigError(f"adapter rank {need} is above vLLM's largest --max-lora-rank {VLLM_LORA_RANKS[-1]}")


def lora_flags(adapters: Sequence[ServerConfig], dirs: Sequence[str] | None = None) -> list[str]:
    """The vLLM flags that serve ``adapters`` (none without adapters). ``dirs`` are their folders as the
    server sees them (a docker container: its mount points); by default the folders on this machine."""
    if not adapters:
        return []
    folders = list(dirs) if dirs is not None else [str(_folder(cfg)) for cfg in adapters]
    modules = [f"{cfg.name}={folder}" for cfg, folder in zip(adapters, folders, strict=True)]
    return ["--enable-lora", "--max-lora-rank", str(max_lora_rank(adapters)), "--lora-modules", *modules]
