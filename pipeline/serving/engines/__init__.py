"""The engines that run a model's server, by name: the one place the names are written.

Public API (used by `medsweep serve`, `stop`, `make logs` and the sweep):
    ENGINES: name -> Engine;  ENGINE_NAMES;  get_engine(name);  check_engine_name(name, where)
    default_engine(device) -> name;  Engine, Target, Launch, Offers (pipeline.serving.engines.base)
Registering an engine is one line in ``_MODULES`` (docs/engines.md, "Adding an engine").

The registry is lazy, like Inspect's provider registry: the names (and the defaults) are known without
importing any engine module, so `medsweep --help` and the commands that never start a server pay for no
engine, HTTP client or container helper. An engine's module is imported when the engine is first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.models.devices import Device
    from pipeline.serving.engines.base import Engine, Launch, Offers, Target

# name -> the module and class that implement it (the class's ``name`` must be this name; a test checks it).
_MODULES: dict[str, tuple[str, str]] = {
    "docker": ("pipeline.serving.engines.docker", "DockerEngine"),
    "local": ("pipeline.serving.engines.local", "LocalEngine"),
    "cpu": ("pipeline.serving.engines.cpu", "CpuEngine"),
    "apptainer": ("pipeline.serving.engines.apptainer", "ApptainerEngine"),
}
ENGINE_NAMES: tuple[str, ...] = tuple(_MODULES)
# The engine used when none is named: containers on GPUs, the embedded CPU build on a CPU.
DEFAULT_ENGINES: dict[Device, str] = {"gpu": "docker", "cpu": "cpu"}


class _Engines(Mapping[str, "Engine"]):
    """name -> the engine's one instance, created (its module imported) on first use."""

    def __init__(self) -> None:
        self._made: dict[str, Engine] = {}

    def __getitem__(self, name: str) -> Engine:
        engine = self._made.get(name)
        if engine is None:
            module, cls = _MODULES[name]
            engine = self._made[name] = getattr(importlib.import_module(module), cls)()
        return engine

    def __iter__(self) -> Iterator[str]:
        return iter(ENGINE_NAMES)

    def __len__(self) -> int:
        return len(ENGINE_NAMES)

    def __contains__(self, name: object) -> bool:
        return name in _MODULES


ENGINES: Mapping[str, Engine] = _Engines()


def check_engine_name(name: str, where: str) -> str:
    """``name`` when it is an engine; else ConfigError ``WHERE: unknown engine ...; one of ...``."""
    if name not in _MODULES:
        raise ConfigError(f"{where}: unknown engine {name!r}; use one of {', '.join(ENGINE_NAMES)}")
    return name


def get_engine(name: str, where: str = "--engine") -> Engine:
    return ENGINES[check_engine_name(name, where)]


def default_engine(device: Device) -> str:
    return DEFAULT_ENGINES[device]


def __getattr__(name: str) -> object:
    """The interface's records, importable from here as before (imported on first use)."""
    if name in ("Engine", "Launch", "Offers", "Target"):
        from pipeline.serving.engines import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENGINES",
    "ENGINE_NAMES",
    "Engine",
    "Launch",
    "Offers",
    "Target",
    "check_engine_name",
    "default_engine",
    "get_engine",
]
