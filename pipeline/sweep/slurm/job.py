"""`medsweep sweep --plan P --job MODEL`: what each model's sbatch script runs.

It is the local sweep for one model — the same ``SweepRunner`` (serve, health wait, eval under the
watchdog, stop), launcher and journal — on the GPUs Slurm gave the job (``CUDA_VISIBLE_DEVICES``, else
``SLURM_JOB_GPUS``; never a list from the plan), writing into the job's own folder
``OUT/stores/<model>/`` (its store, journal, summary, logs: one writer, see pipeline/store/layout.py).
``--signal=B:TERM@grace`` before the time limit arrives here as SIGTERM: the sweep stops as on Ctrl-C —
the eval stops sending and commits, the server is stopped — and a rerun of the plan resubmits the job.
The job generates only: it ends, and releases its GPUs, with the server; ``--score`` is the model's
scoring job after it, CPU only (``run_scoring_job``; docs/slurm.md).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from pipeline.errors import ConfigError, EndpointError
from pipeline.serving.argv import connect_host
from pipeline.store.layout import job_dir
from pipeline.sweep.journal import Journal, ModelDone, ModelGenerated
from pipeline.sweep.launcher import EngineLauncher, launcher_for
from pipeline.sweep.plan import PlannedModel, SweepPlan, SweepSettings, load_plan, resolve_models
from pipeline.sweep.runner import SweepRunner
from pipeline.sweep.slurm import slurmcli
from pipeline.sweep.slurm.shapes import JobShape, job_shape
from pipeline.sweep.summary import print_summary, write_summary
from pipeline.sweep.timeline import Timeline

GPU_ENV = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS")


def granted_gpus(environ: Mapping[str, str], count: int) -> tuple[int, ...]:
    """The GPU ids Slurm gave this job; ConfigError when there are none or fewer than ``count``."""
    for name in GPU_ENV:
        value = environ.get(name, "").strip()
        if not value:
            continue
        try:
            gpus = tuple(int(g) for g in value.split(","))
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a list of GPU ids") from None
        if len(gpus) < count:
            raise ConfigError(f"{name}={value} gives {len(gpus)} GPUs; this job needs {count}")
        return gpus[:count]
    raise ConfigError(
        "no GPUs from Slurm (CUDA_VISIBLE_DEVICES and SLURM_JOB_GPUS are unset): `--job` runs inside the "
        "sbatch script `medsweep sweep` submits, which asks for the GPUs"
    )


def run_job(plan_path: Path, name: str, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    plan = load_plan(plan_path)
    models = resolve_models(plan, plan_path)
    model = next((m for m in models if m.name == name), None)
    if model is None:
        raise ConfigError(f"{plan_path}: no model {name!r} in [[models]]")
    shape = job_shape(plan, model)
    # The head node's share of the job: all its GPUs on one node; TP of them per node over several.
    gpus = granted_gpus(environ, shape.gpus_per_node) if shape.gpus_per_node else ()
    model = model.model_copy(update={"port": _free_or_other(plan.sweep.host, model.port)})
    # Generation only: the job (and its GPUs) ends with the server; the scoring job scores after it.
    runner = job_runner(plan, model, gpus, Console(stderr=True), environ, shape, score=False)
    signal.signal(signal.SIGTERM, _interrupt)
    runner.allocated_at, runner.queued_s = _allocation(runner.journal, environ, name)
    started = time.monotonic()
    reports = runner.run()
    wall = time.monotonic() - started
    write_summary(runner.out, reports, wall)
    print_summary(reports, wall, Console())
    if any(r.status == "interrupted" for r in reports):
        return 130
    return 0 if all(r.status in ("done", "skipped") for r in reports) else 1


def job_runner(
    plan: SweepPlan,
    model: PlannedModel,
    gpus: tuple[int, ...],
    console: Console,
    environ: Mapping[str, str] | None = None,
    shape: JobShape | None = None,
    *,
    score: bool = True,
) -> SweepRunner:
    """The local sweep of one model in its job folder, on ``gpus`` (also what the submitter asks whether
    a model finished earlier: the same journal and settings check as the job's own rerun)."""
    settings = job_settings(plan, model, gpus)
    if gpus:
        model = model.model_copy(update={"gpu_count": len(gpus)})  # exactly this node's share
    env = dict(os.environ if environ is None else environ)
    launcher = job_launcher(settings, shape, gpus)
    return SweepRunner(settings, [model], launcher, console=console, environ=env, score=score)


def run_scoring_job(plan_path: Path, name: str, environ: Mapping[str, str] | None = None) -> int:
    """`medsweep sweep --plan P --job MODEL --score`: the model's scoring job, CPU only, after its GPU job
    (``--dependency=afterany``). It scores what the GPU job generated (its last ``model_done``, written
    with ``scored=False``) from the job's store, and writes that ``model_done`` again, scored, its timeline
    completed: the wait for this job in ``queued_s``, this job in ``scoring_s``; the GPU allocation, and so
    ``idle_fraction``, stays the GPU job's. A GPU job stopped after every answer was stored but before its
    ``model_done`` (its ``model_generated`` says so) is scored too, into a new ``model_done``. Nothing to
    score (the GPU job was stopped mid-generation, failed to start, or the model is scored already): says
    so and exits 0."""
    from pipeline.evaluation.evaluate import score_stored
    from pipeline.evaluation.scorecard import print_summary as print_scores

    environ = os.environ if environ is None else environ
    plan = load_plan(plan_path)
    model = next((m for m in resolve_models(plan, plan_path) if m.name == name), None)
    if model is None:
        raise ConfigError(f"{plan_path}: no model {name!r} in [[models]]")
    folder = job_dir(plan.sweep.out.resolve(), name)
    journal = Journal(folder)
    done = [d for d in journal.read(ModelDone) if d.model == name]
    last = done[-1] if done else None
    console = Console(stderr=True)
    ended = last is not None and bool(last.identity) and last.status != "interrupted"
    if last is None or not ended or last.scored:
        # A GPU job stopped after every answer was stored, before its model_done said so: still scored.
        answered = job_runner(plan, model, (), console).generated_earlier(model)
        if not isinstance(answered, ModelGenerated):
            why = "it is scored already" if ended else "no generation of it ended"
            console.print(f"{name}: nothing to score ({why})", highlight=False)
            return 0
        last = ModelDone(model=name, status="done", identity=answered.identity, tasks=answered.tasks,
                         settings=answered.settings, t=answered.t)  # fmt: skip
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.time()
    started, queued = _allocation(journal, environ, name, after=last.t)
    summaries = score_stored(folder, last.identity, plan.sweep.variant, last.tasks)
    gpu = Timeline(**last.timeline) if last.timeline else Timeline()  # none: its GPU job wrote no end
    scoring = round(time.time() - (started or began), 1)
    timeline = dataclasses.replace(
        gpu, queued_s=round(gpu.queued_s + queued, 1), scoring_s=round(gpu.scoring_s + scoring, 1)
    )  # idle_fraction: the GPU job's allocation, the only one that held GPUs ...
    if scoring_gpus(plan, model)[0]:  # ... unless this job held GPUs too: GPU time, generating nothing
        held = gpu.wall_s - gpu.queued_s + scoring
        idle = (held - gpu.busy_s - gpu.tail_s) / held if held > 0 else 0.0
        timeline = dataclasses.replace(timeline, idle_fraction=round(min(max(idle, 0.0), 1.0), 3))
    journal.write(
        dataclasses.replace(last, scored=True, timeline=timeline.as_json(), wall_s=timeline.wall_s, t=0.0)
    )
    print_scores(summaries, last.identity, folder, console=Console())
    return 0


def scoring_gpus(plan: SweepPlan, model: PlannedModel) -> tuple[int, list[str]]:
    """(the GPUs the model's scoring job asks for, the ``task:metric`` of its tasks that run a model on a GPU
    when one is visible and can run here). ``[slurm] scoring_gpus`` when set; else 1 where there is such a
    metric (a local sweep scores those on the model's GPUs before releasing them; here a scoring job holds
    one GPU for minutes instead), else 0: CPU only."""
    from pipeline.scoring.extras import gpu_scoring
    from pipeline.tasks import get_task, task_names

    data = plan.sweep.data_dir
    tasks = list(model.tasks) or [t for t in task_names() if get_task(t).data_path(data).exists()]
    wanting = gpu_scoring(tasks)
    if plan.slurm.scoring_gpus is not None:
        return plan.slurm.scoring_gpus, wanting
    return (1 if wanting else 0), wanting


def job_settings(plan: SweepPlan, model: PlannedModel, gpus: tuple[int, ...]) -> SweepSettings:
    """The plan's [sweep] as the job runs it: in the model's job folder, on the GPUs it was given."""
    out = job_dir(plan.sweep.out.resolve(), model.name)
    return plan.sweep.model_copy(update={"out": out, "gpus": gpus, "scheduler": "local"})


def job_launcher(settings: SweepSettings, shape: JobShape | None, gpus: tuple[int, ...]) -> EngineLauncher:
    """The sweep's launcher, with vLLM's split of this job where it is not one TP rank per GPU: TP x PP
    inside the node, or over the job's Ray cluster of nodes."""
    split: dict[str, Any] = {}
    if shape is not None and (shape.pp > 1 or shape.tp != len(gpus)):
        split = {"tensor_parallel": shape.tp, "pipeline_parallel": shape.pp,
                 "executor": "ray" if shape.multinode else None}  # fmt: skip
    return launcher_for(settings, **split)


def _allocation(
    journal: Journal, environ: Mapping[str, str], model: str, after: float = 0.0
) -> tuple[float | None, float]:
    """(when Slurm started this job, how long it was pending): the model's timeline begins with its
    allocation and counts the wait before it as ``queued_s`` (a scoring job's wait counts from ``after``,
    the GPU job's end: before it, the job waited for its dependency). Journaled as ``job_started``. Where
    Slurm does not say (squeue and sacct silent): (None, 0.0), the turn begins when medsweep does."""
    job_id = environ.get("SLURM_JOB_ID", "")
    try:
        times = slurmcli.job_times(job_id) if job_id else None
    except (ConfigError, EndpointError):
        times = None
    if times is None:
        return None, 0.0
    submitted, started = times
    queued = round(max(started - max(submitted, after), 0.0), 1)
    journal.append(model, "job_started", job_id=job_id, submitted_at=submitted, started_at=started,
                          queued_s=queued)  # fmt: skip
    return started, queued


def _free_or_other(host: str, port: int) -> int:
    """The plan's port when it is free on this node, else one the OS picks: the node is shared with other
    users' jobs, and only this job's own eval talks to its server. SO_REUSEADDR as the server itself binds
    (uvicorn): a port whose last server closed moments ago (connections in TIME_WAIT) is free to it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((connect_host(host), port))
            return port
        except OSError:
            sock.bind((connect_host(host), 0))
            return int(sock.getsockname()[1])


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # The warning before the time limit (or scancel): stop as on Ctrl-C, committing what is done.
    raise KeyboardInterrupt
