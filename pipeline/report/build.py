"""Assemble a report from one or more stores: every table, the plain-language summary and the notes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipeline.errors import ConfigError
from pipeline.paths import DEMO_DATA_DIR
from pipeline.report import aggregate, compare, determinism, knowledge
from pipeline.report import published as paper_numbers
from pipeline.report.compat import find_mismatches, run_settings
from pipeline.report.load import item_records, load_stores
from pipeline.report.pairs import Pair, all_pairs, resolve_pairs

BIOMEDICAL, GENERAL, OTHER = "biomedical", "general", "other"


@dataclass(slots=True)
class Report:
    stores: tuple[Path, ...]
    seed: int
    runs: pl.DataFrame
    items: pl.DataFrame
    task_metrics: pl.DataFrame
    levels: pl.DataFrame
    adherence: pl.DataFrame
    failures: pl.DataFrame
    traces: pl.DataFrame
    paired: pl.DataFrame
    format_paired: pl.DataFrame
    pairs: list[Pair]
    roles: dict[str, str]
    # The paper's numbers beside the run's (pipeline/report/published.py): one row per published figure.
    published: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=paper_numbers.SCHEMA))
    # Knowledge or format (pipeline/report/knowledge.py): strict, lenient and log-likelihood accuracy per
    # model and task unit, and their paired differences; empty without --variant loglik results.
    knowledge: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=knowledge.SCHEMA))
    recheck: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=determinism.SCHEMA))
    knowledge_paired: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=compare.COMPARISON_SCHEMA)
    )
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def leaderboard(self) -> pl.DataFrame:
        """Levels per model x variant with role and failure count, best Level-1 first."""
        failed = self.failures.group_by(["model", "variant"]).agg(pl.col("failed").sum())
        roles = pl.DataFrame(
            {"model": list(self.roles), "role": list(self.roles.values())},
            schema={"model": pl.String, "role": pl.String},
        )
        board = (
            self.levels.join(roles, on="model", how="left")
            .join(failed, on=["model", "variant"], how="left")
            .with_columns(pl.col("role").fill_null(OTHER), pl.col("failed").fill_null(0))
            .sort(
                pl.coalesce("level1", "level1_partial"),
                pl.coalesce("level2", "level2_partial"),
                descending=True,
                nulls_last=True,
            )
            .drop("metrics_used", "missing")
        )
        first = ["model", "variant", "role", "level1", "level2"]
        return board.select([*first, *[c for c in board.columns if c not in first]])


def build_report(
    outs: Sequence[Path],
    *,
    pair_flags: Sequence[str] = (),
    seed: int = 0,
    allow_mixed: bool = False,
    servers_dir: Path | None = None,
) -> Report:
    data = load_stores(outs)
    items = item_records(data)
    present = set(items["model"].unique().to_list())
    pairs, notes = resolve_pairs(all_pairs(pair_flags, servers_dir), present)
    if not pairs and present:
        notes.append(
            "no biomedical/general pair has results in these stores: no paired comparison "
            "(add the models to servers/ with role and counterpart, or pass --pair BIO=GENERAL)"
        )
    roles: dict[str, str] = {}
    for pair in pairs:
        roles[pair.biomedical] = BIOMEDICAL
        roles.setdefault(pair.general, GENERAL)
    notes += _check_settings(data.results, data.runs, items, pairs, allow_mixed)
    long = aggregate.metric_long(items)
    task_metrics = aggregate.task_metric_table(long, seed)
    levels = aggregate.level_table(task_metrics)
    report = Report(
        stores=data.stores,
        seed=seed,
        runs=data.runs,
        items=items,
        task_metrics=task_metrics,
        levels=levels,
        adherence=aggregate.adherence_table(items, seed),
        failures=aggregate.failure_table(items),
        traces=aggregate.trace_table(items),
        paired=compare.compare_scores(items, pairs, seed, long=long),
        format_paired=compare.compare_adherence(items, pairs, seed),
        pairs=pairs,
        roles=roles,
        published=paper_numbers.published_table(
            task_metrics, levels, items, data.runs, paper_numbers.site_labels(servers_dir)
        ),
        notes=notes,
        knowledge=knowledge.knowledge_table(long, seed),
        knowledge_paired=knowledge.knowledge_paired(long, pairs, seed),
        recheck=determinism.recheck_table(data.runs),
    )
    report.summary = summarise(report) + paper_numbers.summarise(report.published)
    if _scored_demo_data(data.runs):
        report.summary.insert(0, DEMO_CAVEAT)
    return report


DEMO_CAVEAT = (
    "These runs scored the synthetic demo data (demo_data/): the scores mean nothing. The comparison only "
    "shows how medsweep reports a biomedical model against its general base."
)


def _scored_demo_data(runs: pl.DataFrame) -> bool:
    """Whether a run read the shipped synthetic data (its configuration names the folder it read)."""
    demo = DEMO_DATA_DIR.resolve()
    for text in runs["config_json"].to_list():
        try:
            folder = json.loads(text or "{}").get("run", {}).get("data_dir")
        except (ValueError, AttributeError):
            continue
        if folder and Path(folder).resolve() == demo:
            return True
    return False


def _check_settings(
    results: pl.DataFrame, runs: pl.DataFrame, items: pl.DataFrame, pairs: list[Pair], allow_mixed: bool
) -> list[str]:
    settings = run_settings(runs)
    notes: list[str] = []
    tasks_of = items.filter(pl.col("scored")).group_by("model", "variant").agg(pl.col("task").unique())
    task_sets = {(r["model"], r["variant"]): set(r["task"]) for r in tasks_of.iter_rows(named=True)}
    for pair in pairs:
        for variant in sorted({v for _, v in task_sets}):
            shared = task_sets.get((pair.biomedical, variant), set()) & task_sets.get(
                (pair.general, variant), set()
            )
            mismatches = [
                m
                for task in sorted(shared)
                for m in find_mismatches(results, settings, (pair.biomedical, pair.general), variant, task)
            ]
            if not mismatches:
                continue
            more = f" (and {len(mismatches) - 1} more difference(s))" if len(mismatches) > 1 else ""
            if not allow_mixed:
                raise ConfigError(
                    f"cannot pair {pair.biomedical!r} with {pair.general!r}: "
                    f"{mismatches[0].describe()}{more}; "
                    "rerun both with the same prompts and sampling, or pass --allow-mixed to compare anyway"
                )
            notes += [
                f"--allow-mixed: {pair.biomedical} vs {pair.general}: {m.describe()}" for m in mismatches
            ]
    for model, variant in sorted(task_sets):
        for task in sorted(task_sets[(model, variant)]):
            for m in find_mismatches(results, settings, (model,), variant, task):
                notes.append(f"{model} ({variant}) mixes runs: {m.describe()}")
    return notes


def summarise(report: Report) -> list[str]:
    """Plain-language sentences: which biomedical models beat their base, which lost, and format."""
    lines: list[str] = []
    if report.paired.is_empty():
        return ["No biomedical model could be compared with its general base model (see the notes)."]
    beat: list[str] = []
    lost: list[str] = []
    mixed: list[str] = []
    same: list[str] = []
    for (bio, gen, variant), frame in report.paired.group_by(
        ["biomedical", "general", "variant"], maintain_order=True
    ):
        better = frame.filter(pl.col("verdict") == compare.BETTER)["unit"].to_list()
        worse = frame.filter(pl.col("verdict") == compare.WORSE)["unit"].to_list()
        name = f"{bio} vs {gen}" + ("" if variant == "paper" else f" ({variant})")
        detail = (
            f"{name}: better on {len(better)} ({', '.join(better) or 'none'}), worse on {len(worse)} "
            f"({', '.join(worse) or 'none'}) of {frame.height} task(s)"
        )
        levels = _level_delta(report.levels, str(bio), str(gen), str(variant))
        lines.append(detail + (f"; {levels}" if levels else "") + ".")
        (beat if better and not worse else lost if worse and not better else mixed if worse else same).append(
            name
        )
        significant = frame.filter(pl.col("verdict").is_in([compare.BETTER, compare.WORSE]))
        for row in significant.filter(pl.col("no_answer_share") > compare.MOSTLY).iter_rows(named=True):
            lines.append(
                f"{name} on {row['unit']}: the difference comes mostly from no-answers "
                f"({100 * row['no_answer_share']:.0f}% of it is items where one model's token budget ran out "
                "inside its reasoning trace): it measures how long the models think, not what they know."
            )
    head = []
    head.append(f"Beat their general base model: {', '.join(beat) or 'none'}.")
    head.append(f"Lost to their general base model: {', '.join(lost) or 'none'}.")
    if mixed:
        head.append(f"Mixed (better on some tasks, worse on others): {', '.join(mixed)}.")
    if same:
        head.append(f"No significant difference on any task: {', '.join(same)}.")
    fmt_worse = report.format_paired.filter(pl.col("verdict") == compare.WORSE)
    fmt_better = report.format_paired.filter(pl.col("verdict") == compare.BETTER)
    for frame, word in ((fmt_worse, "less"), (fmt_better, "more")):
        for row in frame.iter_rows(named=True):
            head.append(
                f"Format: {row['biomedical']} follows the answer format {word} often than "
                f"{row['general']} on {row['unit']} ({row['mean_diff']:+.1f} points of valid answers)."
            )
    if fmt_worse.is_empty() and fmt_better.is_empty() and not report.format_paired.is_empty():
        head.append("Format: no significant change in answer-format adherence after biomedical training.")
    head.append(
        "Significance: alpha 0.05 after Holm correction over all model x task comparisons; "
        "failed requests are excluded, not counted as wrong."
    )
    return head + lines


def _level_delta(levels: pl.DataFrame, bio: str, gen: str, variant: str) -> str:
    def get(model: str, col: str) -> float | None:
        row = levels.filter((pl.col("model") == model) & (pl.col("variant") == variant))
        return None if row.is_empty() else row[col][0]

    parts = []
    for level in (1, 2):
        for column, label in (
            (f"level{level}", ""),
            (f"level{level}_partial", " (partial: metrics missing)"),
        ):
            a, b = get(bio, column), get(gen, column)
            if a is not None and b is not None:
                parts.append(f"Level {level}{label} {a:.1f} vs {b:.1f} ({a - b:+.1f})")
                break
    return ", ".join(parts)
