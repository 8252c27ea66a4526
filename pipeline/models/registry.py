"""Model registry: one ``servers/<name>.toml`` per model, validated with pydantic.

The registry name of a model is its file stem (lowercase HF model name without the organisation). Fields are
documented in docs/serving.md. ``tp_size``/``pp_size`` turn the per-memory-class GPU count into
vLLM's tensor- and pipeline-parallel sizes.

A LoRA entry (an ``adapter`` table) is served on its base model's server: it names only what is its own
(role, counterpart, notes, the adapter) and takes everything about serving from ``servers/<base>.toml``.
"""

from __future__ import annotations

import difflib
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.config import ChatMode
from pipeline.errors import ConfigError
from pipeline.models.adapters import missing_files
from pipeline.models.devices import DEVICES as DEVICES  # re-exported: defined apart for a light --help
from pipeline.models.devices import Device as Device
from pipeline.paths import SERVERS_DIR
from pipeline.request import Splitter

MemoryClass = Literal[80, 40, 24]
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


class Adapter(BaseModel):
    """A LoRA adapter served on its base model's server (vLLM ``--lora-modules NAME=DIR``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str = Field(min_length=1)  # registry name of the base model
    path: str = Field(min_length=1)  # the adapter folder, relative to the folder that holds servers/
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # pipeline.models.adapters.adapter_digest of the folder
    rank: int = Field(gt=0)  # LoRA rank: the server's --max-lora-rank covers the largest one
    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path:
        """The adapter folder as found by load_registry (absolute)."""
        if self._folder is None:
            raise ConfigError(f"adapter {self.path}: not loaded through the registry")
        return self._folder


@cache
def known_parsers() -> tuple[str, tuple[str, ...]]:
    """(vLLM version, the reasoning parser names it knows): reasoning_parsers.toml next to this module."""
    raw = tomllib.loads(resources.files("pipeline.models").joinpath("reasoning_parsers.toml").read_text())
    return str(raw["vllm_version"]), tuple(raw["parsers"])


class Reasoning(BaseModel):
    """How a reasoning model thinks and how its trace is told from its answer (docs/reasoning.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The server splits (vLLM --reasoning-parser NAME; thinking_token_budget is sent only then) ...
    parser: str | None = None
    # ... or the client does, for a model no parser fits (HuatuoGPT-o1 writes markdown headings).
    split: Splitter | None = None
    thinking_budget: int = Field(gt=0)  # tokens the trace may take; added to every task's answer tokens
    answer_tokens: int | None = Field(default=None, gt=0)  # the answer budget: at least this many tokens
    # The chat template's switch and its value (Qwen3: enable_thinking = true; Baichuan-M2: thinking_mode).
    chat_template_kwargs: dict[str, str | bool | int] = Field(default_factory=dict)

    @field_validator("parser")
    @classmethod
    def _known(cls, parser: str | None) -> str | None:
        version, names = known_parsers()
        if parser is not None and parser not in names:
            close = difflib.get_close_matches(parser, names, n=3, cutoff=0.5)
            hint = f"did you mean: {', '.join(close)}?" if close else f"use one of {', '.join(names)}"
            raise ValueError(f"vLLM {version} knows no reasoning parser {parser!r}; {hint}")
        return parser

    @model_validator(mode="after")
    def _check(self) -> Reasoning:
        if self.parser is not None and self.split is not None:
            raise ValueError("set either parser (the server splits) or split (the client does), not both")
        return self

    def max_answer_tokens(self, task_tokens: int) -> int:
        """``max_tokens`` of a request whose task answers in ``task_tokens``: the trace's budget on top."""
        return self.thinking_budget + max(task_tokens, self.answer_tokens or 0)


# What a LoRA entry may set itself; every other field is its base model's (one server serves both).
ADAPTER_OWN_FIELDS = frozenset({"role", "counterpart", "site_label", "notes", "adapter"})


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
    chat_mode: ChatMode
    extra_vllm_args: list[str] = Field(default_factory=list)
    stop: list[str] = Field(default_factory=list)
    notes: str = ""
    adapter: Adapter | None = None
    reasoning: Reasoning | None = None

    def identity(self, revision: str | None = None) -> str:
        """The model identity the content key hashes: ``name@revision``, and for a LoRA entry
        ``+lora.<first 16 hex of the adapter checksum>`` (a retrained adapter gets new keys)."""
        base = f"{self.name}@{revision or self.revision}"
        return base + (f"+lora.{self.adapter.sha256[:16]}" if self.adapter else "")

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
        budget = self.reasoning.max_answer_tokens(0) if self.reasoning is not None else 0
        if budget >= self.max_model_len:
            raise ValueError(
                f"reasoning.thinking_budget: {budget} tokens of trace and answer leave no room for a prompt "
                f"in the context (max_model_len = {self.max_model_len}); lower the budget"
            )
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


def _read_raw(path: Path) -> dict[str, object]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if "name" in raw:
        raise ConfigError(f"{path}: field 'name': the registry name is the file name; remove the field")
    return raw


def load_server_config(path: Path) -> ServerConfig:
    """Read and validate one servers/*.toml file; errors name the file and the field. A LoRA entry is
    completed from its base model's file, and its adapter folder must hold the adapter files."""
    raw = _read_raw(path)
    adapter = raw.get("adapter")
    if "adapter" in raw and not isinstance(adapter, dict):
        raise ConfigError(
            f'{path}: field \'adapter\': expected a table: adapter = {{base = "NAME", path = "DIR", '
            'sha256 = "...", rank = 8}'
        )
    if isinstance(adapter, dict):
        raw = _with_base(path, raw, adapter)
    try:
        cfg = ServerConfig.model_validate({**raw, "name": path.stem})
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc)) from exc
    if cfg.adapter is not None:
        folder = Path(cfg.adapter.path)
        folder = (folder if folder.is_absolute() else path.parent.parent / folder).resolve()
        missing = missing_files(folder)
        if missing:
            what = "no such folder" if not folder.is_dir() else f"it lacks {', '.join(missing)}"
            raise ConfigError(
                f"{path}: field 'adapter.path': {folder}: {what}; the path is relative to the folder that "
                "holds servers/ (e.g. servers/adapters/NAME)"
            )
        cfg.adapter._folder = folder
    return cfg


def _with_base(path: Path, raw: dict[str, object], adapter: dict[str, object]) -> dict[str, object]:
    """A LoRA entry's own fields over its base model's serving fields."""
    for field in raw:
        if field not in ADAPTER_OWN_FIELDS:
            raise ConfigError(
                f"{path}: field '{field}': a LoRA entry is served on its base model's server and takes "
                f"'{field}' from the base's file; set it there, or remove it here"
            )
    base = adapter.get("base")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: field 'adapter.base': name the registry model the adapter was trained on")
    base_path = path.parent / f"{base}.toml"
    if not base_path.is_file():
        raise ConfigError(f"{path}: field 'adapter.base': no model '{base}' in {path.parent}")
    base_raw = _read_raw(base_path)
    if "adapter" in base_raw:
        raise ConfigError(f"{path}: field 'adapter.base': '{base}' is itself a LoRA entry; name its base")
    inherited = {k: v for k, v in base_raw.items() if k not in ADAPTER_OWN_FIELDS}
    return {**inherited, **raw}


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


def adapters_of(base: str, directory: Path = SERVERS_DIR) -> list[ServerConfig]:
    """The LoRA entries whose base is ``base``, by name: what a server of ``base`` serves beside it."""
    return [cfg for cfg in load_registry(directory).values() if cfg.adapter and cfg.adapter.base == base]


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
