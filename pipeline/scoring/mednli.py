"""MedNLI: the paper's label-count rule and a lenient first-label reading."""

from __future__ import annotations

import re

from pipeline.scoring.answers import NLI_LABELS, NliAnswer, NliLabel, is_valid
from pipeline.scoring.types import ScoredItem

# Lenient: a label word (or its verb/adjective form) as a whole word, any case.
_LENIENT = re.compile(r"\b(entail\w*|neutral\w*|contradict\w*)\b", re.IGNORECASE)
_STEMS: dict[str, NliLabel] = {"entail": "entailment", "neutral": "neutral", "contradict": "contradiction"}


def normalise_gold(reference: object) -> NliLabel:
    """The gold label as one of the three lower-case labels; ``ValueError`` otherwise."""
    label = str(reference).strip().lower()
    for known in NLI_LABELS:
        if label == known:
            return known
    raise ValueError(f"MedNLI reference must be one of {', '.join(NLI_LABELS)}, got {reference!r}")


def _label_counts(output: str) -> dict[NliLabel, int]:
    # The paper upper-cases both sides and counts non-overlapping occurrences anywhere (no word
    # boundaries); the labels contain no regex metacharacters, so a plain substring count is the same.
    upper = output.upper()
    return {label: upper.count(label.upper()) for label in NLI_LABELS}


def _lenient_label(output: str) -> NliLabel | None:
    match = _LENIENT.search(output)
    if match is None:
        return None
    word = match.group(1).lower()
    return next(label for stem, label in _STEMS.items() if word.startswith(stem))


def score(output: str, reference: object, subtask: str = "") -> ScoredItem:
    """``output`` as cleaned by the task (``TaskDef.clean``); no sub-tasks."""
    gold = normalise_gold(reference)
    counts = _label_counts(output)
    # Paper rule: correct iff the gold label occurs exactly once, whatever else the output says.
    correct = counts[gold] == 1
    # Adherence: the output names exactly one label, once (the prompt's "Valid answers are: ...").
    named = [label for label, count in counts.items() if count > 0]
    strict_label = named[0] if len(named) == 1 and counts[named[0]] == 1 else None
    valid = strict_label is not None and is_valid(NliAnswer, label=strict_label)
    lenient = _lenient_label(output)
    return ScoredItem(
        parsed={"strict": strict_label, "lenient": lenient},
        strict_valid=valid,
        metrics={
            "accuracy": 100.0 if correct else 0.0,
            "accuracy_lenient": 100.0 if lenient == gold else 0.0,
        },
    )
