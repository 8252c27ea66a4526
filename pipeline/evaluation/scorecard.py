"""Score the stored outputs of a run and print the per-task summary table.

Scoring reads the store, not the live run, so it gives the same numbers after a resume or on its own.
Failed requests are counted, never scored: a failure is not a wrong answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from pipeline.scoring.types import ScoredItem
from pipeline.store.database import Store
from pipeline.store.schema import ScoreRecord


@dataclass(frozen=True, slots=True)
class TaskSummary:
    task: str
    subtask: str
    n: int
    failed: int
    metrics: dict[str, float]
    missing: tuple[str, ...]
    traces: dict[str, float] = field(default_factory=dict)  # no-answer rate, trace lengths (scoring.traces)


SCORE_BATCH = 1000
"""Results scored and written at a time: scoring and the summary hold one batch and the running means,
whatever the run's size (holding the whole run doubled an eval's RSS after sending)."""


def score_tasks(store: Store, model: str, variant: str, tasks: Sequence[str]) -> list[TaskSummary]:
    """Score every succeeded output of ``model`` on ``tasks``, batch by batch; write the scores table;
    aggregate."""
    from pipeline.scoring import option_logprobs
    from pipeline.scoring.means import RunningMeans
    from pipeline.scoring.traces import TraceTally
    from pipeline.tasks import scores

    failed = store.failed_by_subtask(model, variant)
    summaries: list[TaskSummary] = []
    for task in tasks:
        if variant == "loglik":  # refused before a score is written
            _refuse_broken_loglik(store, model, task)
        by_subtask: dict[str, RunningMeans] = {}
        traces: dict[str, TraceTally] = {}
        for rows in store.result_batches(model, variant, task, SCORE_BATCH):
            for row, item in zip(rows, _score_batch(store, model, variant, task, rows), strict=True):
                by_subtask.setdefault(row["subtask"], RunningMeans()).add((item,))
                # Succeeded rows only: a trace without an answer is a no-answer (schema.NO_ANSWER).
                traces.setdefault(row["subtask"], TraceTally()).add(
                    bool(row["traced"]),
                    bool(row["traced"]) and row["output"] is None,
                    row["reasoning_tokens"],
                )
        subtasks = sorted(by_subtask) or [""]
        for subtask in subtasks:
            means = by_subtask.get(subtask, RunningMeans())
            agg = option_logprobs.aggregate(means) if variant == "loglik" else scores.aggregate(task, means)
            summaries.append(
                TaskSummary(
                    task, subtask, agg.n, failed.get((task, subtask), 0), dict(agg.metrics), agg.missing,
                    traces.get(subtask, TraceTally()).stats(),
                )
            )  # fmt: skip
        for (t, sub), n in sorted(failed.items()):
            if t == task and sub not in by_subtask and subtasks != [""]:
                summaries.append(TaskSummary(task, sub, 0, n, {}, ()))
    return summaries


def _refuse_broken_loglik(store: Store, model: str, task: str) -> None:
    """Count the items whose options all scored the same (a first, light pass: the sums only)."""
    from pipeline.scoring import option_logprobs

    ties = n = 0
    for rows in store.result_batches(model, "loglik", task, SCORE_BATCH):
        n += len(rows)
        ties += sum(option_logprobs.is_tied(orjson.loads(r["choice_logprobs"])) for r in rows)
    option_logprobs.refuse_if_broken(task, model, ties, n)


def _score_batch(store: Store, model: str, variant: str, task: str, rows: Sequence[Any]) -> list[ScoredItem]:
    """Score one batch of result rows and write its scores (one transaction)."""
    from pipeline.scoring import option_logprobs
    from pipeline.tasks import scores

    if variant == "loglik":
        items = [
            option_logprobs.score_options(
                orjson.loads(r["choice_logprobs"]),
                orjson.loads(r["choice_labels"]),
                orjson.loads(r["choice_texts"]),
                orjson.loads(r["reference_json"]),
            )
            for r in rows
        ]
        return _write_scores(store, model, variant, task, rows, items)
    outputs = [r["output"] or "" for r in rows]
    if variant == "structured":
        outputs = [scores.as_answer_text(task, o) for o in outputs]
    items = scores.score_batch(
        task,
        outputs,
        [orjson.loads(r["reference_json"]) for r in rows],
        subtasks=[r["subtask"] for r in rows],
    )
    return _write_scores(store, model, variant, task, rows, items)


def _write_scores(
    store: Store, model: str, variant: str, task: str, rows: Sequence[Any], items: list[ScoredItem]
) -> list[ScoredItem]:
    store.write_scores(
        ScoreRecord(
            key=r["key"],
            model=model,
            variant=variant,
            task=task,
            subtask=r["subtask"],
            item_id=r["item_id"],
            repeat=r["repeat"],
            parsed_json=orjson.dumps(item.parsed).decode(),
            strict_valid=int(item.strict_valid),
            metrics_json=orjson.dumps(item.metrics).decode(),
        )
        for r, item in zip(rows, items, strict=True)
    )
    return items


def print_summary(summaries: Sequence[TaskSummary], model: str, out: Path, *, console: Console) -> None:
    """One row per task (LongHealth: per sub-task): the paper's metrics, format adherence, lenient score.
    Labels and their order are the metric declarations' (``pipeline/scoring/metrics.toml``)."""
    from pipeline.scoring import option_logprobs
    from pipeline.scoring.metrics import FORMAT_ADHERENCE, LENIENT, declared, paper_use
    from pipeline.scoring.traces import TRACE_METRICS

    # The metrics column holds those the paper reports (for any task; MedQA's accuracy too), and
    # --variant loglik's.
    labels = {
        name: m.label for name, m in declared().items() if paper_use(name) or name in option_logprobs.SUMMARY
    }
    table = Table(title=f"{model} — results in {out}", title_justify="left")
    table.add_column("task")
    table.add_column("scored", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("paper metrics (0-100)")
    table.add_column(declared()[FORMAT_ADHERENCE].label, justify="right")
    table.add_column("lenient", justify="right")
    # A reasoning model's no-answers and trace lengths; no columns for a model that does not reason.
    traced = [name for name in TRACE_METRICS if any(name in s.traces for s in summaries)]
    for name in traced:
        table.add_column(declared()[name].label, justify="right")
    for s in summaries:
        paper = "  ".join(
            f"{label} {s.metrics[key]:.1f}" for key, label in labels.items() if key in s.metrics
        )
        lenient = next((v for k, v in s.metrics.items() if k.endswith(LENIENT)), None)
        table.add_row(
            s.task + (f"/{s.subtask}" if s.subtask else ""),
            str(s.n),
            str(s.failed),
            paper,
            _fmt(s.metrics.get(FORMAT_ADHERENCE)),
            _fmt(lenient),
            *(_fmt(s.traces.get(name)) for name in traced),
        )
    console.print(table)
    # A task with nothing scored misses every metric for that reason, not for lack of optional models.
    missing = sorted({m for s in summaries if s.n for m in s.missing})
    if missing:
        console.print(f"not computed here (optional models not installed): {', '.join(missing)}")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
