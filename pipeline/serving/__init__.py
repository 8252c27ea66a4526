"""Serving: launch vLLM (docker, local or the embedded CPU build), wait for health, record the state file
that `medsweep eval` reads, stop it again, and collect provenance.

Public API others call:
    read_state(path=None) -> ServeState | None;  write_state(state, path=None) -> Path
    async collect_provenance(endpoint, state=None) -> dict  (the server's HTTP calls: pipeline.endpoint)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.serving.provenance import collect_provenance
    from pipeline.serving.state import ServeState, clear_state, read_state, state_path, write_state

# Imported on first use: importing pipeline.serving.engines (for the engine names) must not pull in the
# HTTP clients behind health and provenance.
_HOMES = {
    "collect_provenance": "pipeline.serving.provenance",
    **dict.fromkeys(
        ("ServeState", "clear_state", "read_state", "state_path", "write_state"), "pipeline.serving.state"
    ),
}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ServeState",
    "clear_state",
    "collect_provenance",
    "read_state",
    "state_path",
    "write_state",
]
