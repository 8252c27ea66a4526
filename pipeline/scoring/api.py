"""Scoring entry points: one item, a batch (with the optional model-based metrics), and task means."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.errors import DataError
from pipeline.scoring import extras, summaries
from pipeline.scoring.metrics import FORMAT_ADHERENCE
from pipeline.scoring.types import ScoredItem, TaskScore
from pipeline.tasks.registry import TaskDef, get_def, task_names


def _task(task: str) -> TaskDef:
    if task not in task_names():
        raise DataError(f"unknown task {task!r}: use one of {', '.join(task_names())}")
    return get_def(task)


def score_item(task: str, output: str, reference: Any, *, subtask: str = "") -> ScoredItem:
    """Score one output against its reference with the paper's rules (0–100 per item).

    Raises ``DataError`` naming the field when the task, sub-task or reference is unusable."""
    spec = _task(task)
    if not spec.subtasks and subtask:
        with_subtasks = [t for t in task_names() if get_def(t).subtasks]
        raise DataError(
            f"field 'subtask': only {', '.join(with_subtasks)} has sub-tasks, got {subtask!r} for {task}"
        )
    if spec.subtasks and subtask not in ("", *spec.subtasks):
        raise DataError(f"field 'subtask': use one of {', '.join(spec.subtasks)}, got {subtask!r}")
    if not isinstance(output, str):
        raise DataError(f"field 'prediction': expected text, got {type(output).__name__}")
    try:
        return spec.score(spec.cleaned(output), reference, subtask)
    except ValueError as exc:
        raise DataError(f"field 'reference': {exc}") from exc


def score_batch(
    task: str,
    outputs: Sequence[str],
    references: Sequence[Any],
    *,
    subtasks: Sequence[str] | None = None,
    extras: bool = True,
) -> list[ScoredItem]:
    """``score_item`` for each pair, plus BERTScore F1 / UMLS-F1 where the task reports them and they can
    run here (see ``extras.unavailable``); otherwise those keys are simply absent."""
    if len(outputs) != len(references) or (subtasks is not None and len(subtasks) != len(outputs)):
        raise DataError("outputs, references and subtasks must have the same length")
    items = [
        score_item(task, output, reference, subtask=subtasks[i] if subtasks is not None else "")
        for i, (output, reference) in enumerate(zip(outputs, references, strict=True))
    ]
    if not extras or not items:
        return items
    return add_extras(task, outputs, references, items)


def add_extras(
    task: str, outputs: Sequence[str], references: Sequence[Any], items: list[ScoredItem]
) -> list[ScoredItem]:
    """``items`` with BERTScore F1 / UMLS-F1 added where the task reports them and they can run here."""
    wanted = extras.extra_metrics(task)
    if not wanted:
        return items
    cannot = extras.unavailable(task)
    pairs = list(zip(outputs, references, strict=True))

    def bertscore() -> list[float]:
        pred, ref = zip(*(summaries.prepare(task, out, ref) for out, ref in pairs), strict=True)
        return extras.bertscore_f1(task, pred, ref)

    def umls() -> list[float]:
        pred, ref = zip(*(summaries.prepare_for_umls(task, out, ref) for out, ref in pairs), strict=True)
        return extras.umls_f1(pred, ref)

    computed: dict[str, list[float]] = {}
    runners: dict[str, Callable[[], list[float]]] = {extras.BERTSCORE: bertscore, extras.UMLS: umls}
    for metric in wanted:
        if metric in cannot:
            continue
        try:
            computed[metric] = runners[metric]()
            _extra_failures.pop((task, metric), None)
        except Exception as exc:  # a model that fails to load offline leaves the metric missing, not 0
            _extra_failures[(task, metric)] = f"{metric}: failed to run ({type(exc).__name__}: {exc})"
    return [
        dataclasses.replace(item, metrics=item.metrics | {m: values[i] for m, values in computed.items()})
        for i, item in enumerate(items)
    ]


# Why an optional metric failed at run time (reported in TaskScore.notes by ``aggregate``).
_extra_failures: dict[tuple[str, str], str] = {}


def item_metrics(task: str) -> tuple[str, ...]:
    """The paper metrics as named on single items (LongHealth items carry plain ``accuracy``)."""
    return _task(task).per_item_metrics


def paper_metrics(task: str) -> tuple[str, ...]:
    """The metric names the paper reports for ``task`` (what the Level averages use); for a task beyond
    the paper, what its module reports."""
    return _task(task).metrics


def aggregate(task: str, items: Sequence[ScoredItem]) -> TaskScore:
    """Means of the per-item metrics over all items (each item counted once), plus ``format_adherence``
    = % of items the strict parser accepted."""
    _task(task)
    expected = item_metrics(task)
    if not items:
        return TaskScore(n=0, metrics={}, missing=expected, notes=("no items to score",))
    names = sorted({name for item in items for name in item.metrics})
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for name in names:
        values = [item.metrics[name] for item in items if name in item.metrics]
        metrics[name] = sum(values) / len(values)
        if len(values) != len(items):
            notes.append(f"{name}: mean of the {len(values)} of {len(items)} items that have it")
    metrics[FORMAT_ADHERENCE] = 100.0 * sum(item.strict_valid for item in items) / len(items)
    missing = tuple(name for name in expected if name not in metrics)
    notes.extend(_missing_reasons(task, missing))
    return TaskScore(n=len(items), metrics=metrics, missing=missing, notes=tuple(notes))


def _missing_reasons(task: str, missing: Sequence[str]) -> list[str]:
    reasons = extras.unavailable(task) if missing else {}
    notes = []
    for name in missing:
        if (task, name) in _extra_failures:
            notes.append(_extra_failures[(task, name)])
        elif name in reasons:
            notes.append(f"{name}: not computed, {reasons[name]}")
        else:
            notes.append(f"{name}: not computed (score with extras=True)")
    return notes


def aggregate_by_subtask(task: str, groups: Mapping[str, Sequence[ScoredItem]]) -> TaskScore:
    """Aggregate each sub-task separately and prefix its metrics with ``<subtask>_`` (LongHealth:
    ``task1_accuracy`` ...). ``format_adherence`` is also given over all items; ``missing`` lists the
    paper's sub-task metrics that no group provided."""
    spec = _task(task)
    metrics: dict[str, float] = {}
    notes: list[str] = []
    n = valid = 0
    for subtask in sorted(groups):
        items = groups[subtask]
        part = aggregate(task, items)
        metrics |= {f"{subtask}_{name}": value for name, value in part.metrics.items()}
        notes.extend(f"{subtask}: {note}" for note in part.notes)
        n += part.n
        valid += sum(item.strict_valid for item in items)
    if n:
        metrics[FORMAT_ADHERENCE] = 100.0 * valid / n
    missing = tuple(name for name in paper_metrics(task) if name not in metrics)
    if not spec.subtasks:
        missing = tuple(
            f"{subtask}_{name}"
            for subtask in sorted(groups)
            for name in item_metrics(task)
            if f"{subtask}_{name}" not in metrics
        )
    return TaskScore(n=n, metrics=metrics, missing=missing, notes=tuple(notes))
