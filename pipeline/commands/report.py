"""`medsweep report`: tables, paired statistics, plots and an HTML report from one or more stores."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="aggregate scores, compare biomedical models with their base (Markdown/CSV/HTML/Parquet/PNG)",
        description="Read the store(s) of eval runs and report per-task metrics with 95% bootstrap CIs, "
        "Level-1/Level-2 scores and paired biomedical-vs-general comparisons.",
    )
    parser.add_argument(
        "--out",
        action="append",
        type=Path,
        required=True,
        metavar="DIR",
        help="an eval run folder (holds medsweep.sqlite) or a folder of such; repeat for several",
    )
    parser.add_argument(
        "--format",
        default="md,csv,html,parquet,png",
        metavar="LIST",
        help="comma-separated outputs among md,csv,html,parquet,png (default: all)",
    )
    parser.add_argument(
        "--dest", type=Path, metavar="DIR", help="where to write (default: <first --out>/report)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of bootstrap and permutation draws (default 0)"
    )
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="BIO=GENERAL",
        help="compare BIO with GENERAL (for models not in servers/); repeatable",
    )
    parser.add_argument(
        "--allow-mixed",
        action="store_true",
        help="compare runs made with different prompts or sampling (noted in the report)",
    )
    parser.add_argument(
        "--samples",
        action="store_true",
        help="add the per-sample paired viewer to report.html: both models' outputs, references and prompts "
        "(they can hold patient text)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="with --samples: the datasets the prompts are rendered from (default: each run's own)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.report import build_report, write_report
    from pipeline.report.output import check_samples, parse_formats
    from pipeline.report.tables import print_terminal

    formats = parse_formats(args.format)
    check_samples(formats, args.samples)
    report = build_report(args.out, pair_flags=args.pair, seed=args.seed, allow_mixed=args.allow_mixed)
    dest: Path = args.dest or args.out[0] / "report"
    written = write_report(report, dest, formats, samples=args.samples, data_dir=args.data_dir)
    console = Console()
    print_terminal(report, console)
    print(f"Report files: {dest} ({len(written)} file(s))")
    if "html" in written:
        print(f"HTML report: {written['html'].resolve()}")
    return 0
