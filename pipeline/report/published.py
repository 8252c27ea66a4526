"""The paper's numbers beside a run's: for every model the registry gives a ``site_label`` (its name on the
CLUE results site), each published metric, task mean and Level score next to the run's, with the difference
and whether the run's data version, item count and sampling can explain it (docs/reports.md, "The paper's
numbers beside yours").

The bound of a metric: the run's per-item standard deviation ``s`` is read off its 95% item bootstrap CI
(half-width ``h`` = 1.96 · s / √n_run), and for accuracy (each item 0 or 100) is at least the
``√(P(100 − P))`` that the published value ``P`` implies, so that a few items that happen to agree (a CI of
width 0) do not make the bound 0. The published number has its own sampling error over the paper's
``n_paper`` items. A difference of two independent means is within

    bound = 1.96 · s · √(1/n_run + 1/n_paper) + 0.005        (the paper's figures are rounded to 2 decimals)

A task mean (the mean of the task's paper metrics, what a Level averages) takes the mean of its metrics'
standard errors (its metrics are read off the same outputs, so they are taken as fully correlated: the
largest error), and a Level ``√(Σ se_task²) / k`` over its k tasks (independent items). A run is compared
only on the paper's variant (plain prompts) and on a data version the paper scored (``data check``'s
names); otherwise the row says ``not comparable`` and why."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from pipeline.datasets import clue_v3 as paper
from pipeline.report import spec

Z = 1.96
ROUNDING = 0.005
REPRODUCES, DIFFERS, NOT_COMPARABLE, NOT_PUBLISHED = (
    "reproduces",
    "differs",
    "not comparable",
    "not published",
)
PAPER_VARIANT = "paper"
TASK_MEAN = "(task mean)"

SCHEMA = {
    "model": pl.String,
    "site_label": pl.String,
    "variant": pl.String,
    "unit": pl.String,
    "metric": pl.String,
    "published": pl.Float64,
    "run": pl.Float64,
    "diff": pl.Float64,
    "bound": pl.Float64,
    "n_items": pl.Int64,
    "paper_n": pl.Int64,
    "verdict": pl.String,
    "data": pl.String,
}


@dataclass(frozen=True, slots=True)
class DataVersion:
    name: str
    comparable: bool | None  # None: the run's data folder is not here, so its version is not checked


def paper_items(task: str) -> int | None:
    """How many items the paper scored on ``task``: its published version's rows less the demonstrations
    (LongHealth: 400 questions; its five repeats are clustered by question, as the report's CIs are)."""
    from pipeline.datasets.versions import known_versions
    from pipeline.tasks.prompts import load_prompts

    rows = [v.rows for v in known_versions().get(task, ()) if v.published]
    if not rows:
        return None
    return rows[0] - load_prompts(task).prompt.few_shot


@cache
def _identify(task: str, data_dir: str) -> DataVersion:
    from pipeline.datasets.versions import identify
    from pipeline.tasks import check_data
    from pipeline.tasks.prompts import load_prompts

    check = check_data(task, Path(data_dir))
    if check.state != "ok":
        return DataVersion(f"not checked: {check.path} is not here", None)
    found = identify(task, check.path, check.rows, load_prompts(task).data.sha256)
    return DataVersion(found.describe(), found.comparable)


def _run_settings(runs: pl.DataFrame) -> dict[str, dict[str, object]]:
    """run_id -> the parts of its configuration that decide comparability (data folder, temperature)."""
    settings: dict[str, dict[str, object]] = {}
    for run_id, text in runs.select("run_id", "config_json").iter_rows():
        try:
            config = json.loads(text or "{}")
        except ValueError:
            config = {}
        run = config.get("run", {}) if isinstance(config, dict) else {}
        sampling = config.get("sampling", {}) if isinstance(config, dict) else {}
        settings[str(run_id)] = {
            "data_dir": run.get("data_dir") if isinstance(run, dict) else None,
            "temperature": sampling.get("temperature") if isinstance(sampling, dict) else None,
        }
    return settings


def _data_versions(items: pl.DataFrame, runs: pl.DataFrame) -> dict[tuple[str, str, str], DataVersion]:
    """(model, variant, task) -> the data version its runs read, with what else keeps it from the paper's."""
    settings = _run_settings(runs)
    used = items.filter(pl.col("scored")).select("model", "variant", "task", "run_id").unique()
    found: dict[tuple[str, str, str], DataVersion] = {}
    for model, variant, task, run_id in used.sort("run_id").iter_rows():
        key = (str(model), str(variant), str(task))
        if key in found:
            continue
        setting = settings.get(str(run_id), {})
        folder = setting.get("data_dir")
        version = _identify(str(task), str(folder)) if folder else DataVersion("not recorded", None)
        temperature = setting.get("temperature")
        if isinstance(temperature, int | float) and temperature > 0:
            version = DataVersion(
                f"{version.name}; sampled at temperature {temperature} (the paper decoded greedily)",
                version.comparable,
            )
        found[key] = version
    return found


def site_labels(servers_dir: Path | None = None) -> dict[str, str]:
    """registry name -> its name on the CLUE results site, for the models that have one."""
    from pipeline.models.registry import load_registry
    from pipeline.paths import SERVERS_DIR

    directory = servers_dir or SERVERS_DIR
    if not directory.is_dir():
        return {}
    return {name: cfg.site_label for name, cfg in load_registry(directory).items() if cfg.site_label}


def _registry_name(identity: str) -> str:
    return identity.split("@", 1)[0]


@dataclass(slots=True)
class _Row:
    model: str
    site_label: str
    variant: str
    unit: str
    metric: str
    published: float | None
    run: float | None
    se: float | None  # standard error of the difference (None: not compared)
    n_items: int | None
    paper_n: int | None
    data: DataVersion

    def verdict(self) -> tuple[float | None, float | None, str]:
        if self.published is None or self.run is None:
            return None, None, NOT_PUBLISHED
        diff = self.run - self.published
        if self.variant != PAPER_VARIANT or self.data.comparable is False or self.se is None:
            return diff, None, NOT_COMPARABLE
        bound = Z * self.se + ROUNDING
        return diff, bound, REPRODUCES if abs(diff) <= bound else DIFFERS

    def record(self) -> dict[str, object]:
        diff, bound, verdict = self.verdict()
        data = self.data.name
        if self.variant != PAPER_VARIANT:
            data = f"variant {self.variant} (the paper's prompts are variant {PAPER_VARIANT}); {data}"
        return {
            "model": self.model,
            "site_label": self.site_label,
            "variant": self.variant,
            "unit": self.unit,
            "metric": self.metric,
            "published": self.published,
            "run": self.run,
            "diff": diff,
            "bound": bound,
            "n_items": self.n_items,
            "paper_n": self.paper_n,
            "verdict": verdict,
            "data": data,
        }


def _metric_se(row: Mapping[str, object], published: float | None, paper_n: int) -> float:
    """Standard error of (run − published) for one metric row of the task-metric table."""
    n = int(str(row["n_items"]))
    low, high = float(str(row["ci_low"])), float(str(row["ci_high"]))
    per_item = (high - low) / (2 * Z) * math.sqrt(n)
    if row["metric"] == "accuracy" and published is not None:  # each item 0 or 100
        per_item = max(per_item, math.sqrt(max(published * (100 - published), 0.0)))
    return per_item * math.sqrt(1 / n + 1 / paper_n)


def _task_mean(entries: list[_Row]) -> _Row:
    """The mean of a task's published metrics, as a Level averages it; compared only when complete."""
    first = entries[0]
    names = _paper_columns(first.unit)
    chosen = [e for e in entries if e.metric in names]
    published = [e.published for e in chosen if e.published is not None]
    runs = [e.run for e in chosen if e.run is not None]
    ses = [e.se for e in chosen if e.se is not None]
    complete = len(chosen) == len(names) > 0
    return _Row(
        first.model,
        first.site_label,
        first.variant,
        first.unit,
        TASK_MEAN,
        sum(published) / len(published) if complete and len(published) == len(chosen) else None,
        sum(runs) / len(runs) if complete and len(runs) == len(chosen) else None,
        sum(ses) / len(ses) if complete and len(ses) == len(chosen) else None,
        min((e.n_items or 0) for e in chosen) if chosen else None,
        first.paper_n,
        first.data,
    )


def _combine(values: Iterable[DataVersion]) -> DataVersion:
    versions = list(values)
    comparable: bool | None = True
    if any(v.comparable is False for v in versions):
        comparable = False
    elif any(v.comparable is None for v in versions):
        comparable = None
    return DataVersion("; ".join(dict.fromkeys(v.name for v in versions)), comparable)


def published_table(
    task_metrics: pl.DataFrame,
    levels: pl.DataFrame,
    items: pl.DataFrame,
    runs: pl.DataFrame,
    labels: Mapping[str, str],
) -> pl.DataFrame:
    """One row per published figure of every model with a site label and results: each paper metric, each
    task's mean of them, and Level 1 / Level 2 (see the module's doc for the bound and the verdicts)."""
    table = paper.published()
    versions = _data_versions(items, runs)
    rows: list[_Row] = []
    for (model, variant), frame in task_metrics.filter(pl.col("paper_metric")).group_by(
        ["model", "variant"], maintain_order=True
    ):
        label = labels.get(_registry_name(str(model)))
        if label is None:
            continue
        figures = table.get(label, {})
        task_rows: dict[str, list[_Row]] = {}
        for row in frame.sort("task", "subtask", "metric").iter_rows(named=True):
            task = str(row["task"])
            paper_n = paper_items(task)
            key = spec.level_key(str(row["subtask"]), str(row["metric"]))
            published = figures.get(paper.metric_column(task, key))
            data = versions.get((str(model), str(variant), task), DataVersion("not recorded", None))
            se = _metric_se(row, published, paper_n) if paper_n and row["n_items"] else None
            entry = _Row(
                str(model),
                label,
                str(variant),
                task,
                key,
                published,
                row["mean"],
                se,
                row["n_items"],
                paper_n,
                data,
            )
            rows.append(entry)
            task_rows.setdefault(task, []).append(entry)
        task_means = {task: _task_mean(entries) for task, entries in task_rows.items()}
        rows += task_means.values()
        for level in spec.LEVELS:
            rows.append(_level_row(str(model), label, str(variant), level, task_means, levels, figures))
    records = [r.record() for r in rows if not (r.metric.startswith("level") and r.run is None)]
    return pl.DataFrame(records, schema=SCHEMA, orient="row")


@cache
def _paper_columns(task: str) -> tuple[str, ...]:
    """The published metric names of ``task`` (LongHealth: ``task1_accuracy`` ...), as the table's columns."""
    prefix = f"{task}_"
    return tuple(c[len(prefix) :] for c in _all_columns() if c.startswith(prefix))


@cache
def _all_columns() -> tuple[str, ...]:
    columns: dict[str, None] = {}
    for figures in paper.published().values():
        columns.update(dict.fromkeys(figures))
    return tuple(columns)


def _level_row(
    model: str,
    label: str,
    variant: str,
    level: int,
    task_means: Mapping[str, _Row],
    levels: pl.DataFrame,
    figures: Mapping[str, float],
) -> _Row:
    name = f"level{level}"
    tasks = spec.level_tasks(level)
    found = levels.filter((pl.col("model") == model) & (pl.col("variant") == variant))
    run = found[name][0] if found.height and name in found.columns else None
    means = [task_means[t] for t in tasks if t in task_means]
    ses = [m.se for m in means]
    known = [s for s in ses if s is not None]
    se = math.sqrt(sum(s * s for s in known)) / len(tasks) if len(known) == len(tasks) else None
    data = _combine(m.data for m in means) if means else DataVersion("", None)
    n_items = min((m.n_items or 0) for m in means) if means else None
    return _Row(
        model, label, variant, f"Level {level}", name, figures.get(name), run, se, n_items, None, data
    )


def summarise(frame: pl.DataFrame) -> list[str]:
    """One sentence per model with published numbers: on which tasks and Levels it reproduces them, where
    it differs by more than the bound, and what could not be compared."""
    lines: list[str] = []
    shown = frame.filter(pl.col("metric").is_in([TASK_MEAN, "level1", "level2"]))
    for (model, label, variant), group in shown.group_by(
        ["model", "site_label", "variant"], maintain_order=True
    ):
        by_verdict: dict[str, list[str]] = {}
        for row in group.iter_rows(named=True):
            unit = str(row["unit"])
            if row["verdict"] == DIFFERS:
                unit += f" ({row['diff']:+.2f}, bound ±{row['bound']:.2f})"
            by_verdict.setdefault(str(row["verdict"]), []).append(unit)
        parts = [
            f"{word} on {', '.join(by_verdict[verdict])}"
            for verdict, word in (
                (REPRODUCES, "reproduces"),
                (DIFFERS, "differs"),
                (NOT_COMPARABLE, "not comparable"),
            )
            if verdict in by_verdict
        ]
        if parts:
            name = f"{model} ({variant})" if variant != PAPER_VARIANT else str(model)
            lines.append(
                f"Against the paper's numbers ({label} in {paper.LABEL.split(' (')[0]}): {name} "
                + "; ".join(parts)
                + "."
            )
    return lines
