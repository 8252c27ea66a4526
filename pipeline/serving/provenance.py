"""Provenance of a run's server: vLLM version, served model, context, engine, device, image (its id and
digests, from `docker image inspect` at start), GPUs, TP, medsweep commit.

Stored by the engine in ``runs.provenance_json``. Endpoints a server lacks give None, never an exception:
provenance must not stop an evaluation.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

from pipeline import __version__
from pipeline.config import server_root, without_credentials
from pipeline.endpoint import Endpoint, ServedModel
from pipeline.paths import REPO_ROOT
from pipeline.serving.running import RunningServer
from pipeline.serving.state import read_state


async def collect_provenance(
    endpoint: Endpoint,
    state: RunningServer | None = None,
    served_model: str | None = None,
    card: ServedModel | None = None,
) -> dict[str, Any]:
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
        model_entry = _pick_model(entries, served_model or (state.served_model if state else None))
    else:
        version = await endpoint.version()
        model_entry = {"id": card.id, "max_model_len": card.max_model_len, "root": card.root}
    return {
        "base_url": without_credentials(root),
        "vllm_version": version,
        "served_model": model_entry.get("id"),
        "max_model_len": model_entry.get("max_model_len"),
        "root": model_entry.get("root"),
        "registry_model": state.model if state else None,
        "hf_id": state.hf_id if state else None,
        "revision": state.revision if state else None,
        "engine": state.engine if state else None,
        "device": state.device if state else None,
        "image": state.image if state else None,
        "image_id": state.image_id if state else None,
        "image_digests": state.image_digests if state else None,
        "offers": state.offers if state else None,
        "gpus": state.gpus if state else None,
        "tensor_parallel_size": state.tensor_parallel_size if state else None,
        "pipeline_parallel_size": state.pipeline_parallel_size if state else None,
        "memory_class": state.memory_class if state else None,
        "medsweep_version": __version__,
        "git_commit": git_commit(),
    }


def launcher_facts(server: RunningServer) -> dict[str, Any]:
    """What the sweep adds to a run's provenance about the server it started (they replace the None that
    ``collect_provenance`` gives without a state file): exactly the keys its runs have always recorded, the
    image's id and digests only where the engine read them."""
    facts: dict[str, Any] = {
        "engine": server.engine,
        "device": server.device,
        "gpus": list(server.gpus),
        "tensor_parallel_size": server.tensor_parallel_size,
        "pipeline_parallel_size": server.pipeline_parallel_size,
        "offers": dict(server.offers),
    }
    if server.image:
        facts["image"] = server.image
    if server.image_id is not None:
        facts["image_id"] = server.image_id
        facts["image_digests"] = list(server.image_digests)
    return facts


def _pick_model(entries: list[dict[str, Any]], served_model: str | None) -> dict[str, Any]:
    for entry in entries:
        if served_model is None or entry.get("id") == served_model:
            return entry
    return {}


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the medsweep checkout (with ``-dirty`` when the tree has changes)."""
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
