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
from pipeline.sweep.slurm.slurmcli import JobInfo

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

    def line(self) -> str:
        job = f"job {self.job_id} " if self.job_id else ""
        where = f" ({self.where})" if self.where else ""
        counts = f", {self.succeeded}/{self.total} requests done" if self.total else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.model}: {job}{self.state}{where}{counts}{failed}"

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "job_id": self.job_id, "state": self.state, "where": self.where,
            "submissions": self.submissions, "succeeded": self.succeeded, "total": self.total,
            "failed": self.failed, "status": self.result.status if self.result else None,
        }  # fmt: skip


def read(folder: Path, kind: type[R]) -> list[R]:
    """The ``kind`` events of the journal of ``folder`` (the sweep's, or a job's), read only: nothing is
    created."""
    return Journal(folder).read(kind) if (folder / JOURNAL_NAME).is_file() else []


def submissions(out: Path) -> dict[str, list[JobSubmitted]]:
    """model -> its ``job_submitted`` events in the sweep's journal, oldest first."""
    subs: dict[str, list[JobSubmitted]] = {}
    for event in read(out, JobSubmitted):
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
    names = models if models is not None else list(subs)
    latest = {m: subs[m][-1] for m in names if m in subs}
    queue: dict[str, JobInfo] = {}
    if latest:
        try:
            queue = slurmcli.queue(f"{JOB_PREFIX}-")
        except (ConfigError, EndpointError):  # not on a Slurm host, or slurmctld down: what the jobs wrote
            queue = {}
    missing = [e.job_id for e in latest.values() if e.job_id not in queue]
    accounted = slurmcli.accounting(missing)
    rows = []
    for model in names:
        row = JobRow(model)
        event = latest.get(model)
        if event is not None:
            row.job_id, row.submissions = event.job_id, len(subs[model])
            row.result = job_result(out, model, event.t)
            info = queue.get(row.job_id)
            if info is not None:
                row.state, row.where = info.state, info.reason or info.nodes
            elif row.job_id in accounted:
                row.state = accounted[row.job_id]
            else:
                row.state = "ENDED" if row.result else "GONE"
        row.succeeded, row.total, row.failed = store_counts(out, model)
        rows.append(row)
    return rows
