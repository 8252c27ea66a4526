"""The sweep plan (``PLAN.toml``): a ``[sweep]`` table (inventory, tasks, where results go) and one
``[[models]]`` table per model. Unknown keys and bad values are errors that name the file and the field.

Relative paths (``out``, ``data_dir``, ``eval_config``) are taken from the current directory, as for
``medsweep eval``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config import Variant
from pipeline.errors import ConfigError
from pipeline.models.registry import (
    GPUS_PER_NODE,
    Device,
    ServerConfig,
    get_model,
    load_registry,
    pp_size,
    tp_size,
)
from pipeline.paths import SERVERS_DIR, default_data_dir
from pipeline.serving.engines import ENGINES, check_engine_name, default_engine
from pipeline.sweep.slurm.settings import SlurmSettings, check_time

Scheduler = Literal["local", "slurm"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepSettings(_Strict):
    """``[sweep]``: what every model of the plan shares."""

    out: Path
    scheduler: Scheduler = "local"  # local: packed onto `gpus` here; slurm: one job per model (docs/slurm.md)
    data_dir: Path = Field(default_factory=default_data_dir)
    tasks: tuple[str, ...] = ()
    variant: Variant = "paper"
    memory_class: Literal[80, 40, 24] = 80
    gpus: tuple[int, ...] = ()
    engine: str = default_engine("gpu")  # a name of pipeline.serving.engines.ENGINES
    device: Device | None = None  # default: the engine's first (a GPU, but for engine = "cpu")
    host: str = "127.0.0.1"
    base_port: int = Field(default=8100, ge=1024, le=65000)
    limit: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=64, ge=1, le=4096)
    eval_config: Path | None = None  # a `medsweep eval` config TOML for sampling/client settings
    api_key_env: str | None = None  # name of the variable holding the key the servers require
    max_restarts: int = Field(default=3, ge=0, description="server restarts per model")
    startup_timeout: float = Field(default=1800.0, gt=0, description="seconds for a server to get healthy")
    health_interval: float = Field(default=5.0, gt=0, description="seconds between watchdog checks")
    hang_timeout: float = Field(default=60.0, gt=0, description="seconds of failed health before restart")
    # Seconds a request may wait for a restarted server (client max_retry_time; None: the eval config's).
    max_retry_time: float | None = Field(default=None, gt=0)

    @field_validator("gpus")
    @classmethod
    def _distinct(cls, gpus: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
            raise ValueError(f"GPU ids must be distinct and non-negative, got {list(gpus)}")
        return gpus

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        try:
            return check_engine_name(name, "engine")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("engine: ")) from None

    @property
    def on_device(self) -> Device:
        return self.device or ENGINES[self.engine].devices[0]

    @model_validator(mode="after")
    def _inventory(self) -> SweepSettings:
        engine = ENGINES[self.engine]
        if self.on_device not in engine.devices:
            raise ValueError(f'device: engine = "{self.engine}" runs on {" or ".join(engine.devices)} only')
        if self.scheduler == "slurm":
            if self.gpus:
                raise ValueError(
                    'gpus: with scheduler = "slurm" each job gets its GPUs from Slurm; remove [sweep] gpus'
                )
            return self
        if self.on_device == "gpu" and not self.gpus:
            raise ValueError("gpus: list the GPU ids the sweep may use, e.g. gpus = [0, 1, 2, 3, 4, 5, 6, 7]")
        return self


class ModelEntry(_Strict):
    """``[[models]]``: a registry name and what this model does differently from ``[sweep]``."""

    name: str = Field(min_length=1)
    gpus: int | None = Field(default=None, ge=1, description="GPU count instead of the registry's")
    max_model_len: int | None = Field(default=None, gt=0)
    tasks: tuple[str, ...] | None = None
    limit: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1, le=4096)
    time: str | None = None  # the Slurm job's time limit for this model (scheduler = "slurm")

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return check_time(value)


class SweepPlan(_Strict):
    sweep: SweepSettings
    models: tuple[ModelEntry, ...] = Field(min_length=1)
    slurm: SlurmSettings = SlurmSettings()

    @model_validator(mode="after")
    def _unique(self) -> SweepPlan:
        seen: set[str] = set()
        for i, entry in enumerate(self.models):
            if entry.name in seen:
                raise ValueError(f"models[{i}].name: {entry.name!r} is listed twice")
            seen.add(entry.name)
        return self


class PlannedModel(BaseModel):
    """One model ready to schedule: its registry config (with plan overrides folded in) and settings."""

    model_config = ConfigDict(frozen=True)

    index: int  # position in the plan: fixes its port
    entry: ModelEntry
    server: ServerConfig
    gpu_count: int  # 0 on the cpu engine
    port: int
    tasks: tuple[str, ...]
    limit: int | None
    concurrency: int
    # A LoRA entry whose base is also in the plan rides on the base's server (one start, both evals);
    # this is the base's name then. None: the model is served by its own start.
    host: str | None = None

    @property
    def name(self) -> str:
        return self.server.name


def riders_of(models: list[PlannedModel]) -> tuple[list[PlannedModel], dict[str, list[PlannedModel]]]:
    """(the models that start a server, in plan order; per such model the entries evaluated on its server
    after it). A rider whose host is not among ``models`` (a Slurm job holds one model) starts its own."""
    names = {m.name for m in models}
    riders: dict[str, list[PlannedModel]] = {}
    hosts: list[PlannedModel] = []
    for m in models:
        if m.host is not None and m.host in names:
            riders.setdefault(m.host, []).append(m)
        else:
            hosts.append(m)
    return hosts, riders


def load_plan(path: Path) -> SweepPlan:
    """Read and validate ``path``; errors name the file and the field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"plan file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return SweepPlan.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None


def resolve_models(plan: SweepPlan, path: Path, servers_dir: Path = SERVERS_DIR) -> list[PlannedModel]:
    """Look every model up in the registry and work out its GPU count, port, tasks and limits."""
    registry = load_registry(servers_dir)
    settings = plan.sweep
    out: list[PlannedModel] = []
    for i, entry in enumerate(plan.models):
        cfg = registry.get(entry.name)
        if cfg is None:
            try:  # get_model's error lists the close matches
                get_model(entry.name, servers_dir)
            except ConfigError as exc:
                raise ConfigError(f"{path}: field 'models[{i}].name': {exc}") from None
            raise ConfigError(f"{path}: field 'models[{i}].name': use the lowercase registry name")
        if entry.max_model_len is not None:
            cfg = cfg.model_copy(update={"max_model_len": entry.max_model_len})
        out.append(
            PlannedModel(
                index=i,
                entry=entry,
                server=cfg,
                gpu_count=_gpu_count(cfg, entry, settings, path, i),
                port=settings.base_port + i,
                tasks=entry.tasks if entry.tasks is not None else settings.tasks,
                limit=entry.limit if entry.limit is not None else settings.limit,
                concurrency=entry.concurrency or settings.concurrency,
            )
        )
    in_plan = {m.name for m in out}
    return [
        m.model_copy(update={"host": m.server.adapter.base})
        if m.server.adapter is not None and m.server.adapter.base in in_plan
        else m
        for m in out
    ]


def _gpu_count(cfg: ServerConfig, entry: ModelEntry, settings: SweepSettings, path: Path, i: int) -> int:
    if settings.on_device == "cpu":
        if cfg.device != "cpu":
            raise ConfigError(
                f"{path}: field 'models[{i}].name': {cfg.name} needs GPUs; a CPU sweep serves local CPU "
                'models only (use device = "gpu")'
            )
        return 0
    if settings.scheduler == "slurm":
        # The job's shape (nodes, TP x PP) is worked out and checked by pipeline.sweep.slurm.shapes.
        return (
            entry.gpus
            if entry.gpus is not None
            else cfg.gpus.for_class(settings.memory_class) or _zero(cfg, settings, path, i)
        )
    if entry.gpus is not None:
        n = entry.gpus
        if cfg.attention_heads % n:
            raise ConfigError(
                f"{path}: field 'models[{i}].gpus': tensor-parallel size {n} does not divide the "
                f"{cfg.attention_heads} attention heads of {cfg.name}"
            )
    else:
        n = tp_size(cfg, settings.memory_class) * pp_size(cfg, settings.memory_class)
    if n > GPUS_PER_NODE:
        raise ConfigError(
            f"{path}: field 'models[{i}].name': {cfg.name} needs {n} GPUs of {settings.memory_class} GB, "
            "more than one node; the sweep serves on one node (see docs/multinode.md) or raise memory_class"
        )
    return n


def _zero(cfg: ServerConfig, settings: SweepSettings, path: Path, i: int) -> int:
    raise ConfigError(
        f"{path}: field 'models[{i}].name': {cfg.name} is not set up for {settings.memory_class} GB GPUs "
        f"(servers/{cfg.name}.toml gpus.{settings.memory_class} = 0); raise memory_class or set its gpus"
    )


def _describe(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(file)"
    if first["type"] == "extra_forbidden":
        page = "docs/slurm.md, 'The plan'" if field.startswith("slurm") else "docs/sweeps.md, 'The plan'"
        return f"{path}: unknown field {field!r}: remove it or check its spelling ({page})"
    msg = str(first["msg"]).removeprefix("Value error, ")
    given = first.get("input")
    shown = "" if isinstance(given, dict | list) or first["type"] == "missing" else f" (got {given!r})"
    return f"{path}: field {field!r}: {msg}{shown}"
