"""Output clean-up the v3 code applied before parsing (see docs/fidelity.md)."""

from __future__ import annotations

import re

# v3 removed a model's continuation into a new turn from MedNLI, MeQSum, ProbSum and MeDiSumCode outputs.
# "." does not match a newline, so only the rest of that line goes (as in v3).
_SELF_CONTINUATION = re.compile(r"(You are an AI.*)|(\[INST\].*)|((<\|user\|>).*)")
CONTINUATION_TASKS: frozenset[str] = frozenset({"mednli", "meqsum", "probsum", "medisumcode"})


def clean_output(task: str, output: str) -> str:
    """``output`` with v3's self-continuation removal applied where v3 applied it."""
    return _SELF_CONTINUATION.sub("", output) if task in CONTINUATION_TASKS else output
