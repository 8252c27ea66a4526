"""`medsweep status`: progress of the runs in a results directory, readable while an eval writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from pipeline.paths import RESULTS_DIR


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="per model and task: done, failed, pending")
    p.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help=f"results directory (default: {RESULTS_DIR})"
    )
    p.add_argument("--json", action="store_true", help="one JSON object (totals at the top level)")
    p.set_defaults(handler=_run)


def status_report(out: Path) -> dict[str, Any]:
    """Counts of every store of ``out`` (pipeline/store/layout.py) and, for a sweep on Slurm, its jobs."""
    from pipeline.store.database import Counts, Store
    from pipeline.store.layout import store_dirs
    from pipeline.sweep.slurm.jobs import job_rows

    jobs = [row.as_json() for row in job_rows(out)]
    folders = store_dirs(out)
    if not folders and not jobs:
        folders = [out]  # no store at all: the store's own error says so
    counts: dict[tuple[str, str, str], Counts] = {}
    totals = Counts(0, 0, 0, {})
    for folder in folders:
        store = Store.open_readonly(folder)
        try:
            of_store = store.counts()
            counts.update(of_store)  # one model per job store: no key is in two stores
            for c in of_store.values():
                totals = totals.plus(c)
        finally:
            store.close()
    rows = []
    for (model, variant, task), c in counts.items():
        rows.append(
            {
                "model": model, "variant": variant, "task": task, "total": c.total,
                "succeeded": c.succeeded, "no_answer": c.no_answer, "failed": c.failed,
                "failed_by_class": c.failed_by_class, "pending": c.pending,
            }
        )  # fmt: skip
    return {
        "out": str(out),
        "total": totals.total,
        "succeeded": totals.succeeded,
        "no_answer": totals.no_answer,
        "failed": totals.failed,
        "pending": sum(r["pending"] for r in rows),
        "failed_by_class": totals.failed_by_class,
        "tasks": rows,
        **({"jobs": jobs} if jobs else {}),
    }


def _run(args: argparse.Namespace) -> int:
    report = status_report(args.out)
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    if report.get("jobs"):
        jobs = Table(title=f"Slurm jobs of {args.out}", title_justify="left")
        for col in ("model", "job", "state", "where", "submissions", "ok/total", "result"):
            jobs.add_column(col, justify="right" if col in ("submissions", "ok/total") else "left")
        for j in report["jobs"]:
            jobs.add_row(j["model"], j["job_id"], j["state"], j["where"], str(j["submissions"]),
                         f"{j['succeeded']}/{j['total']}", j["status"] or "")  # fmt: skip
        Console().print(jobs)
    table = Table(title=f"status of {args.out}", title_justify="left")
    for col in ("model", "variant", "task", "total", "succeeded", "no answer", "failed", "pending"):
        table.add_column(col, justify="left" if col in ("model", "variant", "task") else "right")
    for r in report["tasks"]:
        failed = str(r["failed"])
        if r["failed_by_class"]:
            failed += " (" + ", ".join(f"{k} {v}" for k, v in sorted(r["failed_by_class"].items())) + ")"
        table.add_row(r["model"], r["variant"], r["task"], str(r["total"]), str(r["succeeded"]),
                      str(r["no_answer"]), failed, str(r["pending"]))  # fmt: skip
    table.add_row("all", "", "", str(report["total"]), str(report["succeeded"]), str(report["no_answer"]),
                  str(report["failed"]), str(report["pending"]), style="bold")  # fmt: skip
    Console().print(table)
    return 0
