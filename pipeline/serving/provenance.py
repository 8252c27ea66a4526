"""Provenance of a run's server: vLLM version, served model, context, engine, device, image (its id and
digests, from `docker image inspect` at start), GPUs, TP, medsweep commit — and the record of
``runs.provenance_json`` they go into.

The records are typed (as pipeline/store/schema.py types the store's rows); their fields are the JSON's
keys, in the order it has always had, so old stores and the report read new runs and the report reads old
ones. Endpoints a server lacks give None, never an exception: provenance must not stop an evaluation.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline import __version__
from pipeline.config import server_root, without_credentials
from pipeline.endpoint import Endpoint, ServedModel
from pipeline.paths import REPO_ROOT
from pipeline.serving.running import RunningServer
from pipeline.serving.state import read_state


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ServerProvenance(_Record):
    """What is known of the server a run talked to: from the server itself, from the serve state file
    when it describes that server, and about this checkout. None: not known."""

    base_url: str
    vllm_version: str | None = None
    served_model: str | None = None
    max_model_len: int | None = None
    root: str | None = None
    registry_model: str | None = None
    hf_id: str | None = None
    revision: str | None = None
    engine: str | None = None
    device: str | None = None
    image: str | None = None
    image_id: str | None = None
    image_digests: list[str] | None = None
    offers: dict[str, bool] | None = None
    gpus: list[int] | None = None
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    memory_class: int | None = None
    medsweep_version: str = __version__
    git_commit: str | None = None
    # VLLM_BATCH_INVARIANT as medsweep started the server (its record: the state file, the sweep's
    # launcher); None for an endpoint medsweep did not start (nothing reports it).
    vllm_batch_invariant: bool | None = None


class SweepPass(_Record):
    """Which of the sweep's eval passes on which port (``runs.provenance_json.sweep``)."""

    port: int
    pass_: int = Field(alias="pass")


class LauncherFacts(_Record):
    """What the sweep knows of the server it started (it writes no state file): these replace the None
    that ``collect_provenance`` gives without one. Exactly the keys its runs have always recorded: the
    image only when there is one, its id and digests only where the engine read them."""

    engine: str
    device: str
    gpus: list[int]
    tensor_parallel_size: int
    pipeline_parallel_size: int
    offers: dict[str, bool]
    image: str | None = None
    image_id: str | None = None
    image_digests: list[str] | None = None
    sweep: SweepPass | None = None
    vllm_batch_invariant: bool | None = None

    @classmethod
    def of(cls, server: RunningServer, sweep: SweepPass | None = None) -> LauncherFacts:
        known = server.image_id is not None
        return cls(
            engine=server.engine,
            device=server.device,
            gpus=list(server.gpus),
            tensor_parallel_size=server.tensor_parallel_size,
            pipeline_parallel_size=server.pipeline_parallel_size,
            offers=dict(server.offers),
            image=server.image or None,
            image_id=server.image_id,
            image_digests=list(server.image_digests) if known else None,
            sweep=sweep,
            vllm_batch_invariant=server.vllm_batch_invariant,
        )


class RunProvenance(ServerProvenance):
    """``runs.provenance_json``: the server's facts, then what the run adds: how many replicas it used,
    the sweep's pass (sweeps only), the truncation applied and the optional scorers' versions (or why
    they are missing)."""

    replicas: int
    sweep: SweepPass | None = None
    truncation: str | None = None
    scorers: dict[str, str] = Field(default_factory=dict)
    # What makes temperature-0 outputs repeat or drift (pipeline.evaluation.recheck; the server's
    # VLLM_BATCH_INVARIANT is one of its facts, above); None: unknown.
    prefix_caching: bool | None = None
    concurrency: int | None = None

    @classmethod
    def of(
        cls, server: ServerProvenance, replicas: int, launcher: LauncherFacts | None = None
    ) -> RunProvenance:
        data = server.model_dump()
        if launcher is not None:
            data.update(launcher.model_dump(exclude_none=True, exclude={"sweep"}))
        return cls(**data, replicas=replicas, sweep=launcher.sweep if launcher is not None else None)

    def as_json(self) -> dict[str, Any]:
        """The JSON object stored (``sweep`` only in a sweep's runs)."""
        return self.model_dump(mode="json", by_alias=True, exclude=None if self.sweep else {"sweep"})


async def collect_provenance(
    endpoint: Endpoint,
    state: RunningServer | None = None,
    served_model: str | None = None,
    card: ServedModel | None = None,
) -> ServerProvenance:
    """Read ``/version`` and ``/v1/models`` from ``endpoint`` and merge what the serve state file recorded
    (image, GPUs, TP) when it describes the same server.

    ``card`` is the served model's entry when the caller has already listed ``/v1/models``.
    """
    root = endpoint.root
    if state is None:
        recorded = read_state()
        state = recorded if recorded is not None and server_root(recorded.url) == root else None
    if card is None:
        version, entries = await asyncio.gather(endpoint.version(), endpoint.model_entries())
        entry = _pick_model(entries, served_model or (state.served_model if state else None))
        served, max_len, model_root = (
            _str(entry.get("id")),
            _int(entry.get("max_model_len")),
            _str(entry.get("root")),
        )
    else:
        version = await endpoint.version()
        served, max_len, model_root = card.id, card.max_model_len, card.root
    facts = ServerProvenance(
        base_url=without_credentials(root),
        vllm_version=version,
        served_model=served,
        max_model_len=max_len,
        root=model_root,
        git_commit=git_commit(),
    )
    if state is None:
        return facts
    return facts.model_copy(
        update={
            "registry_model": state.model,
            "hf_id": state.hf_id,
            "revision": state.revision,
            "engine": state.engine,
            "device": state.device,
            "image": state.image,
            "image_id": state.image_id,
            "image_digests": list(state.image_digests),
            "offers": dict(state.offers),
            "gpus": list(state.gpus),
            "tensor_parallel_size": state.tensor_parallel_size,
            "pipeline_parallel_size": state.pipeline_parallel_size,
            "memory_class": state.memory_class,
            "vllm_batch_invariant": state.vllm_batch_invariant,
        }
    )


def _pick_model(entries: list[dict[str, Any]], served_model: str | None) -> dict[str, Any]:
    for entry in entries:
        if served_model is None or entry.get("id") == served_model:
            return entry
    return {}


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@functools.cache
def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the medsweep checkout (with ``-dirty`` when the tree has changes), when this
    process first asks: the code it runs is the code it imported then."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
