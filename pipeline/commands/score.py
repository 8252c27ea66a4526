"""`medsweep score`: score a JSONL file of predictions against references with the paper's rules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DataError


class _TaskChoices:
    """The registered task names, looked up only when argparse checks or lists them: loading the task
    modules at start-up would slow every command (``medsweep --help`` included)."""

    def __contains__(self, name: object) -> bool:
        return name in _task_names()

    def __iter__(self) -> Iterator[str]:
        return iter(_task_names())


def _task_names() -> tuple[str, ...]:
    from pipeline.tasks.registry import task_names

    return task_names()


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "_TASKS":  # the choices of --task, as a tuple
        return _task_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "score",
        help="score a JSONL file of predictions with the paper's parsers and metrics",
        description=(
            'Each input line: {"id": str, "prediction": str, "reference": ...} (LongHealth may add '
            '"subtask": task1|task2|task3, default task1). The reference is the gold label (mednli), the '
            "gold letter (longhealth, medqa), the list of gold ICD-10 codes (medisumcode) or the reference "
            "text (docs/scoring.md says each task's)."
        ),
    )
    parser.add_argument(
        "--task",
        required=True,
        choices=_TaskChoices(),
        metavar="TASK",
        help="which task the file holds: %(choices)s",
    )
    parser.add_argument("--input", required=True, type=Path, metavar="FILE.jsonl", help="predictions")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--no-extras", action="store_true", help="skip BERTScore / UMLS-F1 even when they could run"
    )
    parser.set_defaults(handler=_run)


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    prediction: str
    reference: Any
    subtask: str


def _read(path: Path, task: str) -> list[_Line]:
    from pipeline.tasks.registry import get_def

    subtasks = get_def(task).subtasks
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the input file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    lines: list[_Line] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg}); write one JSON object per line") from exc
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object with id, prediction and reference")
        item_id = record.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise DataError(f"{where}: field 'id' must be a non-empty string")
        if item_id in seen:
            raise DataError(
                f"{where}: field 'id' {item_id!r} repeats line {seen[item_id]}; ids must be unique"
            )
        seen[item_id] = number
        if not isinstance(record.get("prediction"), str):
            raise DataError(f"{where}: field 'prediction' must be a string (the model output)")
        if "reference" not in record or record["reference"] is None:
            raise DataError(f"{where}: field 'reference' is missing")
        subtask = record.get("subtask", subtasks[0] if subtasks else "")
        if not isinstance(subtask, str):
            raise DataError(f"{where}: field 'subtask' must be a string")
        lines.append(_Line(number, record["prediction"], record["reference"], subtask))
    if not lines:
        raise DataError(f"{path}: no predictions found; expected one JSON object per line")
    return lines


def _score(path: Path, task: str, lines: list[_Line], extras: bool) -> Any:
    from pipeline.tasks.registry import get_def
    from pipeline.tasks.scores import add_extras, aggregate, aggregate_by_subtask, score_item

    items = []
    for line in lines:  # one item at a time, so that an error names its line
        try:
            items.append(score_item(task, line.prediction, line.reference, subtask=line.subtask))
        except DataError as exc:
            raise DataError(f"{path}:{line.number}: {exc}") from exc
    if extras:
        outputs, references = [line.prediction for line in lines], [line.reference for line in lines]
        items = add_extras(task, outputs, references, items)
    if not get_def(task).subtasks:
        return aggregate(task, items)
    groups: dict[str, list[Any]] = {}
    for line, item in zip(lines, items, strict=True):
        groups.setdefault(line.subtask, []).append(item)
    return aggregate_by_subtask(task, groups)


def _run(args: argparse.Namespace) -> int:
    lines = _read(args.input, args.task)
    result = _score(args.input, args.task, lines, extras=not args.no_extras)
    if args.json:
        payload = {
            "task": args.task,
            "n": result.n,
            "metrics": result.metrics,
            "missing": list(result.missing),
            "notes": list(result.notes),
        }
        print(json.dumps(payload, sort_keys=False))
        return 0
    _print_table(args.task, result)
    return 0


def _print_table(task: str, result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{task} — {result.n} items (0–100)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.metrics.items():
        table.add_row(name, f"{value:.2f}")
    for name in result.missing:
        table.add_row(name, "missing")
    console = Console()
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
