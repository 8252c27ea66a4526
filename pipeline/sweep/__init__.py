"""Overnight sweeps: a plan of models × tasks on a GPU inventory, packed, served, evaluated, watched.

Public API:
    load_plan(path) -> SweepPlan;  resolve_models(plan, path) -> list[PlannedModel]
    pack(needs, inventory) -> list[Wave]  (pure; Need(name, gpus))
    SweepRunner(settings, models, launcher, console=...).run() -> list[ModelReport]
    EngineLauncher(engine, device=..., host=..., log_dir=...)
        (the Launcher protocol over pipeline.serving.engines)
"""

from pipeline.sweep.launcher import EngineLauncher, Launcher, ServerHandle
from pipeline.sweep.packing import Assignment, Need, Wave, allocate, pack
from pipeline.sweep.plan import ModelEntry, PlannedModel, SweepPlan, SweepSettings, load_plan, resolve_models
from pipeline.sweep.runner import SweepRunner
from pipeline.sweep.summary import ModelReport, print_summary, write_summary

__all__ = [
    "Assignment",
    "EngineLauncher",
    "Launcher",
    "ModelEntry",
    "ModelReport",
    "Need",
    "PlannedModel",
    "ServerHandle",
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
