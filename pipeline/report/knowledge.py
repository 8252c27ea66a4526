"""Knowledge or format: the paper variant's strict and lenient accuracy beside ``--variant loglik``'s.

A model that knows the answer but breaks the answer format scores low on strict accuracy and high on
log-likelihood accuracy; the **format gap** (log-likelihood − strict accuracy, in points, on the same items)
says how much of its score the format cost. Per pair, the paired difference (biomedical − general) of each of
the three measures, and of the gap, with its item-clustered bootstrap CI and McNemar's test (the gap: a
sign-flip test), from ``pipeline.report.compare``: a reader sees whether a fine-tune lost knowledge or
lost the format.
"""

from __future__ import annotations

import polars as pl

from pipeline.report.aggregate import item_bootstrap, unit_label
from pipeline.report.compare import ALPHA, BETTER, WORSE, compare_pair, finish_comparisons
from pipeline.report.pairs import Pair
from pipeline.report.stats import seeded_rng
from pipeline.scoring.option_logprobs import ACCURACY as LOGLIK_ACCURACY

MEASURES: dict[str, tuple[str, str]] = {
    "strict": ("paper", "accuracy"),
    "lenient": ("paper", "accuracy_lenient"),
    "loglik": ("loglik", LOGLIK_ACCURACY),
}
"""Each measure: the variant and the per-item metric it is the mean of."""
GAP = "format_gap"
LARGER_GAP, SMALLER_GAP = "larger format gap", "smaller format gap"  # the gap's verdicts (biomedical's)

SCHEMA: dict[str, type[pl.DataType]] = {
    "model": pl.String,
    "unit": pl.String,
    "n": pl.Int64,
    "strict": pl.Float64,
    "lenient": pl.Float64,
    "loglik": pl.Float64,
    GAP: pl.Float64,
    "gap_ci_low": pl.Float64,
    "gap_ci_high": pl.Float64,
}


def _values(long: pl.DataFrame, model: str, task: str, subtask: str) -> pl.DataFrame | None:
    """item_id, repeat and one column per measure, on the items every measure scored (None: no loglik)."""
    joined: pl.DataFrame | None = None
    for name, (variant, metric) in MEASURES.items():
        frame = long.filter(
            (pl.col("model") == model)
            & (pl.col("variant") == variant)
            & (pl.col("task") == task)
            & (pl.col("subtask") == subtask)
            & (pl.col("metric") == metric)
        ).select("item_id", "repeat", pl.col("value").alias(name))
        if frame.is_empty():
            return None
        joined = frame if joined is None else joined.join(frame, on=["item_id", "repeat"], how="inner")
    assert joined is not None
    return joined.with_columns((pl.col("loglik") - pl.col("strict")).alias(GAP))


def _units(long: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(model, task, subtask) with log-likelihood scores."""
    frame = long.filter(pl.col("variant") == "loglik").select("model", "task", "subtask").unique()
    return sorted(frame.iter_rows())


def knowledge_table(long: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Per model and task unit with loglik scores: the three accuracies on the items all three scored, the
    format gap and its 95% bootstrap CI (clustered by item)."""
    rows: list[dict[str, object]] = []
    for model, task, subtask in _units(long):
        values = _values(long, model, task, subtask)
        if values is None or values.is_empty():
            continue
        unit = unit_label(task, subtask)
        boot = item_bootstrap(values, pl.col(GAP), seeded_rng(seed, "format_gap", model, unit))
        rows.append(
            {
                "model": model,
                "unit": unit,
                "n": values.height,
                **{name: float(values[name].mean()) for name in MEASURES},  # type: ignore[arg-type]
                GAP: float(boot.sums.sum() / boot.counts.sum()),
                "gap_ci_low": boot.ci.low,
                "gap_ci_high": boot.ci.high,
            }
        )
    if not rows:
        return pl.DataFrame(schema=SCHEMA)
    return pl.DataFrame(rows, schema=SCHEMA, orient="row").sort("model", "unit")


def knowledge_paired(long: pl.DataFrame, pairs: list[Pair], seed: int, alpha: float = ALPHA) -> pl.DataFrame:
    """Per pair and task unit both models have loglik scores for: biomedical − general of each measure and
    of the format gap (``metrics`` names it), paired on the items all measures of both models scored."""
    units = set(_units(long))
    rows: list[dict[str, object]] = []
    for pair in pairs:
        shared = sorted((t, s) for m, t, s in units if m == pair.biomedical and (pair.general, t, s) in units)
        for task, subtask in shared:
            bio = _values(long, pair.biomedical, task, subtask)
            gen = _values(long, pair.general, task, subtask)
            if bio is None or gen is None:
                continue
            unit = unit_label(task, subtask)
            for name in (*MEASURES, GAP):
                labels = ("knowledge", name, pair.biomedical, pair.general, unit)
                sides = [f.select("item_id", "repeat", pl.col(name).alias("value")) for f in (bio, gen)]
                rows.append(
                    {
                        "biomedical": pair.biomedical,
                        "general": pair.general,
                        "variant": MEASURES[name][0] if name in MEASURES else "paper+loglik",
                        "unit": unit,
                        "metrics": name,
                    }
                    | compare_pair(sides[0], sides[1], seed, labels, accuracy=name != GAP)
                )
    frame = finish_comparisons(rows, alpha)
    # A larger gap is not "better": the biomedical model lost more to the format than its base did.
    gap = pl.col("metrics") == GAP
    return frame.with_columns(
        pl.when(gap & (pl.col("verdict") == BETTER))
        .then(pl.lit(LARGER_GAP))
        .when(gap & (pl.col("verdict") == WORSE))
        .then(pl.lit(SMALLER_GAP))
        .otherwise(pl.col("verdict"))
        .alias("verdict")
    )
