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
        help="print the GPU packing and the exact serve commands (Slurm: every sbatch script); start nothing",
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="print the expected makespan and GPU-hours (per model and total) from the cost model; start "
        "nothing",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help='scheduler = "slurm": return once the jobs are submitted (then: medsweep status --out DIR)',
    )
    parser.add_argument(
        "--cancel",
        action="store_true",
        help='scheduler = "slurm": cancel the pending and running jobs of the plan',
    )
    # Inside a Slurm job: the per-model lifecycle on the GPUs Slurm gave (the sbatch script runs this).
    parser.add_argument("--job", metavar="MODEL", help=argparse.SUPPRESS)
    # With --job: the model's CPU-only scoring job, after its GPU job (the scoring sbatch script runs this).
    parser.add_argument("--score", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.job:
        from pipeline.sweep.slurm.job import run_job, run_scoring_job

        return run_scoring_job(args.plan, args.job) if args.score else run_job(args.plan, args.job)
    from rich.console import Console

    from pipeline.sweep.plan import load_plan, resolve_models

    plan = load_plan(args.plan)
    if args.estimate:
        from pipeline.sweep.estimate import print_estimate

        return print_estimate(plan, args.plan, Console())
    _warn_about_templates(plan)
    if plan.sweep.scheduler == "slurm":
        return _slurm(args, plan)
    if args.no_wait or args.cancel:
        from pipeline.errors import ConfigError

        flag = "--no-wait" if args.no_wait else "--cancel"
        raise ConfigError(
            f'{flag} is for scheduler = "slurm" plans; {args.plan} runs here (scheduler = "local")'
        )

    from pipeline.sweep.launcher import launcher_for
    from pipeline.sweep.runner import SweepRunner, print_dry_run
    from pipeline.sweep.summary import print_summary, write_summary

    models = resolve_models(plan, args.plan)
    settings = plan.sweep
    launcher = launcher_for(settings)
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


def _warn_about_templates(plan: Any) -> None:
    """Reasoning switches the models' chat templates ignore (pipeline.models.templates), said first."""
    import sys

    from pipeline.models.registry import load_registry
    from pipeline.models.templates import template_warnings

    registry = load_registry()
    for entry in plan.models:
        cfg = registry.get(entry.name)
        for line in template_warnings(cfg) if cfg is not None else []:
            print(line, file=sys.stderr)


def _slurm(args: argparse.Namespace, plan: Any) -> int:
    from rich.console import Console

    from pipeline.sweep.plan import resolve_models
    from pipeline.sweep.slurm.submit import SlurmSweep

    sweep = SlurmSweep(plan, args.plan, resolve_models(plan, args.plan), Console(stderr=not args.dry_run))
    if args.dry_run:
        sweep.dry_run()
        return 0
    if args.cancel:
        return sweep.cancel()
    return sweep.run(wait=not args.no_wait)
