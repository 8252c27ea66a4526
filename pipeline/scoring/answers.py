"""Pydantic models of the parsed answers: what a strict parser must produce for an output to count as
following the requested format (``ScoredItem.strict_valid``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

NliLabel = Literal["entailment", "neutral", "contradiction"]
NLI_LABELS: tuple[NliLabel, ...] = ("entailment", "neutral", "contradiction")

OptionLetter = Literal["A", "B", "C", "D", "E", "F"]

# A dot-free ICD-10 code as the paper's regex admits it (U codes excluded).
IcdCode = Annotated[str, StringConstraints(pattern=r"^[A-TV-Z][0-9]{2}[0-9A-Z]{0,4}$")]


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class NliAnswer(_Answer):
    label: NliLabel


class ChoiceAnswer(_Answer):
    letter: OptionLetter


class IcdAnswer(_Answer):
    codes: Annotated[list[IcdCode], Field(min_length=1)]


class SummaryAnswer(_Answer):
    text: Annotated[str, StringConstraints(min_length=1)]


def is_valid(model: type[_Answer], **fields: object) -> bool:
    """Whether ``fields`` form a valid ``model`` answer."""
    try:
        model.model_validate(fields)
    except ValidationError:
        return False
    return True
