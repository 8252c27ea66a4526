"""The six CLUE tasks. The engine uses ``TASK_NAMES``, ``get_task(name)`` and the ``Task`` protocol
(``pipeline.tasks.base``); ``check_data`` backs ``medsweep data check``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import ConfigError, DataError
from pipeline.paths import DEMO_DATA_DIR
from pipeline.tasks.base import Task
from pipeline.tasks.fewshot import FewShotTask
from pipeline.tasks.items import medisumcode_items, medisumqa_items, mednli_items, meqsum_items, probsum_items
from pipeline.tasks.longhealth import LongHealthTask

TASK_NAMES: tuple[str, ...] = ("mednli", "meqsum", "probsum", "longhealth", "medisumqa", "medisumcode")

_TASKS: dict[str, FewShotTask | LongHealthTask] = {
    "mednli": FewShotTask("mednli", 1, mednli_items),
    "meqsum": FewShotTask("meqsum", 1, meqsum_items),
    "probsum": FewShotTask("probsum", 1, probsum_items),
    "longhealth": LongHealthTask(),
    "medisumqa": FewShotTask("medisumqa", 2, medisumqa_items),
    "medisumcode": FewShotTask("medisumcode", 2, medisumcode_items),
}


def get_task(name: str) -> Task:
    return _get(name)


def _get(name: str) -> FewShotTask | LongHealthTask:
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose from {', '.join(TASK_NAMES)}") from None


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
    task = _get(name)
    path = task.data_path(data_dir)
    try:
        rows = task.rows(data_dir)
    except DataError as exc:
        state: DataState = "missing" if not path.is_file() else "malformed"
        return DataCheck(name, path, state, 0, str(exc))
    return DataCheck(name, path, "ok", rows)


DATA_DIR = Path("data")


def default_data_dir() -> Path:
    """``data/`` where it exists, else the synthetic ``demo_data/``: what eval and data check read."""
    return DATA_DIR if DATA_DIR.is_dir() or not DEMO_DATA_DIR.is_dir() else DEMO_DATA_DIR
