"""The tasks' requests. The eval loop uses ``task_names()``, ``get_task(name)`` and the ``Task`` protocol
(``pipeline.tasks.base``); ``check_data`` backs ``medsweep data check``. Each task is one module (or
package) of ``pipeline/tasks/defs/``, found by ``pipeline.tasks.registry``; ``pipeline.tasks.scores``
scores a task by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import DataError
from pipeline.tasks.base import Task
from pipeline.tasks.registry import get_def, task_names

__all__ = ["DataCheck", "check_data", "get_task", "task_names"]


def get_task(name: str) -> Task:
    """The request side of task ``name``; ``ConfigError`` naming the choices for an unknown one."""
    return get_def(name).requests


DataState = Literal["ok", "missing", "malformed"]


@dataclass(frozen=True, slots=True)
class DataCheck:
    task: str
    path: Path
    state: DataState
    rows: int
    reason: str = ""


def check_data(name: str, data_dir: Path) -> DataCheck:
    """Whether ``name``'s dataset is under ``data_dir`` and loads; ``rows`` counts the dataset's rows
    (LongHealth: questions)."""
    task = get_def(name).requests
    path = task.data_path(data_dir)
    try:
        rows = task.rows(data_dir)
    except DataError as exc:
        state: DataState = "missing" if not path.is_file() else "malformed"
        return DataCheck(name, path, state, 0, str(exc))
    return DataCheck(name, path, "ok", rows)
