"""Output clean-up the v3 code applied before parsing (see docs/fidelity.md); a task names it as its
``TaskDef.clean``."""

from __future__ import annotations

import re

# v3 removed a model's continuation into a new turn from MedNLI, MeQSum, ProbSum and MeDiSumCode outputs.
# "." does not match a newline, so only the rest of that line goes (as in v3).
_SELF_CONTINUATION = re.compile(r"(You are an AI.*)|(\[INST\].*)|((<\|user\|>).*)")


def strip_continuation(output: str) -> str:
    """``output`` without v3's self-continuation patterns (the rest of the line after each)."""
    return _SELF_CONTINUATION.sub("", output)
