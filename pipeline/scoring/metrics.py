"""The metric declarations: name, label, meaning, direction and scale of every metric, read from
``metrics.toml`` next to this module (one table per metric). The paper's choices (which task reports which
metric, and the Levels) stay in ``clue.toml``; ``paper_use`` joins the two.

Adding a metric is its table in ``metrics.toml``, the function that computes it (a scorer puts it in
``ScoredItem.metrics``) and a test. The eval summary takes its labels and column order from here,
``register`` refuses an undeclared metric (and a lower-is-better one among the averaged ``TaskDef.metrics``),
and the report reads the direction (``pipeline.report.spec``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from pipeline.errors import ConfigError
from pipeline.scoring.settings import clue_settings

FORMAT_ADHERENCE = "format_adherence"
LENIENT = "_lenient"  # the suffix of a metric's lenient reading
_FILE = "pipeline/scoring/metrics.toml"


@dataclass(frozen=True, slots=True)
class Metric:
    """One declared metric. Every value (per item, and the mean over items) lies in ``scale``."""

    name: str
    label: str  # the eval summary's short label
    about: str  # what one item's value means
    better: Literal["higher", "lower"]
    scale: tuple[float, float]
    gpu: bool = False  # computing it runs a model on a GPU when one is visible (a sweep scores it first)

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    def in_scale(self, value: float) -> bool:
        return self.scale[0] <= value <= self.scale[1]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Annotated[str, StringConstraints(min_length=1)]
    about: Annotated[str, StringConstraints(min_length=1)]
    better: Literal["higher", "lower"]
    scale: Annotated[tuple[float, float], Field()]
    gpu: bool = False


@lru_cache(maxsize=1)
def declared() -> dict[str, Metric]:
    """Every declared metric by name, in the file's order (the eval summary's column order)."""
    text = resources.files("pipeline.scoring").joinpath("metrics.toml").read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_FILE}: not valid TOML ({exc}); restore it from the repository") from None
    out: dict[str, Metric] = {}
    for name, table in raw.items():
        try:
            entry = _Entry.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(table)"
            raise ConfigError(
                f"{_FILE}: [{name}] field '{field}': {first['msg']}; each metric needs label, about, "
                'better ("higher" or "lower") and scale = [lowest, highest]'
            ) from None
        if entry.scale[0] >= entry.scale[1]:
            raise ConfigError(f"{_FILE}: [{name}] field 'scale': lowest must be below highest")
        out[name] = Metric(name, entry.label, entry.about, entry.better, entry.scale, entry.gpu)
    return out


def subtask_metric(subtask: str, name: str) -> str:
    """How a sub-task's mean of ``name`` is named (LongHealth: ``task1_accuracy``); ``name`` without one."""
    return f"{subtask}_{name}" if subtask else name


def find(name: str) -> Metric | None:
    """The declaration of ``name``, its lenient reading (``<name>_lenient``) or a sub-task's
    (``<subtask>_<name>``, LongHealth's ``task1_accuracy``); None when nothing declares it."""
    catalogue = declared()
    if name in catalogue:
        return catalogue[name]
    if name.endswith(LENIENT):
        return find(name.removesuffix(LENIENT))
    _, sep, rest = name.partition("_")
    return find(rest) if sep and rest else None


def metric(name: str) -> Metric:
    """``find`` for a name that must be declared; ``ConfigError`` naming the file otherwise."""
    found = find(name)
    if found is None:
        raise ConfigError(f"metric {name!r} is not declared; add its table to {_FILE}")
    return found


def label(name: str) -> str:
    """The eval summary's label of a declared metric."""
    return metric(name).label


def paper_use(name: str) -> dict[str, int | None]:
    """Where the paper reports ``name`` (a declared metric): task -> the Level that averages it there
    (``None``: the paper reports it for that task outside the Levels). From ``clue.toml``."""
    settings = clue_settings()
    wanted = metric(name)
    level_of = {
        task: int(level.removeprefix("level")) for level, tasks in settings.levels.items() for task in tasks
    }
    return {
        task: level_of.get(task)
        for task, names in settings.paper_metrics.items()
        if any(find(reported) == wanted for reported in names)
    }
