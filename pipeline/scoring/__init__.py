"""Task-agnostic scoring: the parsers, metric functions, metric declarations (``metrics.toml``), task means
and the paper's Level-1/Level-2 aggregation that task modules build their scorers from. Nothing here
imports ``pipeline.tasks``: a task declares its scorer and metrics in its module, and
``pipeline.tasks.scores`` scores a registered task by name. The CLUE tasks are scored exactly as the paper
defines them (see docs/fidelity.md for every deviation from the official code).

Per-item values are on a 0–100 scale; paper metrics use the contract names (``accuracy``, ``rouge1``,
``rouge2``, ``rougeL``, ``bertscore_f1``, ``umls_f1``, ``icd_em_f1``, ``icd_ap_f1``, ``icd_valid``),
lenient readings add ``_lenient``, and task means add ``format_adherence``."""

from pipeline.scoring.levels import level_scores
from pipeline.scoring.metrics import FORMAT_ADHERENCE
from pipeline.scoring.types import LevelScores, ScoredItem, TaskScore

__all__ = ["FORMAT_ADHERENCE", "LevelScores", "ScoredItem", "TaskScore", "level_scores"]
