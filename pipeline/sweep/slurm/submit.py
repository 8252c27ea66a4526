"""A sweep on Slurm: one job per model, submitted, watched, cancelled, resumed.

The submitting `medsweep sweep` is the only writer of ``OUT/sweep-journal.jsonl`` (which jobs it
submitted, by id and name); each job writes its own folder ``OUT/stores/<model>/`` (pipeline/store/layout.py).
A rerun never submits a model twice: a model its earlier job finished (same settings) is skipped, a job of
the model that is pending or running (found by its recorded id or by its name) is left alone, and an
ended job that did not finish it is resubmitted, at most ``max_restarts`` times; the new job's eval
resumes from the model's store.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import cast

from rich.console import Console

from pipeline.errors import ConfigError, EndpointError
from pipeline.files import private_dir, write_private
from pipeline.store.layout import STORES_DIR, job_dir
from pipeline.sweep.journal import JobSubmitted, Journal, ModelStart
from pipeline.sweep.plan import PlannedModel, SweepPlan
from pipeline.sweep.slurm import slurmcli
from pipeline.sweep.slurm.job import job_launcher, job_runner, job_settings, scoring_gpus
from pipeline.sweep.slurm.jobs import JOB_PREFIX, JobRow, job_rows, read, submissions
from pipeline.sweep.slurm.script import SCORING_SUFFIX, JobFiles, job_name, render, render_scoring
from pipeline.sweep.slurm.shapes import JobShape, job_shapes
from pipeline.sweep.summary import (
    STATUSES,
    ModelReport,
    Status,
    model_stats,
    print_summary,
    write_summary,
)
from pipeline.sweep.timeline import Timeline

SCRIPTS_DIR = "slurm"  # OUT/slurm/<model>.sbatch: the scripts as submitted
_POLL_FAILURES = 10  # squeue failures in a row before the watch gives up (the jobs keep running)


def sweep_name(plan_path: Path) -> str:
    """The ``<sweep>`` of the job names: the plan file's name without ``.toml``."""
    return plan_path.stem


class SlurmSweep:
    """The sweep of ``plan`` on Slurm: dry run, submit (and watch), cancel."""

    def __init__(
        self, plan: SweepPlan, plan_path: Path, models: list[PlannedModel], console: Console
    ) -> None:
        self.plan = plan
        self.plan_path = plan_path
        self.models = models
        self.console = console
        self.sweep = sweep_name(plan_path)
        self.out = plan.sweep.out.resolve()
        self.shapes: dict[str, JobShape] = job_shapes(plan, models, plan_path)  # errors before anything
        files = JobFiles(plan=plan_path.resolve(), workdir=Path.cwd(), logs=self.out / "logs")
        try:
            self.scripts = {m.name: render(plan, self.sweep, m, self.shapes[m.name], files) for m in models}
            self.scoring_gpus = {m.name: scoring_gpus(plan, m) for m in models}
            self.scoring_scripts = {
                m.name: render_scoring(plan, self.sweep, m, files, self.scoring_gpus[m.name][0])
                for m in models
            }
        except ConfigError as exc:
            raise ConfigError(f"{plan_path}: {exc}") from None
        self._stop = threading.Event()

    @property
    def prefix(self) -> str:
        return f"{JOB_PREFIX}-{self.sweep}-"

    # --- dry run ---

    def dry_run(self) -> None:
        """Every sbatch script exactly as it would be submitted (plain text: copy-pastable)."""
        print(
            f"# {len(self.models)} models, one Slurm job each and a CPU-only scoring job after it; results "
            f"in {self.out} (a store per model under {STORES_DIR}/); submit with `medsweep sweep --plan "
            f"{self.plan_path}`"
        )
        for model in self.models:
            shape = self.shapes[model.name]
            split = f"TP {shape.tp}" + (f" x PP {shape.pp}" if shape.pp > 1 else "")
            gpus = f"{shape.nodes} node(s) x {shape.gpus_per_node} GPUs, {split}" if shape.gpus else "no GPU"
            print(f"\n# --- {model.name}: {gpus}, port {model.port} ---")
            print(self.scripts[model.name], end="")
            granted = tuple(range(shape.gpus_per_node))  # as CUDA_VISIBLE_DEVICES will name them
            launcher = job_launcher(job_settings(self.plan, model, granted), shape, granted)
            print(f"# the job serves with: {launcher.command(model.server, granted, model.port)}")
            print(f"\n# --- {model.name}, scoring: {self._scoring_on(model.name)}, submitted with sbatch "
                  "--dependency=afterany:<the job above> ---")  # fmt: skip
            print(self.scoring_scripts[model.name], end="")

    def _scoring_on(self, model: str) -> str:
        """Where the model's scoring job scores, and why it asks for GPUs (or does not, though it could)."""
        gpus, wanting = self.scoring_gpus[model]
        if gpus:
            return f"{gpus} GPU(s)" + (f" for {', '.join(wanting)}" if wanting else "")
        return "CPU only" + (
            f" ({', '.join(wanting)} on the CPUs: slurm.scoring_gpus = 0)" if wanting else ""
        )

    # --- submit and watch ---

    def run(self, *, wait: bool = True) -> int:
        slurmcli.require("sbatch", "squeue", "scancel")
        journal = Journal(self.out)
        subs = submissions(self.out)
        queue = slurmcli.queue(self.prefix)
        active_by_name = {info.name: info for info in queue.values() if info.active}
        scoring = submissions(self.out, scoring=True)
        reports: dict[str, ModelReport] = {}
        due: list[PlannedModel] = []
        due_scoring: list[PlannedModel] = []
        for model in self.models:
            runner = job_runner(self.plan, model, (), self.console)
            runner.check_inputs()  # config, data and a damaged store: said before anything is submitted
            earlier = runner.finished_earlier(model)
            recorded = [e.job_id for e in subs.get(model.name, [])]
            known = recorded + [e.job_id for e in scoring.get(model.name, [])]
            running = next((queue[j] for j in reversed(known) if j in queue and queue[j].active), None)
            names = (job_name(self.sweep, model.name), job_name(self.sweep, model.name, scoring=True))
            running = running or next((active_by_name[n] for n in names if n in active_by_name), None)
            if earlier is not None:
                reports[model.name] = earlier
                self.console.print(f"{model.name}: done by an earlier job of this plan; skipped")
            elif running is not None:
                self.console.print(
                    f"{model.name}: job {running.job_id} is {running.state}; left alone", highlight=False
                )
                if running.job_id not in known:  # submitted by a run that crashed before recording it
                    adopted = running.name == names[1]
                    self._record(journal, model, running.job_id, adopted=True, scoring=adopted)
            elif runner.generated_earlier(model) is not None:
                due_scoring.append(model)  # its GPU job generated everything; only the scoring is missing
            elif len(recorded) > self.plan.sweep.max_restarts:
                reports[model.name] = ModelReport(
                    model.name, [], model.port, "failed",
                    error=f"{len(recorded)} jobs did not finish it (max_restarts = "
                    f"{self.plan.sweep.max_restarts}); see {self.out / 'logs'}",
                )  # fmt: skip
            else:
                due.append(model)
        self._submit(journal, due, due_scoring)
        if not wait:
            self.console.print(
                f"submitted {len(due) + len(due_scoring)} model(s); `medsweep status --out "
                f"{self.plan.sweep.out}` shows them, "
                f"`medsweep sweep --plan {self.plan_path} --cancel` cancels them",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
            return 0
        started = time.monotonic()
        watched = [m for m in self.models if m.name not in reports]
        try:
            self._watch([m.name for m in watched])
        except KeyboardInterrupt:
            self.console.print(
                f"interrupted: the jobs keep running; `medsweep status --out {self.plan.sweep.out}` shows "
                f"them, `--cancel` cancels them", highlight=False,
            )  # fmt: skip
            return 130
        wall = time.monotonic() - started
        rows = {row.model: row for row in job_rows(self.out, [m.name for m in watched])}
        for model in watched:
            reports[model.name] = _report(self.out, model, rows[model.name], self.plan.sweep.variant)
        ordered = [reports[m.name] for m in self.models]
        path = write_summary(self.out, ordered, wall)
        print_summary(ordered, wall, Console())
        print(f"summary: {path}")
        return 0 if all(r.status in ("done", "skipped") for r in ordered) else 1

    def _submit(self, journal: Journal, due: list[PlannedModel], due_scoring: list[PlannedModel]) -> None:
        """Each model of ``due``: its GPU job, and its scoring job after it (``--dependency=afterany``);
        each of ``due_scoring`` (generated by an earlier job): its scoring job alone."""
        if not due and not due_scoring:
            return
        folder = private_dir(self.out / SCRIPTS_DIR)
        private_dir(self.out / "logs")
        paths = {m.name: write_private(folder / f"{m.name}.sbatch", self.scripts[m.name]) for m in due}
        scorers = {
            m.name: write_private(folder / f"{m.name}.score.sbatch", self.scoring_scripts[m.name])
            for m in (*due, *due_scoring)
        }
        # sbatch's own refusal (a partition that does not exist) before any job exists
        for path in (*paths.values(), *scorers.values()):
            slurmcli.submit(path, test_only=True)
        for model in due:
            job_id = slurmcli.submit(paths[model.name])
            self._record(journal, model, job_id)
            scorer = slurmcli.submit(scorers[model.name], dependency=f"afterany:{job_id}")
            self._record(journal, model, scorer, scoring=True)
            self.console.print(
                f"{model.name}: submitted job {job_id} and its scoring job {scorer}", highlight=False
            )
        for model in due_scoring:
            scorer = slurmcli.submit(scorers[model.name])
            self._record(journal, model, scorer, scoring=True)
            self.console.print(
                f"{model.name}: generated by an earlier job; submitted its scoring job {scorer}",
                highlight=False,
            )

    def _record(
        self, journal: Journal, model: PlannedModel, job_id: str, adopted: bool = False, scoring: bool = False
    ) -> None:
        shape = self.shapes[model.name]
        gpus = (0, 0, 0) if scoring else (shape.gpus_per_node, shape.tp, shape.pp)  # a scoring job: no GPU
        journal.write(
            JobSubmitted(
                model=model.name, job_id=job_id, job_name=job_name(self.sweep, model.name, scoring=scoring),
                nodes=shape.nodes if not scoring else 1, gpus_per_node=gpus[0], tp=gpus[1], pp=gpus[2],
                adopted=adopted, scoring=scoring,
            )
        )  # fmt: skip

    def _watch(self, models: list[str]) -> None:
        """Until none of the models' jobs is pending or running: show each change of state or counts."""
        shown: dict[str, str] = {}
        failures = 0
        while True:
            try:
                rows = job_rows(self.out, models)
                failures = 0
            except EndpointError as exc:
                failures += 1
                if failures >= _POLL_FAILURES:
                    raise
                self.console.print(f"note: {exc}; retrying", highlight=False)
                self._stop.wait(self.plan.slurm.poll_interval)
                continue
            for row in rows:
                if shown.get(row.model) != row.line():
                    shown[row.model] = row.line()
                    self.console.print(row.line(), highlight=False, markup=False)
            if not any(row.active for row in rows):
                return
            if self._stop.wait(self.plan.slurm.poll_interval):
                return

    # --- cancel ---

    def cancel(self) -> int:
        journal = Journal(self.out)
        recorded = {
            e.job_id for scoring in (False, True) for evs in submissions(self.out, scoring=scoring).values()
            for e in evs
        }  # fmt: skip
        names = {job_name(self.sweep, m.name, scoring=s) for m in self.models for s in (False, True)}
        queue = slurmcli.queue(self.prefix)
        doomed = [j for j in queue.values() if j.active and (j.job_id in recorded or j.name in names)]
        slurmcli.cancel(j.job_id for j in doomed)
        for job in doomed:
            model = job.name.removeprefix(self.prefix).removesuffix(SCORING_SUFFIX)
            journal.append(model, "job_cancelled", job_id=job.job_id)
            self.console.print(f"{model}: cancelled job {job.job_id} ({job.state})", highlight=False)
        if not doomed:
            self.console.print("no pending or running job of this sweep")
        return 0


def _report(out: Path, model: PlannedModel, row: JobRow, variant: str) -> ModelReport:
    """The summary row of a model whose job ended: what the job wrote, else the job state."""
    result = row.result
    gpus = _granted(out, model.name)
    log = out / "logs" / f"{model.name}.slurm-{row.job_id}.out"
    if result is None:
        stats = model_stats(job_dir(out, model.name), "", variant, ())
        return ModelReport(
            model.name, gpus, model.port, "failed", stats=stats,
            error=f"job {row.job_id} ended ({row.state}) before the model finished; log: {log}; rerun the "
            "plan to resubmit it",
        )  # fmt: skip
    stats = model_stats(job_dir(out, model.name), result.identity, variant, tuple(result.tasks))
    status: Status = cast(Status, result.status) if result.status in STATUSES else "failed"
    error = result.error
    if status == "interrupted":  # the job was stopped (time limit, scancel), not the sweep
        status, error = "incomplete", f"job {row.job_id} stopped ({row.state}); rerun the plan to resubmit it"
    elif not result.scored and status == "done":
        scoring = f"job {row.scoring_id} ({row.scoring_state})" if row.scoring_id else "none submitted"
        status, error = (
            "incomplete",
            (
                f"generated, not scored (scoring job: {scoring}; log: {out / 'logs'}); "
                "rerun the plan to score it"
            ),
        )
    return ModelReport(
        model.name, gpus, model.port, status,
        identity=result.identity, restarts=result.restarts, sent=result.sent, wall_s=result.wall_s,
        error=error, stats=stats, timeline=Timeline(**result.timeline) if result.timeline else None,
    )  # fmt: skip


def _granted(out: Path, model: str) -> list[int]:
    """The GPUs the model's last job ran on (its model_start event)."""
    starts = read(job_dir(out, model), ModelStart)
    return list(starts[-1].gpus) if starts else []
