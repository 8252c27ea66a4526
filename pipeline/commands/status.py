"""`medsweep status`: progress of the runs in a results directory, readable while an eval writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="per model and task: done, failed, pending")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory (default: results)")
    p.add_argument("--json", action="store_true", help="one JSON object (totals at the top level)")
    p.set_defaults(handler=_run)


def status_report(out: Path) -> dict[str, Any]:
    from pipeline.store import Store

    store = Store.open_readonly(out)
    try:
        counts, totals = store.counts(), store.tally()
    finally:
        store.close()
    rows = []
    for (model, variant, task), c in counts.items():
        rows.append(
            {
                "model": model, "variant": variant, "task": task, "total": c.total,
                "succeeded": c.succeeded, "failed": c.failed, "failed_by_class": c.failed_by_class,
                "pending": c.pending,
            }
        )  # fmt: skip
    return {
        "out": str(out),
        "total": totals.total,
        "succeeded": totals.succeeded,
        "failed": totals.failed,
        "pending": sum(r["pending"] for r in rows),
        "failed_by_class": totals.failed_by_class,
        "tasks": rows,
    }


def _run(args: argparse.Namespace) -> int:
    report = status_report(args.out)
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"status of {args.out}", title_justify="left")
    for col in ("model", "variant", "task", "total", "succeeded", "failed", "pending"):
        table.add_column(
            col, justify="right" if col in ("total", "succeeded", "failed", "pending") else "left"
        )
    for r in report["tasks"]:
        failed = str(r["failed"])
        if r["failed_by_class"]:
            failed += " (" + ", ".join(f"{k} {v}" for k, v in sorted(r["failed_by_class"].items())) + ")"
        table.add_row(r["model"], r["variant"], r["task"], str(r["total"]), str(r["succeeded"]), failed,
                      str(r["pending"]))  # fmt: skip
    table.add_row("all", "", "", str(report["total"]), str(report["succeeded"]), str(report["failed"]),
                  str(report["pending"]), style="bold")  # fmt: skip
    Console().print(table)
    return 0
