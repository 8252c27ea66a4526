"""Multiple-choice answers (LongHealth, MedQA): the gold reference, the lenient reading of an option letter,
and the structured variant's ``{"answer": "C"}``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

# Lenient prefixes before the letter, tried in order. A lower-case letter only counts when punctuation
# or the end follows it, so that "the answer is a fracture" is not read as option A.
_LENIENT_PREFIXES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(prefix + r"\(?([A-Fa-f])\)?([:.),]|\s|$)", re.IGNORECASE)
    for prefix in (
        r"answer\s+is\s*:?\s*(?:option\s+)?",
        r"answer\s*:\s*(?:option\s+)?",
        r"^\s*(?:option\s+)?",
        r"\boption\s+",
    )
)
_PARENTHESISED = re.compile(r"\(([A-Fa-f])\)")


def lenient_choice(output: str, strict: str, letters: str, options: Mapping[str, str]) -> str | None:
    """The lenient reading of a multiple-choice answer among ``letters``: ``strict`` (the strict parse's
    capture) in any case; else a letter after "answer is", "answer:", at the start or after "option";
    else the one letter in brackets; else the one option whose text the output contains (``options``:
    letter -> text)."""
    upper = strict.upper()
    if upper and upper in letters:
        return upper
    for pattern in _LENIENT_PREFIXES:
        for match in pattern.finditer(output):
            letter, after = str(match.group(1)), str(match.group(2))
            if letter.islower() and after.isspace():
                continue
            if letter.upper() in letters:
                return letter.upper()
    in_brackets = {str(m).upper() for m in _PARENTHESISED.findall(output)} & set(letters)
    if len(in_brackets) == 1:
        return in_brackets.pop()
    return option_text_choice(output, letters, options)


def option_text_choice(output: str, letters: str, options: Mapping[str, str]) -> str | None:
    text = output.casefold()
    found = {
        letter: option.casefold().strip().rstrip(".")
        for letter, option in options.items()
        if letter in letters and option.strip() and option.casefold().strip().rstrip(".") in text
    }
    # An option contained in a longer matched option ("Diabetes" in "Diabetes type 2") does not count.
    maximal = [
        letter
        for letter, option in found.items()
        if not any(option != other and option in other for other in found.values())
    ]
    return maximal[0] if len(maximal) == 1 else None


@dataclass(frozen=True, slots=True)
class Gold:
    letter: str
    options: dict[str, str]


def gold_choice(reference: object, letters: str, task: str, what: str = "") -> Gold:
    """The gold letter (upper case) and option texts of a reference, ``"C"`` or ``{"answer": "C",
    "options": {...}}``; ``ValueError`` naming ``task`` (and ``what``: a sub-task) if unusable."""
    options: dict[str, str] = {}
    if isinstance(reference, Mapping):
        raw_options = reference.get("options", {})
        if not isinstance(raw_options, Mapping):
            raise ValueError(f"{task} reference 'options' must map letters to option texts")
        options = {str(k).strip().upper(): str(v) for k, v in raw_options.items()}
        reference = reference.get("answer")
    letter = str(reference).strip().upper() if isinstance(reference, str) else ""
    if len(letter) != 1 or letter not in letters:
        name = f"{task} {what}" if what else task
        raise ValueError(f"{name} gold must be one letter of {letters}, got {reference!r}")
    return Gold(letter, options)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str


def json_answer(output: str) -> str:
    """The letter of a structured answer ``{"answer": "C"}``; pydantic's ``ValidationError`` otherwise."""
    return _Answer.model_validate_json(output).answer
