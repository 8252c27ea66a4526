"""A reasoning model's no-answer rate and trace lengths, per model and task (declared in metrics.toml).

A no-answer (the budget ran out inside the trace: ``pipeline.store.schema.NO_ANSWER``) is scored as a wrong
answer like any other; these numbers say how much of a score is that, and how long the traces ran. Trace
lengths are the server's counts (vLLM reports them when it runs a reasoning parser, though not for a trace
its prompt opened) or, for a no-answer, its generated tokens (pipeline.evaluation.client); replies without a
count are left out of the percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NO_ANSWER = "no_answer"
TRACE_P50 = "reasoning_tokens_p50"
TRACE_P95 = "reasoning_tokens_p95"
TRACE_METRICS: tuple[str, ...] = (NO_ANSWER, TRACE_P50, TRACE_P95)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest ranks (numpy's
    default); ``values`` must not be empty."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class TraceTally:
    """Running counts over one model x task's succeeded replies: scoring holds these, not the replies."""

    def __init__(self) -> None:
        self.n = self.traced = self.no_answers = 0
        self.tokens: list[int] = []  # only replies whose trace length the server counted

    def add(self, traced: bool, no_answer: bool, reasoning_tokens: int | None) -> None:
        self.n += 1
        self.traced += traced
        self.no_answers += no_answer
        if reasoning_tokens is not None:
            self.tokens.append(reasoning_tokens)

    def stats(self) -> dict[str, float]:
        """``{no_answer: % of replies, reasoning_tokens_p50, reasoning_tokens_p95}``; empty when no reply
        has a trace (a model that does not reason shows nothing)."""
        if not self.traced:
            return {}
        stats = {NO_ANSWER: 100.0 * self.no_answers / self.n}
        if self.tokens:
            stats |= {TRACE_P50: percentile(self.tokens, 50), TRACE_P95: percentile(self.tokens, 95)}
        return stats
