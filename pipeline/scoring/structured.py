"""The structured-output variant: JSON answers (``response_format``) rendered as the paper's answer text.

A closed-answer task run with its JSON schema answers ``{"label": ...}``, ``{"answer": ...}`` or
``{"codes": [...]}``. Its task module turns a valid answer into the text the paper's parser reads
(``TaskDef.structured``), which keeps one scorer for both variants; an answer that is not valid JSON of the
schema is left as it is, so the strict parser rejects it and it counts against format adherence. The two
variants are stored apart and never pooled.
"""

from __future__ import annotations


def as_answer_text(task: str, output: str) -> str:
    """The paper-format text of a structured answer, or ``output`` unchanged when it does not validate (or
    the task has no structured form)."""
    from pipeline.tasks.registry import get_def

    to_text = get_def(task).structured
    if to_text is None:
        return output
    try:
        return to_text(output)
    except ValueError:  # pydantic's ValidationError included
        return output
