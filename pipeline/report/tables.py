"""The report's tables as Markdown, CSV and rich terminal tables."""

from __future__ import annotations

import io
import math
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from pipeline.datasets.clue_v3 import LABEL
from pipeline.report import published
from pipeline.report.build import Report

_P_COLUMNS = {"p_value", "p_holm"}


def cell(column: str, value: Any) -> str:
    """A value as shown to a person: 2 decimals, p-values with 3 significant digits, empty for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if column in _P_COLUMNS else f"{value:.2f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def named_tables(report: Report) -> dict[str, tuple[str, pl.DataFrame]]:
    """file stem -> (title, table), in the order a reader wants them."""
    return {
        "leaderboard": ("Leaderboard (Level scores, points 0-100)", report.leaderboard()),
        "published": (
            f"The paper's numbers beside this run's ({LABEL.split(' (')[0]}, published figures in %; bound: "
            "what data version, item count and sampling can explain, docs/reports.md)",
            report.published,
        ),
        "paired": ("Biomedical vs general: task scores", report.paired),
        "format_paired": (
            "Biomedical vs general: answer-format adherence (strict_valid, % points)",
            report.format_paired,
        ),
        "knowledge": (
            "Knowledge or format: strict, lenient and log-likelihood accuracy on the same items; "
            "format_gap = loglik - strict, with its 95% bootstrap CI",
            report.knowledge,
        ),
        "knowledge_paired": (
            "Biomedical vs general: strict, lenient and log-likelihood accuracy and the format gap",
            report.knowledge_paired,
        ),
        "recheck": (
            "Determinism: items re-sent after the run (eval --recheck N) whose raw output and parsed answer "
            "agreed, %",
            report.recheck,
        ),
        "task_metrics": ("Per model x task metrics with 95% bootstrap CIs", report.task_metrics),
        "levels": (
            "Level composition: metrics used and missing",
            report.levels.select(
                "model",
                "variant",
                "level1",
                "level2",
                "level1_partial",
                "level2_partial",
                "metrics_used",
                "missing",
            ),
        ),
        "adherence": ("Answer-format adherence per model x task (% strict-valid)", report.adherence),
        "failures": (
            "Requests per model x task: failed ones are excluded, not scored as wrong",
            report.failures,
        ),
        # Only for reasoning models: the no-answers are scored as wrong; this says how many there were.
        **(
            {"traces": ("Reasoning: no-answers (% of answers) and trace lengths (tokens)", report.traces)}
            if not report.traces.is_empty()
            else {}
        ),
    }


def to_markdown(title: str, frame: pl.DataFrame) -> str:
    lines = [f"## {title}", ""]
    if frame.is_empty():
        return "\n".join([*lines, "_(none)_", ""])
    lines.append("| " + " | ".join(frame.columns) + " |")
    lines.append("|" + "---|" * frame.width)
    for row in frame.iter_rows(named=True):
        lines.append("| " + " | ".join(cell(c, v).replace("|", "\\|") for c, v in row.items()) + " |")
    return "\n".join([*lines, ""])


def report_markdown(report: Report) -> str:
    parts = ["# medsweep report", "", "## Summary", ""]
    parts += [f"- {line}" for line in report.summary]
    parts.append("")
    for title, frame in named_tables(report).values():
        parts.append(to_markdown(title, frame))
    if report.notes:
        parts += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    parts += [
        "## Stores",
        "",
        *[f"- {s}" for s in report.stores],
        "",
        f"Bootstrap/permutation seed: {report.seed}",
        "",
    ]
    return "\n".join(parts)


def to_csv(frame: pl.DataFrame) -> str:
    buffer = io.StringIO()
    frame.write_csv(buffer)
    return buffer.getvalue()


def print_terminal(report: Report, console: Console) -> None:
    """What a person reads first, narrow enough for 80 columns: leaderboard, comparisons, failures."""
    board = report.leaderboard().select(
        "model",
        "role",
        pl.coalesce("level1", "level1_partial").alias("L1"),
        pl.coalesce("level2", "level2_partial").alias("L2"),
        (pl.col("level1").is_null() | pl.col("level2").is_null()).alias("partial"),
        "failed",
    )
    console.print(_rich("Leaderboard (0-100; partial = some paper metrics or tasks missing)", board))
    glance = report.published.filter(pl.col("metric").is_in([published.TASK_MEAN, "level1", "level2"]))
    if not glance.is_empty():
        view = glance.select(
            pl.col("site_label").alias("model (paper's name)"),
            pl.when(pl.col("variant") == published.PAPER_VARIANT)
            .then(pl.col("unit"))
            .otherwise(pl.format("{} ({})", "unit", "variant"))
            .alias("unit"),
            pl.col("published").round(2),
            pl.col("run").round(2),
            pl.col("diff").round(2),
            pl.col("bound").round(2).alias("±bound"),
            "verdict",
        )
        console.print(
            _rich("The paper's numbers beside this run's (task means of the paper's metrics, Levels)", view)
        )
    if not report.knowledge.is_empty():
        view = report.knowledge.select(
            "model",
            "unit",
            "n",
            *(pl.col(c).round(1) for c in ("strict", "lenient", "loglik", "format_gap")),
            pl.format("[{}, {}]", pl.col("gap_ci_low").round(1), pl.col("gap_ci_high").round(1)).alias(
                "gap CI"
            ),
        )
        console.print(_rich("Knowledge or format: accuracy (0-100); format_gap = loglik − strict", view))
    if not report.recheck.is_empty():
        console.print(_rich("Determinism: re-sent items that agreed (eval --recheck), %", report.recheck))
    for title, frame in (
        ("Biomedical − general: task score", report.paired),
        ("Biomedical − general: format adherence", report.format_paired),
        (
            "Biomedical − general: knowledge (loglik) and format (strict, lenient, gap)",
            report.knowledge_paired,
        ),
    ):
        if frame.is_empty():
            continue
        view = frame.select(
            pl.format("{} − {}", "biomedical", "general").alias("pair"),
            pl.format("{} ({})", "unit", "metrics").alias("unit")
            if frame is report.knowledge_paired
            else "unit",
            "n_pairs",
            pl.col("mean_diff").round(2).alias("diff"),
            pl.format("[{}, {}]", pl.col("ci_low").round(2), pl.col("ci_high").round(2)).alias("95% CI"),
            "p_holm",
            pl.format("{}/{}/{}", "wins", "ties", "losses").alias("w/t/l"),
            "verdict",
        )
        console.print(_rich(title, view))
    failures = report.failures.filter((pl.col("failed") > 0) | (pl.col("unscored") > 0))
    if not failures.is_empty():
        console.print(
            _rich(
                "Failed (excluded, not scored as wrong) and unscored requests",
                failures.drop("variant", "succeeded"),
            )
        )
    for line in report.summary:
        console.print(f"• {line}", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)


def _rich(title: str, frame: pl.DataFrame) -> Table:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(column, overflow="fold")
    for row in frame.iter_rows(named=True):
        style = {"better": "green", "worse": "red", "reproduces": "green", "differs": "red"}.get(
            str(row.get("verdict")), ""
        )
        table.add_row(*[cell(c, v) for c, v in row.items()], style=style)
    return table
