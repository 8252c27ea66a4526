"""The jobs of a sweep on Slurm as `medsweep sweep` and `medsweep status` list them: read only.

What the submitting sweep journaled (``job_submitted``), what each job wrote in its folder (its journal's
``model_done``, its store's counts) and what Slurm says of the job now. Nothing here submits, starts or
writes anything, and nothing imports a plan, an engine or the sweep's runner: `medsweep status` reads this.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, EndpointError, MedsweepError
from pipeline.store.database import Store, db_path
from pipeline.store.layout import job_dir
from pipeline.sweep.journal import JOURNAL_NAME, JobSubmitted, Journal, ModelDone, R
from pipeline.sweep.slurm import slurmcli
from pipeline.sweep.slurm.slurmcli import ENDED, JobInfo

JOB_PREFIX = "medsweep"  # every job name of medsweep: medsweep-<sweep>-<model>


@dataclass
class JobRow:
    """One model's job as `medsweep sweep` and `medsweep status` show it."""

    model: str
    job_id: str = ""
    state: str = "not submitted"
    where: str = ""  # squeue's node list or pending reason
    submissions: int = 0
    succeeded: int = 0
    total: int = 0
    failed: int = 0
    result: ModelDone | None = None  # the job's last model_done event, if any
    scoring_id: str = ""  # the latest scoring job (CPU only, after the GPU job), if any
    scoring_state: str = ""
    scoring_where: str = ""

    def line(self) -> str:
        job = f"job {self.job_id} " if self.job_id else ""
        where = f" ({self.where})" if self.where else ""
        counts = f", {self.succeeded}/{self.total} requests done" if self.total else ""
        failed = f", {self.failed} failed" if self.failed else ""
        scoring = ""
        if self.scoring_id:
            at = f" ({self.scoring_where})" if self.scoring_where else ""
            scoring = f"; scoring job {self.scoring_id} {self.scoring_state}{at}"
        return f"{self.model}: {job}{self.state}{where}{counts}{failed}{scoring}"

    @property
    def active(self) -> bool:
        """Its GPU job or its scoring job is pending or running (as far as Slurm says)."""
        return any(s and s not in ENDED | {"ENDED", "GONE"} for s in (self.state, self.scoring_state))

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "job_id": self.job_id, "state": self.state, "where": self.where,
            "submissions": self.submissions, "succeeded": self.succeeded, "total": self.total,
            "failed": self.failed, "status": self.result.status if self.result else None,
            "scored": self.result.scored if self.result else None, "scoring_job_id": self.scoring_id,
            "scoring_state": self.scoring_state,
        }  # fmt: skip


def read(folder: Path, kind: type[R]) -> list[R]:
    """The ``kind`` events of the journal of ``folder`` (the sweep's, or a job's), read only: nothing is
    created."""
    return Journal(folder).read(kind) if (folder / JOURNAL_NAME).is_file() else []


def submissions(out: Path, *, scoring: bool = False) -> dict[str, list[JobSubmitted]]:
    """model -> its ``job_submitted`` events in the sweep's journal, oldest first: its GPU jobs, or
    (``scoring``) its scoring jobs."""
    subs: dict[str, list[JobSubmitted]] = {}
    for event in read(out, JobSubmitted):
        if event.scoring == scoring:
            subs.setdefault(event.model, []).append(event)
    return subs


def job_result(out: Path, model: str, since: float) -> ModelDone | None:
    """The last ``model_done`` event the model's job wrote at or after ``since`` (None: none)."""
    done = [e for e in read(job_dir(out, model), ModelDone) if e.t >= since]
    return done[-1] if done else None


def store_counts(out: Path, model: str) -> tuple[int, int, int]:
    """(succeeded, total, failed) in the model's job store; zeros before its first commit."""
    folder = job_dir(out, model)
    if not db_path(folder).is_file():
        return 0, 0, 0
    try:
        store = Store.open_readonly(folder)
        try:
            counts = store.counts()
        finally:
            store.close()
    except (MedsweepError, sqlite3.Error):  # the job is creating its store right now: nothing to count yet
        return 0, 0, 0
    return (
        sum(c.succeeded for c in counts.values()),
        sum(c.total for c in counts.values()),
        sum(c.failed for c in counts.values()),
    )


def job_rows(out: Path, models: list[str] | None = None) -> list[JobRow]:
    """Per model: its latest job's state (squeue, else sacct, else what the job wrote) and the request
    counts of its store. Reads the journal and stores only; safe while jobs run."""
    subs = submissions(out)
    scoring = submissions(out, scoring=True)
    names = models if models is not None else list(subs)
    latest = {m: subs[m][-1] for m in names if m in subs}
    latest_scoring = {m: scoring[m][-1] for m in names if m in scoring}
    queue: dict[str, JobInfo] = {}
    if latest:
        try:
            queue = slurmcli.queue(f"{JOB_PREFIX}-")
        except (ConfigError, EndpointError):  # not on a Slurm host, or slurmctld down: what the jobs wrote
            queue = {}
    ids = [e.job_id for e in (*latest.values(), *latest_scoring.values())]
    accounted = slurmcli.accounting(j for j in ids if j not in queue)

    def state(job_id: str, result: ModelDone | None) -> tuple[str, str]:
        info = queue.get(job_id)
        if info is not None:
            return info.state, info.reason or info.nodes
        return accounted.get(job_id) or ("ENDED" if result else "GONE"), ""

    rows = []
    for model in names:
        row = JobRow(model)
        event = latest.get(model)
        if event is not None:
            row.job_id, row.submissions = event.job_id, len(subs[model])
            row.result = job_result(out, model, event.t)
            row.state, row.where = state(row.job_id, row.result)
        scorer = latest_scoring.get(model)
        if scorer is not None:
            done = row.result is not None and row.result.scored and row.result.t >= scorer.t
            row.scoring_id = scorer.job_id
            row.scoring_state, row.scoring_where = state(scorer.job_id, row.result if done else None)
        row.succeeded, row.total, row.failed = store_counts(out, model)
        rows.append(row)
    return rows
