"""Free-text tasks (MeQSum, ProbSum, MeDiSumQA): the text as the v3 code scored it, and per-item ROUGE."""

from __future__ import annotations

from functools import lru_cache

from rouge_score import rouge_scorer

from pipeline.scoring.answers import SummaryAnswer, is_valid
from pipeline.scoring.cleanup import clean_output
from pipeline.scoring.types import ScoredItem

SUMMARY_TASKS: tuple[str, ...] = ("meqsum", "probsum", "medisumqa")
ROUGE_METRICS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")


def prepare(task: str, output: str, reference: object) -> tuple[str, str]:
    """The (prediction, reference) pair exactly as v3 compared them for ROUGE and BERTScore."""
    prediction, target = prepare_for_umls(task, output, reference)
    if task == "probsum":
        # v3: "capitalization is not uniform in the dataset", so both sides were lower-cased.
        return prediction.lower(), target.lower()
    return prediction, target


def prepare_for_umls(task: str, output: str, reference: object) -> tuple[str, str]:
    """The pair for UMLS-F1: as ``prepare`` but without ProbSum's lower-casing, which v3 applied to ROUGE
    and BERTScore only (see docs/fidelity.md)."""
    if not isinstance(reference, str):
        raise ValueError(f"{task} reference must be the reference text, got {type(reference).__name__}")
    prediction = clean_output(task, output)
    if task == "medisumqa":
        return prediction.strip(), reference
    return prediction, reference


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    # As evaluate's "rouge" metric calls it: no stemmer, the default tokenizer.
    return rouge_scorer.RougeScorer(list(ROUGE_METRICS), use_stemmer=False)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (0–100) of one prediction against one reference."""
    scores = _scorer().score(reference, prediction)
    return {name: 100.0 * scores[name].fmeasure for name in ROUGE_METRICS}


def score(task: str, output: str, reference: object) -> ScoredItem:
    prediction, target = prepare(task, output, reference)
    # Adherence for free text: something was written (the prompts ask for text, not a format).
    valid = is_valid(SummaryAnswer, text=prediction.strip())
    return ScoredItem(parsed={"text": prediction}, strict_valid=valid, metrics=rouge(prediction, target))
