"""The sweep journal: ``<out>/sweep-journal.jsonl``, one JSON event per line, appended and fsynced.

It tells a rerun which models finished (with which settings) and which servers a crashed sweep left
running. It holds ids, ports, reasons and counts; never a key, token or URL with credentials.

Every line is ``{"t": ..., "model": ..., "event": ..., <details>}``. The events something reads back are
typed records (``ModelStart``, ``ModelGenerated``, ``ModelDone``, ``ServerStarted``, ``ServerStopped``,
``JobSubmitted``): they
are written from the record and read into it, so a renamed or missing key, or a value of the wrong type,
is a one-line error naming the file and line, never a silent ``0`` or ``""``. The others (``healthy``,
``restart``, ...) are notes for the person reading the file and are written as given.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson

from pipeline.errors import ConfigError
from pipeline.files import open_private, private_dir

JOURNAL_NAME = "sweep-journal.jsonl"


@dataclass(frozen=True, slots=True)
class ModelStart:
    """A model's turn began: on which GPUs, behind which port, on whose server (a LoRA rider's host)."""

    EVENT: ClassVar[str] = "model_start"
    model: str
    gpus: list[int]
    port: int
    server_of: str | None = None
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelGenerated:
    """A model's eval pass ended its generation (scoring comes next, maybe after its GPUs were released):
    a rerun whose store holds every answer of it scores it without a server."""

    EVENT: ClassVar[str] = "model_generated"
    model: str
    identity: str
    tasks: list[str]
    settings: dict[str, Any]  # as ModelDone's: what must match for the answers to count on a rerun
    eval_pass: int = 1
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelDone:
    """A model's end: what a rerun checks before skipping it and what the Slurm summary shows."""

    EVENT: ClassVar[str] = "model_done"
    model: str
    status: str
    identity: str = ""
    tasks: list[str] = field(default_factory=list)
    settings: dict[str, Any] | None = None  # what must match for `done` to count on a rerun
    restarts: int = 0
    sent: int = 0
    wall_s: float = 0.0
    error: str = ""
    timeline: dict[str, float] | None = None  # pipeline/sweep/timeline.py: where wall_s went
    # False: generated only (a Slurm GPU job); its scoring job writes it again, scored (docs/slurm.md).
    scored: bool = True
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class ServerStarted:
    """A server a sweep started: the ids to stop it by if the sweep crashes."""

    EVENT: ClassVar[str] = "server_started"
    model: str
    port: int
    gpus: list[int] = field(default_factory=list)
    container_id: str | None = None
    pid: int | None = None
    log_path: str | None = None
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class ServerStopped:
    """A server that is gone (stopped by the sweep, or a crashed sweep's leftover: ``note``)."""

    EVENT: ClassVar[str] = "server_stopped"
    model: str
    port: int
    gpus: list[int] | None = None
    container_id: str | None = None
    pid: int | None = None
    log_path: str | None = None
    note: str | None = None
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class JobSubmitted:
    """A Slurm job the submitting sweep submitted (or adopted: found running under its name)."""

    EVENT: ClassVar[str] = "job_submitted"
    model: str
    job_id: str
    job_name: str
    nodes: int
    gpus_per_node: int
    tp: int
    pp: int
    adopted: bool = False
    scoring: bool = False  # the model's CPU-only scoring job (after its GPU job), not the GPU job
    t: float = 0.0


Record = ModelStart | ModelGenerated | ModelDone | ServerStarted | ServerStopped | JobSubmitted
R = TypeVar("R", ModelStart, ModelGenerated, ModelDone, ServerStarted, ServerStopped, JobSubmitted)


class Journal:
    def __init__(self, out_dir: Path) -> None:
        private_dir(out_dir)
        self.path = out_dir / JOURNAL_NAME
        self._lock = threading.Lock()

    def append(self, model: str, event: str, **details: Any) -> None:
        line = orjson.dumps({"t": round(time.time(), 3), "model": model, "event": event, **details})
        with self._lock:
            fd = open_private(self.path)
            try:
                os.write(fd, line + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)

    def write(self, record: Record) -> None:
        """Append a typed event (its ``t`` is the time of writing)."""
        details = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        del details["model"], details["t"]
        self.append(record.model, record.EVENT, **details)

    def events(self) -> list[dict[str, Any]]:
        """All events as written; a line cut short by a crash is skipped."""
        return [event for _, event in self._lines()]

    def read(self, kind: type[R]) -> list[R]:
        """The events of one typed kind, oldest first; ConfigError naming the line when one does not fit."""
        return [
            _record(kind, event, f"{self.path}:{n}")
            for n, event in self._lines()
            if event.get("event") == kind.EVENT
        ]

    def finished(self) -> dict[str, ModelDone]:
        """model -> its last ``model_done`` event whose status is ``done`` and which was scored (and not
        superseded)."""
        last = {done.model: done for done in self.read(ModelDone)}
        return {m: e for m, e in last.items() if e.status == "done" and e.scored}

    def generated(self) -> dict[str, ModelGenerated]:
        """model -> its last ``model_generated`` event, unless a ``done`` ``model_done`` came after it."""
        last: dict[str, ModelGenerated] = {}
        for n, event in self._lines():
            kind = event.get("event")
            if kind == ModelGenerated.EVENT:
                record = _record(ModelGenerated, event, f"{self.path}:{n}")
                last[record.model] = record
            elif kind == ModelDone.EVENT and event.get("status") == "done":
                last.pop(str(event.get("model")), None)
        return last

    def leftover_servers(self) -> list[ServerStarted]:
        """``server_started`` records with no ``server_stopped`` after them (a crashed sweep's servers)."""
        running: dict[tuple[str, int], ServerStarted] = {}
        for n, event in self._lines():
            kind = event.get("event")
            if kind == ServerStarted.EVENT:
                started = _record(ServerStarted, event, f"{self.path}:{n}")
                running[(started.model, started.port)] = started
            elif kind == ServerStopped.EVENT:
                stopped = _record(ServerStopped, event, f"{self.path}:{n}")
                running.pop((stopped.model, stopped.port), None)
        return list(running.values())

    def _lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        for n, line in enumerate(lines, start=1):
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                yield n, event


def _record(kind: type[R], event: dict[str, Any], where: str) -> R:
    """``event`` (one journal line) as ``kind``: every key known, every required key there, every value of
    its declared type. A journal written by a medsweep that named things otherwise fails here, loudly."""
    data = {k: v for k, v in event.items() if k != "event"}
    hints = typing.get_type_hints(kind)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    fix = "was it written by another medsweep version? move it aside to start the sweep afresh"
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: {kind.EVENT} event has unknown field {unknown[0]!r}; {fix}")
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in data:
            if required:
                raise ConfigError(f"{where}: {kind.EVENT} event lacks field {name!r}; {fix}")
            continue
        if not _fits(data[name], hints[name]):
            wanted = _type_name(hints[name])
            raise ConfigError(
                f"{where}: {kind.EVENT} event field {name!r} is {data[name]!r}, not {wanted}; {fix}"
            )
    return kind(**data)


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
