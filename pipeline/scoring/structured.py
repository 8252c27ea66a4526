"""The structured-output variant: JSON answers (``response_format``) rendered as the paper's answer text.

A closed-answer task run with its JSON schema answers ``{"label": ...}``, ``{"answer": ...}`` or
``{"codes": [...]}``. Turning a valid answer into the text the paper's parser reads keeps one scorer for both
variants; an answer that is not valid JSON of the schema is left as it is, so the strict parser rejects it
and it counts against format adherence. The two variants are stored apart and never pooled.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

STRUCTURED_TASKS = frozenset({"mednli", "longhealth", "medisumcode"})


class _Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str


class _Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str


class _Codes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codes: list[str]


def as_answer_text(task: str, output: str) -> str:
    """The paper-format text of a structured answer, or ``output`` unchanged when it does not validate."""
    try:
        if task == "mednli":
            return _Label.model_validate_json(output).label
        if task == "longhealth":
            return f"The correct answer is {_Choice.model_validate_json(output).answer}:"
        if task == "medisumcode":
            return ", ".join(_Codes.model_validate_json(output).codes)
    except ValidationError:
        return output
    return output
