"""Natural-language-inference labels in free text: counts of each label as the CLUE paper counted them, and a
lenient first-label reading."""

from __future__ import annotations

import re

from pipeline.scoring.answers import NLI_LABELS, NliLabel

# Lenient: a label word (or its verb/adjective form) as a whole word, any case.
_LENIENT = re.compile(r"\b(entail\w*|neutral\w*|contradict\w*)\b", re.IGNORECASE)
_STEMS: dict[str, NliLabel] = {"entail": "entailment", "neutral": "neutral", "contradict": "contradiction"}


def gold_label(reference: object, task: str) -> NliLabel:
    """The gold label as one of the three lower-case labels; ``ValueError`` naming ``task`` otherwise."""
    label = str(reference).strip().lower()
    for known in NLI_LABELS:
        if label == known:
            return known
    raise ValueError(f"{task} reference must be one of {', '.join(NLI_LABELS)}, got {reference!r}")


def label_counts(output: str) -> dict[NliLabel, int]:
    """How often each label occurs in ``output``, any case, anywhere (no word boundaries)."""
    # The paper upper-cases both sides and counts non-overlapping occurrences anywhere; the labels contain
    # no regex metacharacters, so a plain substring count is the same.
    upper = output.upper()
    return {label: upper.count(label.upper()) for label in NLI_LABELS}


def lenient_label(output: str) -> NliLabel | None:
    """The first label word (or its verb/adjective form) in ``output``, any case; None if there is none."""
    match = _LENIENT.search(output)
    if match is None:
        return None
    word = match.group(1).lower()
    return next(label for stem, label in _STEMS.items() if word.startswith(stem))
