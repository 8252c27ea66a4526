"""Overnight sweeps: a plan of models × tasks on a GPU inventory, packed, served, evaluated, watched.

Public API:
    load_plan(path) -> SweepPlan;  resolve_models(plan, path) -> list[PlannedModel]
    pack(needs, inventory) -> list[Wave]  (pure; Need(name, gpus))
    SweepRunner(settings, models, launcher, console=...).run() -> list[ModelReport]
    EngineLauncher(engine, device=..., host=..., log_dir=...)
        (the Launcher protocol over pipeline.serving.lifecycle: RunningServer records)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.sweep.launcher import EngineLauncher, Launcher
    from pipeline.sweep.packing import Assignment, Need, Wave, allocate, pack
    from pipeline.sweep.plan import (
        ModelEntry,
        PlannedModel,
        SweepPlan,
        SweepSettings,
        load_plan,
        resolve_models,
    )
    from pipeline.sweep.runner import SweepRunner
    from pipeline.sweep.summary import ModelReport, print_summary, write_summary

# Imported on first use: a reader of one module (`medsweep status` reads the journal) pays for no other.
_HOMES = {
    **dict.fromkeys(("EngineLauncher", "Launcher"), "pipeline.sweep.launcher"),
    **dict.fromkeys(("Assignment", "Need", "Wave", "allocate", "pack"), "pipeline.sweep.packing"),
    **dict.fromkeys(
        ("ModelEntry", "PlannedModel", "SweepPlan", "SweepSettings", "load_plan", "resolve_models"),
        "pipeline.sweep.plan",
    ),
    "SweepRunner": "pipeline.sweep.runner",
    **dict.fromkeys(("ModelReport", "print_summary", "write_summary"), "pipeline.sweep.summary"),
}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Assignment",
    "EngineLauncher",
    "Launcher",
    "ModelEntry",
    "ModelReport",
    "Need",
    "PlannedModel",
    "SweepPlan",
    "SweepRunner",
    "SweepSettings",
    "Wave",
    "allocate",
    "load_plan",
    "pack",
    "print_summary",
    "resolve_models",
    "write_summary",
]
