"""The report's figures as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.report import compare
from pipeline.report.build import BIOMEDICAL, GENERAL, OTHER, Report

_VERDICT_COLOURS = {compare.BETTER: "#1a9850", compare.WORSE: "#d73027"}
_ROLE_STYLE = {
    BIOMEDICAL: {"marker": "^", "color": "#d73027", "label": "biomedical"},
    GENERAL: {"marker": "o", "color": "#2166ac", "label": "general (base)"},
    OTHER: {"marker": "s", "color": "#7f7f7f", "label": "other"},
}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _empty(title: str, message: str) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 2.5))
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return _png(fig)


def forest_plot(paired: pl.DataFrame, title: str, xlabel: str) -> bytes:
    """One row per biomedical-vs-general comparison, grouped by task: difference with its 95% CI."""
    rows = paired.filter(pl.col("n_pairs") > 0).sort(["unit", "biomedical", "variant"], descending=True)
    if rows.is_empty():
        return _empty(title, "No paired comparison: no biomedical model and its base share scored items.")
    height = max(2.5, 0.42 * rows.height + 1.4)
    fig, ax = plt.subplots(figsize=(9, height))
    labels = []
    for y, row in enumerate(rows.iter_rows(named=True)):
        colour = _VERDICT_COLOURS.get(row["verdict"], "#555555")
        ax.errorbar(
            row["mean_diff"],
            y,
            xerr=[[row["mean_diff"] - row["ci_low"]], [row["ci_high"] - row["mean_diff"]]],
            fmt="o",
            color=colour,
            ecolor=colour,
            capsize=3,
        )
        suffix = "" if row["variant"] == "paper" else f" [{row['variant']}]"
        labels.append(f"{row['unit']}: {row['biomedical']} − {row['general']}{suffix}")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(rows.height), labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=v) for v, c in _VERDICT_COLOURS.items()
    ]
    handles.append(Line2D([], [], marker="o", linestyle="", color="#555555", label=compare.NO_DIFFERENCE))
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.5 / height - 0.08),
        ncol=3,
        fontsize=8,
        title="verdict after Holm correction, α = 0.05",
        title_fontsize=8,
    )
    return _png(fig)


def level_scatter(report: Report) -> bytes:
    """Level-1 against Level-2 score per model, as in the paper's figure; arrows go base -> biomedical.
    A level with some paper metrics missing (e.g. BERTScore not installed) is drawn hollow, from the
    metrics present."""
    title = "Level 1 vs Level 2 (points 0-100)"
    board = report.leaderboard().with_columns(
        pl.coalesce("level1", "level1_partial").alias("x"),
        pl.coalesce("level2", "level2_partial").alias("y"),
        (pl.col("level1").is_null() | pl.col("level2").is_null()).alias("partial"),
    )
    both = board.filter(pl.col("x").is_not_null() & pl.col("y").is_not_null())
    if both.is_empty():
        return _empty(
            title, "No model has scores on both levels (each level needs at least one of its tasks)."
        )
    fig, ax = plt.subplots(figsize=(8, 6.5))
    placed: dict[tuple[str, str], tuple[float, float]] = {}
    for role, style in _ROLE_STYLE.items():
        for partial in (False, True):
            subset = both.filter((pl.col("role") == role) & (pl.col("partial") == partial))
            if subset.is_empty():
                continue
            ax.scatter(
                subset["x"],
                subset["y"],
                s=70,
                marker=style["marker"],
                zorder=3,
                linewidths=1.5,
                facecolors="none" if partial else style["color"],
                edgecolors=style["color"],
                label=style["label"] + (" (partial level)" if partial else ""),
            )
            for row in subset.iter_rows(named=True):
                placed[(row["model"], row["variant"])] = (row["x"], row["y"])
                name = row["model"] if row["variant"] == "paper" else f"{row['model']} [{row['variant']}]"
                ax.annotate(name, (row["x"], row["y"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for pair in report.pairs:
        for (model, variant), start in placed.items():
            end = placed.get((pair.biomedical, variant))
            if model == pair.general and end is not None:
                arrow = {"arrowstyle": "->", "color": "#999999", "linestyle": "--"}
                ax.annotate("", xy=end, xytext=start, arrowprops=arrow)
    ax.set_xlim(0, 100)  # the paper's figure uses the whole scale, so distances read as points
    ax.set_ylim(0, 100)
    ax.set_xlabel("Level 1 score (MedNLI, MeQSum, Problem List Summarization)")
    ax.set_ylabel("Level 2 score (LongHealth, MeDiSumQA, MeDiSumCode)")
    left_out = board.height - both.height
    ax.set_title(title + (f" — {left_out} model(s) without both levels not shown" if left_out else ""))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def adherence_vs_score(report: Report) -> bytes:
    """Per model x task: share of strictly valid answers against the task score."""
    title = "Answer-format adherence vs task score"
    scores = (
        report.task_metrics.filter(pl.col("paper_metric"))
        .group_by("model", "variant", "unit")
        .agg(pl.col("mean").mean().alias("score"))
    )
    joined = report.adherence.join(scores, on=["model", "variant", "unit"], how="inner")
    if joined.is_empty():
        return _empty(title, "No task has both strict-validity flags and scores.")
    fig, ax = plt.subplots(figsize=(8, 6))
    units = sorted(set(joined["unit"].to_list()))
    palette = plt.get_cmap("tab10")
    for i, unit in enumerate(units):
        for role, style in _ROLE_STYLE.items():
            subset = joined.filter(
                (pl.col("unit") == unit)
                & (
                    pl.col("model").replace_strict(report.roles, default=OTHER, return_dtype=pl.String)
                    == role
                )
            )
            if subset.is_empty():
                continue
            ax.scatter(
                subset["strict_valid_pct"],
                subset["score"],
                marker=style["marker"],
                color=palette(i % 10),
                s=55,
                edgecolor="black",
                linewidth=0.4,
                zorder=3,
            )
    unit_handles = [
        Line2D([], [], marker="o", linestyle="", color=palette(i % 10), label=u) for i, u in enumerate(units)
    ]
    role_handles = [
        Line2D(
            [], [], marker=s["marker"], linestyle="", color="white", markeredgecolor="black", label=s["label"]
        )
        for s in _ROLE_STYLE.values()
    ]
    ax.legend(handles=unit_handles + role_handles, fontsize=8, loc="best")
    ax.set_xlabel("strictly valid answers (%)")
    ax.set_ylabel("task score (mean of the paper's metrics, 0-100)")
    ax.set_xlim(-3, 103)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(fig)


def all_plots(report: Report) -> dict[str, tuple[str, bytes]]:
    """file stem -> (caption, PNG)."""
    return {
        "forest_scores": (
            "Paired differences, biomedical minus general (task score, points) with 95% paired bootstrap CIs",
            forest_plot(
                report.paired, "Biomedical − general: task score", "difference in points (0-100 scale)"
            ),
        ),
        "forest_format": (
            "Paired differences in strictly valid answers (percentage points) with 95% CIs",
            forest_plot(
                report.format_paired,
                "Biomedical − general: format adherence",
                "difference in strictly valid answers (% points)",
            ),
        ),
        "levels": ("Level-1 vs Level-2 score per model (biomedical ▲, general ●)", level_scatter(report)),
        "format_vs_score": (
            "Format adherence against task score per model and task",
            adherence_vs_score(report),
        ),
    }
