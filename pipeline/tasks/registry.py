"""The task registry: each task is one module of ``pipeline/tasks/defs/`` that calls ``register`` once with
its ``TaskDef``. Every list of tasks (eval's default, ``data check``, ``score --task``, the scorers) is
``task_names()``; the modules are found, not listed, so adding a task is adding its module (see
docs/extending.md)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError
from pipeline.scoring.extras import BERTSCORE, UMLS, extra_metrics
from pipeline.scoring.metrics import find
from pipeline.scoring.settings import clue_settings
from pipeline.scoring.types import ScoredItem
from pipeline.tasks.base import DatasetTask

_DEFS = "pipeline.tasks.defs"

Scorer = Callable[[str, Any, str], ScoredItem]
"""``(output, reference, subtask) -> ScoredItem``: the task's strict and lenient parses and its per-item
metrics (0–100). Raises ``ValueError`` for an unusable reference."""

TextPair = Callable[[str, Any], tuple[str, str]]
"""``(output, reference) -> (prediction, reference)``: the texts a model-based metric compares."""


@dataclass(frozen=True, slots=True)
class TaskDef:
    """Everything medsweep knows about one task: how it builds requests, its scorer and the metrics it
    reports. Settings that are data stay in files: the prompts, the data file and where to get it in
    ``prompts/<name>.toml``; the study's metrics and levels in ``pipeline/scoring/clue.toml``; each metric's
    label, direction and scale in ``pipeline/scoring/metrics.toml``."""

    name: str
    order: int  # where the task is listed and run (the CLUE tasks in the paper's order)
    requests: DatasetTask  # reads the data file and turns rows into requests
    score: Scorer
    metrics: tuple[str, ...]  # what the task reports (a CLUE task: the paper's, from clue.toml)
    item_metrics: tuple[str, ...] = ()  # the metric names on one item, when they differ from ``metrics``
    subtasks: tuple[str, ...] = ()  # ``medsweep score`` defaults to the first
    clean: Callable[[str], str] | None = None  # output clean-up before any parsing (v3's)
    structured: Callable[[str], str] | None = None  # a JSON answer -> the text ``score`` parses
    text_pair: TextPair | None = None  # for BERTScore (a task clue.toml gives a BERTScore model)
    umls_pair: TextPair | None = None  # for UMLS-F1 (a task whose clue.toml [paper_metrics] has umls_f1)
    reference: str = ""  # what ``medsweep score`` takes as the reference (docs, errors)
    # Loads what the scorer reads on first use (ROUGE's tokenizer, the ICD-10 table); the eval calls it in a
    # thread while the server generates, so that scoring starts at once when the last answer is in.
    warm_up: Callable[[], object] | None = None

    @property
    def per_item_metrics(self) -> tuple[str, ...]:
        return self.item_metrics or self.metrics

    def cleaned(self, output: str) -> str:
        return self.clean(output) if self.clean is not None else output


_registry: dict[str, TaskDef] = {}
_state = {"loaded": False, "loading": False}


def register(task: TaskDef) -> TaskDef:
    """Add ``task``; called once, at the end of its module. A task that cannot be scored is refused here,
    so no task is ever scored by a fallback."""
    where = f"task {task.name!r} (pipeline/tasks/defs)"
    if not callable(task.score):
        raise ConfigError(f"{where} has no scorer: TaskDef.score must parse and score an output")
    if not task.metrics:
        raise ConfigError(f"{where} reports no metrics: TaskDef.metrics names them")
    if getattr(task.requests, "name", None) != task.name:
        raise ConfigError(f"{where}: its requests are named {getattr(task.requests, 'name', None)!r}")
    for name in (*task.metrics, *task.per_item_metrics):
        declared = find(name)
        if declared is None:
            raise ConfigError(
                f"{where} reports metric {name!r}, which is not declared; add its table to "
                "pipeline/scoring/metrics.toml"
            )
        # The task score of the report and the Levels average these: mixed directions make a meaningless mean.
        if not declared.higher_is_better:
            raise ConfigError(
                f"{where} reports metric {name!r}, declared lower-is-better; TaskDef.metrics are averaged "
                "into task and Level scores, so they must be higher-is-better (a scorer may still write it "
                "per item)"
            )
    optional = extra_metrics(task.name)
    if BERTSCORE in optional and task.text_pair is None:
        raise ConfigError(f"{where}: clue.toml gives it a BERTScore model, but it has no text_pair")
    if UMLS in optional and task.umls_pair is None:
        raise ConfigError(f"{where}: clue.toml lists it for UMLS-F1, but it has no umls_pair")
    if task.name in _registry:
        raise ConfigError(f"{where} is registered twice; task names are unique")
    _registry[task.name] = task
    return task


def _load() -> None:
    if _state["loaded"]:
        return
    if _state["loading"]:
        raise RuntimeError("a task module asked for the registry while the task modules are loading")
    _state["loading"] = True
    try:
        package = importlib.import_module(_DEFS)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{_DEFS}.{module.name}")
        _state["loaded"] = True
    finally:
        _state["loading"] = False


def task_names() -> tuple[str, ...]:
    """Every registered task, in ``order``."""
    _load()
    return tuple(sorted(_registry, key=lambda name: (_registry[name].order, name)))


def get_def(name: str) -> TaskDef:
    """The task called ``name``; ``ConfigError`` naming the choices for an unknown one."""
    _load()
    try:
        return _registry[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose from {', '.join(task_names())}") from None


def study_metrics(name: str) -> tuple[str, ...]:
    """The metrics the CLUE paper reports for ``name`` (``clue.toml [paper_metrics]``)."""
    return clue_settings().paper_metrics[name]
