"""`medsweep sweep --plan PLAN.toml`: serve → eval → stop every model of a plan, packed onto the GPUs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "sweep",
        help="run a plan of models x tasks on a GPU inventory (serve, eval, stop; watchdog; resumable)",
        description="Run every model of PLAN.toml: packed onto the listed GPUs, in parallel where they fit, "
        "each served, evaluated and stopped under a watchdog. Rerunning the plan resumes.",
    )
    parser.add_argument("--plan", type=Path, required=True, help="the sweep plan (see docs/plans/)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the GPU packing and the exact serve commands; start nothing",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.sweep.launcher import EngineLauncher
    from pipeline.sweep.plan import load_plan, resolve_models
    from pipeline.sweep.runner import SweepRunner, print_dry_run
    from pipeline.sweep.summary import print_summary, write_summary

    plan = load_plan(args.plan)
    models = resolve_models(plan, args.plan)
    settings = plan.sweep
    launcher = EngineLauncher(
        settings.engine,
        device=settings.on_device,
        host=settings.host,
        log_dir=settings.out / "logs",
        api_key_env=settings.api_key_env,
    )
    if args.dry_run:
        print_dry_run(settings, models, launcher, Console())
        return 0
    import time

    started = time.monotonic()
    runner = SweepRunner(settings, models, launcher, console=Console(stderr=True))
    reports = runner.run()
    wall = time.monotonic() - started
    path = write_summary(settings.out, reports, wall)
    print_summary(reports, wall, Console())
    print(f"summary: {path}")
    if any(r.status == "interrupted" for r in reports):
        print(f"interrupted: rerun `medsweep sweep --plan {args.plan}` to resume")
        return 130
    return 0 if all(r.status in ("done", "skipped") for r in reports) else 1
