"""Write a report's files into its destination folder and print it to the terminal."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from pipeline.errors import ConfigError
from pipeline.files import private_dir, write_private
from pipeline.report.build import Report
from pipeline.report.samples import collect_samples

FORMATS = ("md", "csv", "html", "parquet", "png")

ITEM_COLUMNS = [
    "model",
    "variant",
    "task",
    "subtask",
    "item_id",
    "repeat",
    "prompt_hash",
    "status",
    "error_class",
    "output",
    "finish_reason",
    "parsed_json",
    "strict_valid",
    "metrics_json",
    "latency_s",
    "prompt_tokens",
    "completion_tokens",
    "attempts",
    "run_id",
    "store",
]


def parse_formats(text: str) -> tuple[str, ...]:
    chosen = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ConfigError(
            f"--format {text!r}: unknown format(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(FORMATS)}"
        )
    return chosen


def check_samples(formats: Iterable[str], samples: bool) -> None:
    """``--samples`` needs the HTML report: the viewer is part of it."""
    chosen = list(formats)
    if samples and "html" not in chosen:
        raise ConfigError(
            f"--samples: the sample viewer is part of report.html, but --format {','.join(chosen)} has no "
            "html; add html to --format"
        )


def item_table(report: Report) -> pl.DataFrame:
    """Per-item records: raw output, parsed answer, validity, metrics, latency, tokens (failed rows too)."""
    return report.items.select(ITEM_COLUMNS).with_columns(pl.col("strict_valid").cast(pl.Boolean))


def write_report(
    report: Report,
    dest: Path,
    formats: Iterable[str],
    *,
    samples: bool = False,
    data_dir: Path | None = None,
) -> dict[str, Path]:
    """Write the chosen formats into ``dest``; returns kind -> path (``html`` is the report to open).
    ``samples`` adds the per-sample viewer to report.html (``data_dir``: where its prompts' data is)."""
    from pipeline.report import html, plots, tables

    chosen = set(formats)
    check_samples(chosen, samples)
    private_dir(dest)
    written: dict[str, Path] = {}
    if "md" in chosen:
        written["md"] = write_private(dest / "report.md", tables.report_markdown(report))
    if "csv" in chosen:
        for stem, (_, frame) in tables.named_tables(report).items():
            written[f"csv:{stem}"] = write_private(dest / f"{stem}.csv", tables.to_csv(frame))
    if "parquet" in chosen:
        buffer = io.BytesIO()
        item_table(report).write_parquet(buffer)
        written["parquet"] = write_private(dest / "items.parquet", buffer.getvalue())
    if chosen & {"png", "html"}:
        figures = plots.all_plots(report)
        if "png" in chosen:
            for stem, (_, png) in figures.items():
                written[f"png:{stem}"] = write_private(dest / f"{stem}.png", png)
        if "html" in chosen:
            viewer = collect_samples(report, data_dir) if samples else None
            page = html.render_html(report, figures, viewer)
            written["html"] = write_private(dest / "report.html", page)
    return written
