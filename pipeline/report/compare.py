"""Paired comparison of each biomedical model with its general counterpart, on the items both answered.

Rows are joined on (task, subtask, item_id, repeat). Per comparison: the mean difference (biomedical minus
general, in points on the 0-100 scale) with a paired bootstrap CI clustered by item; McNemar's exact test
when every paired value is 0 or 100 (accuracy), else a paired sign-flip permutation test; Holm's
correction over all comparisons of one table; win / tie / loss counts per paired row; a verdict. With
reasoning models, ``no_answer_share``: the part of the difference that comes from paired rows where one model
gave no answer (its budget ran out inside the trace) and the other did (docs/reasoning.md).
"""

from __future__ import annotations

import polars as pl

from pipeline.report.aggregate import item_bootstrap, metric_long, unit_label, used_metrics
from pipeline.report.load import no_answer
from pipeline.report.pairs import Pair
from pipeline.report.stats import (
    EXACT_PERMUTATION_MAX,
    N_PERMUTATIONS,
    holm_adjust,
    mcnemar_exact,
    seeded_rng,
    sign_flip_test,
)

ALPHA = 0.05
BETTER, WORSE, NO_DIFFERENCE, NOT_COMPARABLE = (
    "better",
    "worse",
    "no significant difference",
    "not comparable",
)
_JOIN = ["task", "subtask", "item_id", "repeat"]
_TIE = 1e-9

COMPARISON_SCHEMA: dict[str, type[pl.DataType]] = {
    "biomedical": pl.String,
    "general": pl.String,
    "variant": pl.String,
    "unit": pl.String,
    "metrics": pl.String,
    "n_pairs": pl.Int64,
    "n_items": pl.Int64,
    "biomedical_mean": pl.Float64,
    "general_mean": pl.Float64,
    "mean_diff": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "test": pl.String,
    "p_value": pl.Float64,
    "p_holm": pl.Float64,
    "wins": pl.Int64,
    "ties": pl.Int64,
    "losses": pl.Int64,
    "verdict": pl.String,
    "only_biomedical": pl.Int64,
    "only_general": pl.Int64,
    "no_answer_share": pl.Float64,
}
MOSTLY = 0.5  # a difference "comes mostly from no-answers" when more than half of it does


def compare_pair(
    bio: pl.DataFrame, gen: pl.DataFrame, seed: int, labels: tuple[str, ...], *, accuracy: bool = True
) -> dict[str, object]:
    """``bio`` / ``gen``: item_id, repeat, value (one row per answered item-repeat), and optionally
    no_answer (whether that reply was cut inside its trace). ``accuracy=False``: the values are not
    right/wrong even where they happen to be 0 or 100 (a difference): no McNemar."""
    joined = bio.join(gen, on=["item_id", "repeat"], how="inner", suffix="_g")
    n = joined.height
    out: dict[str, object] = {
        "n_pairs": n,
        "only_biomedical": bio.height - n,
        "only_general": gen.height - n,
    }
    if n == 0:
        return out | {"n_items": 0, "test": "", "verdict": NOT_COMPARABLE, "wins": 0, "ties": 0, "losses": 0}
    joined = joined.with_columns((pl.col("value") - pl.col("value_g")).alias("d"))
    sums, counts, ci = item_bootstrap(joined, pl.col("d"), seeded_rng(seed, "paired", *labels))
    binary = (
        accuracy
        and joined.select(
            (pl.col("value").is_in([0.0, 100.0]) & pl.col("value_g").is_in([0.0, 100.0])).all()
        ).item()
    )
    if binary:
        b = joined.filter((pl.col("value") == 100.0) & (pl.col("value_g") == 0.0)).height
        c = joined.filter((pl.col("value") == 0.0) & (pl.col("value_g") == 100.0)).height
        p, test = mcnemar_exact(b, c), f"McNemar exact (b={b}, c={c})"
    else:
        p = sign_flip_test(sums, seeded_rng(seed, "permutation", *labels))
        nonzero = int((sums != 0).sum())
        kind = "exact" if nonzero <= EXACT_PERMUTATION_MAX else f"{N_PERMUTATIONS} random flips"
        test = f"sign-flip permutation ({kind})"
    d = joined["d"]
    share = None
    if (
        "no_answer" in joined.columns
        and joined.select(pl.col("no_answer") | pl.col("no_answer_g")).to_series().any()
    ):
        total = float(d.sum())
        from_no_answers = float(joined.filter(pl.col("no_answer") != pl.col("no_answer_g"))["d"].sum())
        share = from_no_answers / total if abs(total) > _TIE else None
    return out | {
        "no_answer_share": share,
        "n_items": len(sums),
        "biomedical_mean": float(joined["value"].mean()),  # type: ignore[arg-type]
        "general_mean": float(joined["value_g"].mean()),  # type: ignore[arg-type]
        "mean_diff": float(sums.sum() / counts.sum()),
        "ci_low": ci.low,
        "ci_high": ci.high,
        "test": test,
        "p_value": p,
        "wins": int((d > _TIE).sum()),
        "ties": int((d.abs() <= _TIE).sum()),
        "losses": int((d < -_TIE).sum()),
    }


def finish_comparisons(rows: list[dict[str, object]], alpha: float) -> pl.DataFrame:
    frame = (
        pl.DataFrame(rows, schema=COMPARISON_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=COMPARISON_SCHEMA)
    )
    p = [float("nan") if v is None else float(v) for v in frame["p_value"].to_list()]
    adjusted = holm_adjust(p)
    verdicts = []
    for row, p_holm in zip(frame.iter_rows(named=True), adjusted, strict=True):
        if row["n_pairs"] == 0 or p_holm != p_holm:
            verdicts.append(NOT_COMPARABLE)
        elif p_holm < alpha and row["mean_diff"] > 0:
            verdicts.append(BETTER)
        elif p_holm < alpha and row["mean_diff"] < 0:
            verdicts.append(WORSE)
        else:
            verdicts.append(NO_DIFFERENCE)
    return frame.with_columns(
        pl.Series("p_holm", [None if a != a else a for a in adjusted], dtype=pl.Float64),
        pl.Series("verdict", verdicts, dtype=pl.String),
    ).sort(["biomedical", "variant", "unit"])


def _units(items: pl.DataFrame, model: str, variant: str) -> set[tuple[str, str]]:
    frame = items.filter((pl.col("model") == model) & (pl.col("variant") == variant) & pl.col("scored"))
    return {(t, s) for t, s in frame.select("task", "subtask").unique().iter_rows()}


def paired_values(
    long: pl.DataFrame, pair: Pair, variant: str, task: str, subtask: str
) -> tuple[list[str], list[pl.DataFrame]]:
    """(metrics used, [biomedical, general]): a paired row's value is the mean of the paper's metrics that
    both models have for the task; each frame has item_id, repeat, value (one row per scored item-repeat)."""
    sides = []
    available = []
    for model in (pair.biomedical, pair.general):
        frame = long.filter(
            (pl.col("model") == model)
            & (pl.col("variant") == variant)
            & (pl.col("task") == task)
            & (pl.col("subtask") == subtask)
        )
        sides.append(frame)
        available.append(set(frame["metric"].unique().to_list()))
    used, _ = used_metrics(task, available[0] & available[1])
    values = [
        side.filter(pl.col("metric").is_in(used)).group_by("item_id", "repeat").agg(pl.col("value").mean())
        for side in sides
    ]
    return used, values


def item_outcome(biomedical: float, general: float) -> str:
    """One paired row: ``better`` / ``worse`` for the biomedical model, or ``tie`` (the wins / ties /
    losses of a comparison count these)."""
    d = biomedical - general
    return "tie" if abs(d) <= _TIE else BETTER if d > 0 else WORSE


def compare_scores(
    items: pl.DataFrame, pairs: list[Pair], seed: int, alpha: float = ALPHA, long: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Task-score comparisons on the values of ``paired_values`` (the metrics are named in ``metrics``)."""
    long = metric_long(items) if long is None else long
    rows: list[dict[str, object]] = []
    for pair, variant, (task, subtask) in comparable_units(items, pairs):
        used, values = paired_values(long, pair, variant, task, subtask)
        if "reasoning" in items.columns:
            values = [
                side.join(
                    _no_answers(items, model, variant, task, subtask), on=["item_id", "repeat"], how="left"
                )
                for side, model in zip(values, (pair.biomedical, pair.general), strict=True)
            ]
        unit = unit_label(task, subtask)
        labels = (pair.biomedical, pair.general, variant, unit)
        rows.append(
            {
                "biomedical": pair.biomedical,
                "general": pair.general,
                "variant": variant,
                "unit": unit,
                "metrics": ", ".join(used),
            }
            | compare_pair(values[0], values[1], seed, labels)
        )
    return finish_comparisons(rows, alpha)


def _no_answers(items: pl.DataFrame, model: str, variant: str, task: str, subtask: str) -> pl.DataFrame:
    return items.filter(
        (pl.col("model") == model)
        & (pl.col("variant") == variant)
        & (pl.col("task") == task)
        & (pl.col("subtask") == subtask)
    ).select("item_id", "repeat", no_answer().fill_null(False).alias("no_answer"))


def compare_adherence(
    items: pl.DataFrame, pairs: list[Pair], seed: int, alpha: float = ALPHA
) -> pl.DataFrame:
    """Format adherence comparisons: per paired row strict_valid as 0 / 100 (so differences are points)."""
    rows: list[dict[str, object]] = []
    for pair, variant, (task, subtask) in comparable_units(items, pairs):
        sides = [
            items.filter(
                (pl.col("model") == model)
                & (pl.col("variant") == variant)
                & (pl.col("task") == task)
                & (pl.col("subtask") == subtask)
                & pl.col("scored")
                & pl.col("strict_valid").is_not_null()
            ).select("item_id", "repeat", (pl.col("strict_valid").cast(pl.Float64) * 100.0).alias("value"))
            for model in (pair.biomedical, pair.general)
        ]
        unit = unit_label(task, subtask)
        labels = ("format", pair.biomedical, pair.general, variant, unit)
        rows.append(
            {
                "biomedical": pair.biomedical,
                "general": pair.general,
                "variant": variant,
                "unit": unit,
                "metrics": "strict_valid",
            }
            | compare_pair(sides[0], sides[1], seed, labels)
        )
    return finish_comparisons(rows, alpha)


def comparable_units(items: pl.DataFrame, pairs: list[Pair]) -> list[tuple[Pair, str, tuple[str, str]]]:
    """(pair, variant, unit) for every task unit both models of a pair have scores for."""
    found: list[tuple[Pair, str, tuple[str, str]]] = []
    # --variant loglik has no paper metrics and no format: its pairs are compared in report/knowledge.py.
    variants = sorted(set(items["variant"].unique().to_list()) - {"loglik"})
    for pair in pairs:
        for variant in variants:
            shared = _units(items, pair.biomedical, variant) & _units(items, pair.general, variant)
            found.extend((pair, variant, unit) for unit in sorted(shared))
    return found
