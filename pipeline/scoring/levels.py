"""The paper's Level-1 / Level-2 aggregation.

Level score = mean over the level's tasks of (mean of that task's reported metrics); every metric on a
0–100 scale. Worked out from the CLUE results site and pinned by tests/scoring/test_levels.py against
every published model."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.errors import ConfigError
from pipeline.scoring.metrics import find
from pipeline.scoring.settings import clue_settings
from pipeline.scoring.types import LevelScores

LEVELS = (1, 2)  # the paper's Level-1 and Level-2 (``clue.toml [levels]`` level1, level2)


def level_tasks(level: int) -> tuple[str, ...]:
    """The tasks Level ``level`` averages (``clue.toml [levels]``)."""
    return tuple(clue_settings().levels.get(f"level{level}", ()))


def level_metrics(task: str) -> tuple[str, ...]:
    """The metrics a Level averages for ``task`` (``clue.toml [paper_metrics]``), each checked against its
    declaration (``metrics.toml``): the formula averages means of one scale where higher is better."""
    names = clue_settings().paper_metrics[task]
    for name in names:
        declared = find(name)
        if declared is None or not declared.higher_is_better or declared.scale != (0, 100):
            what = "is not declared" if declared is None else "is not declared higher-is-better on [0, 100]"
            raise ConfigError(
                f"pipeline/scoring/clue.toml: [paper_metrics] {task}: {name!r} {what} in "
                "pipeline/scoring/metrics.toml, and the Levels average it"
            )
    return names


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _level(
    tasks: tuple[str, ...],
    task_metrics: Mapping[str, Mapping[str, float]],
    used: dict[str, tuple[str, ...]],
    missing: list[str],
) -> tuple[float | None, float | None]:
    task_means: list[float] = []
    complete = True
    for task in tasks:
        given = task_metrics.get(task, {})
        names = level_metrics(task)
        present = tuple(name for name in names if name in given)
        absent = [f"{task}.{name}" for name in names if name not in given]
        missing.extend(absent)
        complete = complete and not absent
        if present:
            used[task] = present
            task_means.append(_mean([float(given[name]) for name in present]))
    full = _mean(task_means) if complete else None
    partial = _mean(task_means) if task_means else None
    return full, partial


def level_scores(task_metrics: Mapping[str, Mapping[str, float]]) -> LevelScores:
    """Level-1 and Level-2 from per-task metric means keyed by task and ``clue.toml [paper_metrics]`` name
    (LongHealth: ``task1_accuracy``, ``task2_accuracy``, ``task3_accuracy``). A level is ``None`` unless
    every metric it averages is present; the ``*_partial`` values average what is present."""
    used: dict[str, tuple[str, ...]] = {}
    missing: list[str] = []
    level1, level1_partial = _level(level_tasks(1), task_metrics, used, missing)
    level2, level2_partial = _level(level_tasks(2), task_metrics, used, missing)
    return LevelScores(
        level1=level1,
        level2=level2,
        level1_partial=level1_partial,
        level2_partial=level2_partial,
        used=used,
        missing=tuple(missing),
    )
