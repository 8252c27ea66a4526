"""Free-text tasks (MeQSum, ProbSum, MeDiSumQA): the text as the v3 code scored it, and per-item ROUGE.

Each such task says how v3 read its text (``SummaryText``: lower-cased, stripped) in its task module, whose
``TaskDef.score`` is then ``SummaryText(...).score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pipeline.scoring.answers import SummaryAnswer, is_valid
from pipeline.scoring.types import ScoredItem

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

ROUGE_METRICS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True, slots=True)
class SummaryText:
    """How v3 compared a free-text answer with its reference. Outputs arrive cleaned (``TaskDef.clean``)."""

    lower: bool = False  # ROUGE and BERTScore on lower-cased text (ProbSum: "capitalization is not uniform")
    strip: bool = False  # the prediction stripped (MeDiSumQA)

    def for_umls(self, output: str, reference: Any) -> tuple[str, str]:
        """The pair for UMLS-F1: as ``pair`` but never lower-cased (v3 lower-cased for ROUGE and BERTScore
        only; see docs/fidelity.md)."""
        if not isinstance(reference, str):
            raise ValueError(f"the reference must be the reference text, got {type(reference).__name__}")
        return (output.strip() if self.strip else output), reference

    def pair(self, output: str, reference: Any) -> tuple[str, str]:
        """The (prediction, reference) pair exactly as v3 compared them for ROUGE and BERTScore."""
        prediction, target = self.for_umls(output, reference)
        return (prediction.lower(), target.lower()) if self.lower else (prediction, target)

    def warm_up(self) -> None:
        """Load ROUGE (its import takes 0.15 s: nltk) before the first score."""
        _scorer()

    def score(self, output: str, reference: Any, subtask: str = "") -> ScoredItem:
        prediction, target = self.pair(output, reference)
        # Adherence for free text: something was written (the prompts ask for text, not a format).
        valid = is_valid(SummaryAnswer, text=prediction.strip())
        return ScoredItem(parsed={"text": prediction}, strict_valid=valid, metrics=rouge(prediction, target))


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    from rouge_score import rouge_scorer  # loaded on first use: the CLI's registry stays light

    # As evaluate's "rouge" metric calls it: no stemmer, the default tokenizer.
    return rouge_scorer.RougeScorer(list(ROUGE_METRICS), use_stemmer=False)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (0–100) of one prediction against one reference."""
    scores = _scorer().score(reference, prediction)
    return {name: 100.0 * scores[name].fmeasure for name in ROUGE_METRICS}
