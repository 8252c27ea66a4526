"""Model registry: one ``servers/<name>.toml`` per model, validated with pydantic.

The registry name of a model is its file stem (lowercase HF model name without the organisation). Fields are
documented in docs/serving.md. ``tp_size``/``pp_size`` turn the per-memory-class GPU count into
vLLM's tensor- and pipeline-parallel sizes.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.paths import SERVERS_DIR

MemoryClass = Literal[80, 40, 24]
# What a server computes on. A "cpu" model is a local folder small enough for a CPU (the embedded default).
Device = Literal["gpu", "cpu"]
DEVICES: tuple[Device, ...] = ("gpu", "cpu")
MEMORY_CLASSES: tuple[MemoryClass, ...] = (80, 40, 24)
# GPUs in one node: the largest tensor-parallel group; beyond it the model is split into pipeline stages.
GPUS_PER_NODE = 8


class GpuCounts(BaseModel):
    """GPUs needed per memory class (GB of GPU memory): weights plus KV room for one max_model_len sequence.
    0 means the model is not meant to run on that class."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    g80: int = Field(alias="80", ge=0)
    g40: int = Field(alias="40", ge=0)
    g24: int = Field(alias="24", ge=0)

    def for_class(self, memory_class: int) -> int:
        counts = {80: self.g80, 40: self.g40, 24: self.g24}
        if memory_class not in counts:
            raise ConfigError(f"memory class {memory_class} is not one of 80, 40, 24 (GB per GPU)")
        return counts[memory_class]


class ServerConfig(BaseModel):
    """One model as medsweep serves it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""  # filled from the file stem by load_registry
    hf_id: str = Field(min_length=3, pattern=r"^[\w.\-]+/[\w.\-]+$")
    revision: str = Field(min_length=1)
    role: Literal["biomedical", "general"]
    counterpart: str | None = None
    site_label: str | None = None
    device: Device = "gpu"
    local_path: str | None = None
    params_b: float = Field(gt=0)
    attention_heads: int = Field(gt=0)
    gpus: GpuCounts
    max_model_len: int = Field(gt=0)
    dtype: Literal["auto", "bfloat16", "float16", "float32"]
    chat_mode: Literal["chat", "chat_nosystem", "base"]
    extra_vllm_args: list[str] = Field(default_factory=list)
    stop: list[str] = Field(default_factory=list)
    notes: str = ""

    @model_validator(mode="before")
    @classmethod
    def _old_engine_field(cls, raw: object) -> object:
        """Registry files written before engines and devices were apart said ``engine = "gpu"|"cpu"``."""
        if isinstance(raw, dict) and "engine" in raw and "device" not in raw:
            raw = {**raw, "device": raw["engine"]}
            del raw["engine"]
        return raw

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        if self.role == "biomedical" and not self.counterpart:
            raise ValueError("counterpart: a biomedical model needs the registry name of its general base")
        if self.role == "general" and self.counterpart:
            raise ValueError("counterpart: only biomedical models have one; remove it")
        if self.device == "cpu" and not self.local_path:
            raise ValueError("local_path: a cpu model is served from a local folder; set local_path")
        for memory_class in MEMORY_CLASSES:
            n = self.gpus.for_class(memory_class)
            if n == 0:
                continue
            if n & (n - 1):
                raise ValueError(f"gpus.{memory_class}: {n} is not a power of two")
            tp = min(n, GPUS_PER_NODE)
            if self.attention_heads % tp:
                raise ValueError(
                    f"gpus.{memory_class}: tensor-parallel size {tp} does not divide "
                    f"attention_heads={self.attention_heads}"
                )
        return self


def _format_validation(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(file)"
    return f"{path}: field '{field}': {first['msg']}"


def load_server_config(path: Path) -> ServerConfig:
    """Read and validate one servers/*.toml file; errors name the file and the field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if "name" in raw:
        raise ConfigError(f"{path}: field 'name': the registry name is the file name; remove the field")
    try:
        return ServerConfig.model_validate({**raw, "name": path.stem})
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc)) from exc


def load_registry(directory: Path = SERVERS_DIR) -> dict[str, ServerConfig]:
    """All models in ``directory`` by registry name; counterparts must name models of the registry."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such directory of server configs")
    registry = {p.stem: load_server_config(p) for p in sorted(directory.glob("*.toml"))}
    for name, cfg in registry.items():
        if cfg.counterpart is None:
            continue
        base = registry.get(cfg.counterpart)
        if base is None:
            raise ConfigError(
                f"{directory / (name + '.toml')}: field 'counterpart': no model '{cfg.counterpart}' "
                f"in {directory}{_suggest(cfg.counterpart, registry)}"
            )
        if base.role != "general":
            raise ConfigError(
                f"{directory / (name + '.toml')}: field 'counterpart': "
                f"'{cfg.counterpart}' is not a general model"
            )
    return registry


def _suggest(name: str, registry: dict[str, ServerConfig]) -> str:
    close = difflib.get_close_matches(name.lower(), list(registry), n=3, cutoff=0.5)
    if not close:
        close = [n for n in registry if name.lower() in n][:3]
    return f"; did you mean: {', '.join(close)}?" if close else "; run `medsweep models` for the list"


def get_model(name: str, directory: Path = SERVERS_DIR) -> ServerConfig:
    """The model called ``name``; an unknown name raises ConfigError listing close matches."""
    registry = load_registry(directory)
    cfg = registry.get(name) or registry.get(name.lower())
    if cfg is None:
        raise ConfigError(f"unknown model '{name}'{_suggest(name, registry)}")
    return cfg


def pairs(directory: Path = SERVERS_DIR) -> list[tuple[str, str]]:
    """(biomedical, general counterpart) registry names, sorted by the biomedical name."""
    registry = load_registry(directory)
    return [(name, cfg.counterpart) for name, cfg in registry.items() if cfg.counterpart is not None]


def tp_size(cfg: ServerConfig, memory_class: int) -> int:
    """Tensor-parallel size on GPUs of ``memory_class`` GB: all GPUs of one node, at most GPUS_PER_NODE."""
    return min(_gpu_count(cfg, memory_class), GPUS_PER_NODE)


def pp_size(cfg: ServerConfig, memory_class: int) -> int:
    """Pipeline-parallel size (nodes of GPUS_PER_NODE) when the model needs more GPUs than one node has."""
    n = _gpu_count(cfg, memory_class)
    return max(1, n // GPUS_PER_NODE)


def _gpu_count(cfg: ServerConfig, memory_class: int) -> int:
    n = cfg.gpus.for_class(memory_class)
    if n == 0:
        raise ConfigError(
            f"servers/{cfg.name}.toml: field 'gpus.{memory_class}' is 0: {cfg.name} is not set up for "
            f"{memory_class} GB GPUs; use a larger --memory-class"
        )
    return n
