"""The engines that run a model's server, by name: the one place the names are written.

Public API (used by `medsweep serve`, `stop`, `make logs` and the sweep):
    ENGINES: name -> Engine;  ENGINE_NAMES;  get_engine(name);  check_engine_name(name, where)
    default_engine(device) -> name;  Engine, Target, Launch, Running, Offers (pipeline.serving.engines.base)
Registering an engine is one line in ENGINES (docs/engines.md, "Adding an engine").
"""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.models.registry import Device
from pipeline.serving.engines.apptainer import ApptainerEngine
from pipeline.serving.engines.base import Engine, Launch, Offers, Running, Target
from pipeline.serving.engines.cpu import CpuEngine
from pipeline.serving.engines.docker import DockerEngine
from pipeline.serving.engines.local import LocalEngine

# Each engine's name is its class's ``name`` (written once, in its module); registering one is one line here.
ENGINES: dict[str, Engine] = {
    engine.name: engine for engine in (DockerEngine(), LocalEngine(), CpuEngine(), ApptainerEngine())
}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
# The engine used when none is named: containers on GPUs, the embedded CPU build on a CPU.
DEFAULT_ENGINES: dict[Device, str] = {"gpu": DockerEngine.name, "cpu": CpuEngine.name}


def check_engine_name(name: str, where: str) -> str:
    """``name`` when it is an engine; else ConfigError ``WHERE: unknown engine ...; one of ...``."""
    if name not in ENGINES:
        raise ConfigError(f"{where}: unknown engine {name!r}; use one of {', '.join(ENGINE_NAMES)}")
    return name


def get_engine(name: str, where: str = "--engine") -> Engine:
    return ENGINES[check_engine_name(name, where)]


def default_engine(device: Device) -> str:
    return DEFAULT_ENGINES[device]


__all__ = [
    "ENGINES",
    "ENGINE_NAMES",
    "Engine",
    "Launch",
    "Offers",
    "Running",
    "Target",
    "check_engine_name",
    "default_engine",
    "get_engine",
]
