"""The engine interface: what every way of running a server (docker, local, cpu, apptainer, ...) provides.

An engine turns a ``Target`` (which model, on what, where) into the exact command (``plan``, no I/O, so tests
and ``--dry-run`` show it), checks that it can run (``check``: one ``ConfigError`` line naming the fix),
starts it detached (``start``: the ``RunningServer`` record with the ids to watch and stop it by filled in),
tells whether it still runs (``alive``), stops it (``stop``), shows its log (``logs``, ``follow_argv``) and
says what its endpoint offers (``offers``). pipeline.serving.lifecycle calls them (`medsweep serve`, the
sweep and a Slurm job start servers there); docs/engines.md says how to add one.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipeline.models.registry import Device, ServerConfig
from pipeline.serving.running import RunningServer


@dataclass(frozen=True)
class Offers:
    """What the endpoint of an engine serves beyond the OpenAI API: ``/metrics`` with vLLM's queue depth
    (backpressure), ``/tokenize`` (exact token counts) and ``/version`` (provenance)."""

    queue_depth: bool = True
    tokenize: bool = True
    version: bool = True

    def as_dict(self) -> dict[str, bool]:
        return {"queue_depth": self.queue_depth, "tokenize": self.tokenize, "version": self.version}


VLLM_OFFERS = Offers()

BATCH_INVARIANT_ENV = "VLLM_BATCH_INVARIANT"
"""vLLM's switch for batch-invariant kernels (read as an integer: ``bool(int(value))``)."""


@dataclass(frozen=True)
class Target:
    """What to serve and where: the model, the device, the GPUs (empty on a CPU), the port and address."""

    model: ServerConfig
    device: Device
    port: int
    host: str = "127.0.0.1"
    gpus: tuple[int, ...] = ()
    api_key: bool = False  # the server requires VLLM_API_KEY (passed by name, never on a command line)
    max_model_len: int | None = None
    image: str | None = None  # container engines: instead of the pinned image
    # LoRA entries of ``model`` served beside it (pipeline.serving.lora); their checksums are checked first.
    adapters: tuple[ServerConfig, ...] = ()
    # How vLLM splits the model: TP (None: one rank per GPU) x PP stages; executor "ray" for the Ray cluster
    # of a multi-node Slurm job (pipeline/sweep/slurm/shapes.py), None for vLLM's default.
    tensor_parallel: int | None = None
    pipeline_parallel: int = 1
    executor: str | None = None
    # VLLM_BATCH_INVARIANT=1 for the server (batch-invariant kernels: T=0 outputs that do not move with the
    # batch; GPU-only and beta in vLLM 0.32). False: not passed, vLLM's default (off).
    batch_invariant: bool = False

    def env(self) -> dict[str, str]:
        """The environment entries every engine passes to the server for this target."""
        return {BATCH_INVARIANT_ENV: "1"} if self.batch_invariant else {}

    def parallel(self) -> dict[str, Any]:
        """The keyword arguments of ``vllm_flags`` that split the model."""
        tp = self.tensor_parallel or max(1, len(self.gpus))
        return {"tensor_parallel": tp, "pipeline_parallel": self.pipeline_parallel, "executor": self.executor}


@dataclass(frozen=True)
class Launch:
    """The exact command: argv, the environment entries to add, where the server will answer, and the
    container image it runs (container engines)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    image: str | None = None

    def shell(self) -> str:
        """The command as one copy-pastable shell line (env assignments first)."""
        prefix = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join([*prefix, shlex.join(self.argv)])


class Engine(ABC):
    """One way to run a vLLM-compatible server; registered in ``pipeline.serving.engines.ENGINES``."""

    name: ClassVar[str]
    devices: ClassVar[tuple[Device, ...]] = ("gpu", "cpu")  # the first is the default
    offers: ClassVar[Offers] = VLLM_OFFERS
    # Whether a Slurm job can start it on every node of a multi-node allocation (vLLM and Ray on the nodes'
    # PATH, started by srun); a container engine would need its own image and network on each node.
    multinode: ClassVar[bool] = False

    @abstractmethod
    def plan(self, target: Target) -> Launch:
        """The exact command that serves ``target``; pure (no I/O, checks nothing)."""

    @abstractmethod
    def check(self, target: Target, launch: Launch) -> None:
        """Raise ConfigError (one line, naming the fix) when ``launch`` cannot start here."""

    @abstractmethod
    def start(
        self, target: Target, launch: Launch, env: Mapping[str, str], server: RunningServer
    ) -> RunningServer:
        """Start detached (returns before the server is healthy): ``server`` (the record of what starts;
        ``server.log_path``: where a process logs) with the ids it is watched and stopped by."""

    @abstractmethod
    def alive(self, server: RunningServer) -> str | None:
        """None while it runs; else why not (one short phrase)."""

    @abstractmethod
    def stop(self, server: RunningServer, grace: float = 20.0) -> str:
        """Stop it and leave nothing behind; returns what was done. Already gone is fine."""

    @abstractmethod
    def logs(self, server: RunningServer, lines: int = 50) -> str:
        """Its last ``lines`` log lines."""

    @abstractmethod
    def follow_argv(self, server: RunningServer, lines: int) -> list[str]:
        """A command that shows its log and follows it (`make logs`)."""
