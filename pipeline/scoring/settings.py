"""The study's scoring settings, read from ``clue.toml`` next to this module."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from pipeline.errors import ConfigError

BERTSCORE = "bertscore_f1"
UMLS = "umls_f1"


@dataclass(frozen=True, slots=True)
class BertScoreSetting:
    model: str
    layer: int


@dataclass(frozen=True, slots=True)
class ClueSettings:
    levels: dict[str, tuple[str, ...]]
    paper_metrics: dict[str, tuple[str, ...]]
    bertscore: dict[str, BertScoreSetting]
    umls_spacy_model: str
    umls_linker: str


@lru_cache(maxsize=1)
def clue_settings() -> ClueSettings:
    raw: dict[str, Any] = tomllib.loads(resources.files("pipeline.scoring").joinpath("clue.toml").read_text())
    settings = ClueSettings(
        levels={name: tuple(tasks) for name, tasks in raw["levels"].items()},
        paper_metrics={task: tuple(names) for task, names in raw["paper_metrics"].items()},
        bertscore={
            task: BertScoreSetting(str(entry["model"]), int(entry["layer"]))
            for task, entry in raw["bertscore"].items()
        },
        umls_spacy_model=str(raw["umls"]["spacy_model"]),
        umls_linker=str(raw["umls"]["linker"]),
    )
    # Which tasks get BERTScore is [paper_metrics]; [bertscore.<task>] only says with which model.
    with_bertscore = {task for task, names in settings.paper_metrics.items() if BERTSCORE in names}
    for task in with_bertscore ^ set(settings.bertscore):
        where = "has no [bertscore.{0}] table" if task in with_bertscore else "has [bertscore.{0}] but no"
        raise ConfigError(
            f"pipeline/scoring/clue.toml: {task} {where.format(task)} {BERTSCORE} in [paper_metrics]; "
            "give each task that reports BERTScore its model, and only those"
        )
    return settings
