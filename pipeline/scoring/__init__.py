"""Task-agnostic scoring: the parsers, metric functions, metric declarations (``metrics.toml``), task means
and the paper's Level-1/Level-2 aggregation that task modules build their scorers from. Nothing here
imports ``pipeline.tasks``: a task declares its scorer and metrics in its module, and
``pipeline.tasks.scores`` scores a registered task by name. The CLUE tasks are scored exactly as the paper
defines them (see docs/fidelity.md for every deviation from the official code).

Every metric, its name (a contract) and its scale are declared in ``metrics.toml``; lenient readings add
``_lenient`` to the name, and task means add ``format_adherence``."""

from pipeline.scoring.levels import level_scores
from pipeline.scoring.metrics import FORMAT_ADHERENCE
from pipeline.scoring.types import LevelScores, ScoredItem, TaskScore

__all__ = ["FORMAT_ADHERENCE", "LevelScores", "ScoredItem", "TaskScore", "level_scores"]
