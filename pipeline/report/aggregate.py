"""Per model x task metrics with bootstrap CIs, Level-1/Level-2 scores, leaderboard, failure counts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson
import polars as pl

from pipeline.report import spec
from pipeline.report.load import ITEM_KEY
from pipeline.report.stats import Interval, cluster_bootstrap_ci, seeded_rng

SYSTEM = ("model", "variant")
UNIT = ("task", "subtask")


def unit_label(task: str, subtask: str) -> str:
    """``mednli`` or ``longhealth/task1``: the level at which metrics are reported and compared."""
    return f"{task}/{subtask}" if subtask else task


class ItemBootstrap(NamedTuple):
    """Per-item totals (in ``item_id`` order) and the item-clustered bootstrap CI of their mean."""

    sums: npt.NDArray[Any]
    counts: npt.NDArray[Any]
    ci: Interval


def item_bootstrap(frame: pl.DataFrame, value: pl.Expr, rng: np.random.Generator) -> ItemBootstrap:
    """Sum ``value`` and count rows per ``item_id``, then bootstrap the mean clustered by item.

    Items are sorted by ``item_id``: a fixed item order, so the seeded resamples pick the same items
    every time."""
    per_item = frame.group_by("item_id").agg(value.sum().alias("s"), pl.len().alias("n")).sort("item_id")
    sums, counts = per_item["s"].to_numpy(), per_item["n"].to_numpy()
    return ItemBootstrap(sums, counts, cluster_bootstrap_ci(sums, counts, rng))


def metric_long(items: pl.DataFrame) -> pl.DataFrame:
    """One row per (scored item, metric): model, variant, task, subtask, item_id, repeat, metric, value."""
    scored = items.filter(pl.col("scored") & pl.col("metrics_json").is_not_null())
    columns: dict[str, list[object]] = defaultdict(list)
    for row in scored.select([*ITEM_KEY, "metrics_json"]).iter_rows(named=True):
        metrics = orjson.loads(row["metrics_json"])
        for name, value in metrics.items():
            if value is None or not isinstance(value, int | float):
                continue  # a metric that could not be computed for this item is absent, never 0
            for key in ITEM_KEY:
                columns[key].append(row[key])
            columns["metric"].append(name)
            columns["value"].append(float(value))
    schema = {
        "model": pl.String,
        "variant": pl.String,
        "task": pl.String,
        "subtask": pl.String,
        "item_id": pl.String,
        "repeat": pl.Int64,
        "metric": pl.String,
        "value": pl.Float64,
    }
    return pl.DataFrame({name: columns.get(name, []) for name in schema}, schema=schema)


def task_metric_table(long: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Mean of each metric per model x variant x task unit, with a 95% CI clustered by item."""
    rows: list[dict[str, object]] = []
    groups = long.group_by([*SYSTEM, *UNIT, "metric"], maintain_order=True)
    for (model, variant, task, subtask, metric), frame in groups:
        rng = seeded_rng(seed, "metric", str(model), str(variant), str(task), str(subtask), str(metric))
        sums, counts, ci = item_bootstrap(frame, pl.col("value"), rng)
        reported = spec.item_metrics(str(task))
        rows.append(
            {
                "model": model,
                "variant": variant,
                "task": task,
                "subtask": subtask,
                "unit": unit_label(str(task), str(subtask)),
                "metric": metric,
                "paper_metric": reported is None or metric in reported,
                "n_items": len(sums),
                "n_values": int(counts.sum()),
                "mean": float(sums.sum() / counts.sum()),
                "ci_low": ci.low,
                "ci_high": ci.high,
            }
        )
    schema = {
        "model": pl.String,
        "variant": pl.String,
        "task": pl.String,
        "subtask": pl.String,
        "unit": pl.String,
        "metric": pl.String,
        "paper_metric": pl.Boolean,
        "n_items": pl.Int64,
        "n_values": pl.Int64,
        "mean": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").sort([*SYSTEM, *UNIT, "metric"])


def used_metrics(task: str, available: set[str]) -> tuple[list[str], list[str]]:
    """(used, missing): the paper's metrics for ``task`` found in ``available``, and those not found.
    A task the registry does not know uses every metric it has but those declared lower-is-better (a mean
    of both directions would mean nothing)."""
    reported = spec.item_metrics(task)
    if reported is None:
        return sorted(m for m in available if spec.higher_is_better(m)), []
    return [m for m in reported if m in available], [m for m in reported if m not in available]


def level_table(metrics: pl.DataFrame) -> pl.DataFrame:
    """Level-1 / Level-2 per model x variant (``pipeline.scoring.level_scores``): complete levels, partial
    means over the metrics present, each task's mean of its paper metrics, what was used and missing."""
    rows: list[dict[str, object]] = []
    for (model, variant), frame in metrics.group_by(list(SYSTEM), maintain_order=True):
        task_metrics: dict[str, dict[str, float]] = {}
        for (task, subtask, metric), mean in zip(
            frame.select("task", "subtask", "metric").iter_rows(), frame["mean"].to_list(), strict=True
        ):
            reported = spec.item_metrics(task)
            if reported is None or metric in reported:
                task_metrics.setdefault(task, {})[spec.level_key(subtask, metric)] = mean
        levels = spec.level_scores(task_metrics)
        missing = list(levels.missing)
        for level in spec.LEVELS:
            absent = [t for t in spec.level_tasks(level) if t not in task_metrics]
            if absent:
                missing.append(f"Level {level} lacks task(s) {', '.join(absent)}")
        rows.append(
            {
                "model": model,
                "variant": variant,
                "level1": levels.level1,
                "level2": levels.level2,
                "level1_partial": levels.level1_partial,
                "level2_partial": levels.level2_partial,
                **{f"task:{t}": sum(v.values()) / len(v) for t, v in sorted(task_metrics.items())},
                "metrics_used": "; ".join(
                    f"{t}: {', '.join(names)}" for t, names in sorted(levels.used.items())
                ),
                "missing": "; ".join(missing),
            }
        )
    level_cols = ["level1", "level2", "level1_partial", "level2_partial"]
    if not rows:
        return pl.DataFrame(
            schema={
                "model": pl.String,
                "variant": pl.String,
                **dict.fromkeys(level_cols, pl.Float64),
                "metrics_used": pl.String,
                "missing": pl.String,
            }
        )
    frame = pl.DataFrame(rows, infer_schema_length=None)
    task_cols = sorted(c for c in frame.columns if c.startswith("task:"))
    ordered = ["model", "variant", *level_cols, *task_cols, "metrics_used", "missing"]
    return frame.select(ordered).with_columns(pl.col(level_cols).cast(pl.Float64))


def adherence_table(items: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Share of outputs the strict (paper) parser accepted, per model x variant x task unit, in %."""
    rows: list[dict[str, object]] = []
    valid = items.filter(pl.col("scored") & pl.col("strict_valid").is_not_null())
    for (model, variant, task, subtask), frame in valid.group_by([*SYSTEM, *UNIT], maintain_order=True):
        sums, counts, ci = item_bootstrap(
            frame,
            pl.col("strict_valid").cast(pl.Float64) * 100,
            seeded_rng(seed, "valid", str(model), str(variant), str(task), str(subtask)),
        )
        rows.append(
            {
                "model": model,
                "variant": variant,
                "unit": unit_label(str(task), str(subtask)),
                "n": int(counts.sum()),
                "strict_valid_pct": float(sums.sum() / counts.sum()),
                "ci_low": ci.low,
                "ci_high": ci.high,
            }
        )
    schema = {
        "model": pl.String,
        "variant": pl.String,
        "unit": pl.String,
        "n": pl.Int64,
        "strict_valid_pct": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").sort(["model", "variant", "unit"])


TRACE_SCHEMA: dict[str, type[pl.DataType]] = {
    "model": pl.String, "variant": pl.String, "unit": pl.String, "n": pl.Int64,
    "no_answer_pct": pl.Float64, "reasoning_tokens_p50": pl.Float64, "reasoning_tokens_p95": pl.Float64,
}  # fmt: skip


def trace_table(items: pl.DataFrame) -> pl.DataFrame:
    """Per model x variant x task unit with reasoning traces: the share of no-answers among the succeeded
    results and the traces' median and 95th-percentile length (``pipeline.scoring.traces``)."""
    from pipeline.report.load import no_answer
    from pipeline.scoring.traces import NO_ANSWER, TRACE_P50, TRACE_P95, TraceTally

    rows: list[dict[str, object]] = []
    done = items.filter(pl.col("status") == "succeeded").with_columns(no_answer().alias("no_answer"))
    for (model, variant, task, subtask), frame in done.group_by([*SYSTEM, *UNIT], maintain_order=True):
        tally = TraceTally()
        for traced, cut, tokens in zip(
            frame["reasoning"].is_not_null().to_list(),
            frame["no_answer"].to_list(),
            frame["reasoning_tokens"].to_list(),
            strict=True,
        ):
            tally.add(traced, bool(cut), tokens)
        stats = tally.stats()
        if stats:
            rows.append(
                {
                    "model": model, "variant": variant, "unit": unit_label(str(task), str(subtask)),
                    "n": frame.height, "no_answer_pct": stats[NO_ANSWER],
                    "reasoning_tokens_p50": stats.get(TRACE_P50),
                    "reasoning_tokens_p95": stats.get(TRACE_P95),
                }
            )  # fmt: skip
    return pl.DataFrame(rows, schema=TRACE_SCHEMA, orient="row").sort(["model", "variant", "unit"])


def failure_table(items: pl.DataFrame) -> pl.DataFrame:
    """Per model x variant x task unit: results, failed (excluded, not scored as wrong), by error class,
    and succeeded results that have no score yet (``medsweep score`` not run)."""
    labelled = items.with_columns(
        pl.struct("task", "subtask")
        .map_elements(lambda s: unit_label(s["task"], s["subtask"]), return_dtype=pl.String)
        .alias("unit")
    )
    base = labelled.group_by(["model", "variant", "unit"]).agg(
        pl.len().alias("results"),
        (pl.col("status") == "succeeded").sum().alias("succeeded"),
        (pl.col("status") == "failed").sum().alias("failed"),
        ((pl.col("status") == "succeeded") & ~pl.col("scored")).sum().alias("unscored"),
    )
    classes = (
        labelled.filter(pl.col("status") == "failed")
        .group_by(["model", "variant", "unit", "error_class"])
        .agg(pl.len().alias("n"))
        .sort(["n", "error_class"], descending=[True, False])
        .group_by(["model", "variant", "unit"], maintain_order=True)
        .agg(
            pl.format("{}: {}", pl.col("error_class").fill_null("unknown"), pl.col("n"))
            .str.join(", ")
            .alias("failed_by_class")
        )
    )
    return (
        base.join(classes, on=["model", "variant", "unit"], how="left")
        .with_columns(pl.col("failed_by_class").fill_null(""))
        .sort(["model", "variant", "unit"])
    )
