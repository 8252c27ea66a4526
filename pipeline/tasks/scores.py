"""Scoring a registered task by name: one item, a batch (with the optional model-based metrics), task means.

Each task declares its scorer and metrics in its module (``TaskDef``); the parsers, metric functions, means
and Levels those use are task-agnostic and live in ``pipeline.scoring``.

The structured-output variant: a closed-answer task run with its JSON schema answers ``{"label": ...}``,
``{"answer": ...}`` or ``{"codes": [...]}``. Its task module turns a valid answer into the text the paper's
parser reads (``TaskDef.structured``), which keeps one scorer for both variants; an answer that is not valid
JSON of the schema is left as it is, so the strict parser rejects it and it counts against format
adherence. The two variants are stored apart and never pooled."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.errors import DataError
from pipeline.scoring import extras
from pipeline.scoring.means import RunningMeans, mean_metrics
from pipeline.scoring.metrics import FORMAT_ADHERENCE, subtask_metric
from pipeline.scoring.types import ScoredItem, TaskScore
from pipeline.tasks.registry import TaskDef, TextPair, get_def, task_names


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
    run here (see ``pipeline.scoring.extras.unavailable``); otherwise those keys are simply absent."""
    if len(outputs) != len(references) or (subtasks is not None and len(subtasks) != len(outputs)):
        raise DataError("outputs, references and subtasks must have the same length")
    items = [
        score_item(task, output, reference, subtask=subtasks[i] if subtasks is not None else "")
        for i, (output, reference) in enumerate(zip(outputs, references, strict=True))
    ]
    if not extras or not items:
        return items
    return add_extras(task, outputs, references, items)


def warm_up(tasks: Sequence[str]) -> None:
    """Load what scoring ``tasks`` reads on first use (``TaskDef.warm_up``)."""
    for task in tasks:
        hook = _task(task).warm_up
        if hook is not None:
            hook()


def add_extras(
    task: str, outputs: Sequence[str], references: Sequence[Any], items: list[ScoredItem]
) -> list[ScoredItem]:
    """``items`` with BERTScore F1 / UMLS-F1 added where the task reports them and they can run here."""
    pairs = list(zip(outputs, references, strict=True))

    def texts(prepare: Callable[[str, str, object], tuple[str, str]]) -> extras.TextPairs:
        def build() -> tuple[Sequence[str], Sequence[str]]:
            predictions, targets = zip(*(prepare(task, out, ref) for out, ref in pairs), strict=True)
            return predictions, targets

        return build

    return extras.add_extras(
        task, items, {extras.BERTSCORE: texts(prepare), extras.UMLS: texts(prepare_for_umls)}
    )


def item_metrics(task: str) -> tuple[str, ...]:
    """The paper metrics as named on single items (LongHealth items carry plain ``accuracy``)."""
    return _task(task).per_item_metrics


def paper_metrics(task: str) -> tuple[str, ...]:
    """The metric names the paper reports for ``task`` (what the Level averages use); for a task beyond
    the paper, what its module reports."""
    return _task(task).metrics


def aggregate(task: str, items: Sequence[ScoredItem] | RunningMeans) -> TaskScore:
    """Means of the per-item metrics over all items (each item counted once), plus ``format_adherence``
    = % of items the strict parser accepted. ``items``: the scored items, or their ``RunningMeans`` (a run
    scored in batches)."""
    _task(task)
    expected = item_metrics(task)
    n = items.n if isinstance(items, RunningMeans) else len(items)
    if not n:
        return TaskScore(n=0, metrics={}, missing=expected, notes=("no items to score",))
    metrics, notes = mean_metrics(items)
    missing = tuple(name for name in expected if name not in metrics)
    notes.extend(extras.missing_notes(task, missing))
    return TaskScore(n=n, metrics=metrics, missing=missing, notes=tuple(notes))


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
        metrics |= {subtask_metric(subtask, name): value for name, value in part.metrics.items()}
        notes.extend(f"{subtask}: {note}" for note in part.notes)
        n += part.n
        valid += sum(item.strict_valid for item in items)
    if n:
        metrics[FORMAT_ADHERENCE] = 100.0 * valid / n
    missing = tuple(name for name in paper_metrics(task) if name not in metrics)
    if not spec.subtasks:
        missing = tuple(
            subtask_metric(subtask, name)
            for subtask in sorted(groups)
            for name in item_metrics(task)
            if subtask_metric(subtask, name) not in metrics
        )
    return TaskScore(n=n, metrics=metrics, missing=missing, notes=tuple(notes))


def as_answer_text(task: str, output: str) -> str:
    """The paper-format text of a structured answer, or ``output`` unchanged when it does not validate (or
    the task has no structured form)."""
    to_text = get_def(task).structured
    if to_text is None:
        return output
    try:
        return to_text(output)
    except ValueError:  # pydantic's ValidationError included
        return output


def _pair(task: str, output: str, reference: object, pair: TextPair | None) -> tuple[str, str]:
    if pair is None:
        raise ValueError(f"{task} has no text to compare with a reference text")
    return pair(get_def(task).cleaned(output), reference)


def prepare(task: str, output: str, reference: object) -> tuple[str, str]:
    """The BERTScore pair of ``task`` (``TaskDef.text_pair``) for a raw output: cleaned first."""
    return _pair(task, output, reference, get_def(task).text_pair)


def prepare_for_umls(task: str, output: str, reference: object) -> tuple[str, str]:
    """The UMLS-F1 pair of ``task`` (``TaskDef.umls_pair``) for a raw output: cleaned first."""
    return _pair(task, output, reference, get_def(task).umls_pair)
