"""Token budgets: how many tokens a rendered prompt may take, and how to share a budget among texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.tasks.base import TokenCounter
from pipeline.tasks.prompts import Budget, PromptTexts
from pipeline.tasks.render import Rendered


def prompt_cap(max_model_len: int, max_new_tokens: int, budget: Budget, n_messages: int) -> int:
    """Tokens the prompt's texts may take so that prompt + chat template + answer fit the context."""
    return max_model_len - max_new_tokens - budget.reserve(n_messages)


def v3_truncation(max_model_len: int, prompt: PromptTexts) -> dict[str, Any]:
    """The request fields of v3's truncation: keep the last ``min(max_model_len - reserve, cap)`` tokens of
    the whole prompt (``pipeline.evaluation.truncation``). Nothing where the context is not larger than the
    reserve (v3
    would have sent a non-positive value): the prompt must then fit on its own."""
    tokens = max_model_len - prompt.v3_reserve
    if prompt.truncate_cap is not None:
        tokens = min(tokens, prompt.truncate_cap)
    return {"truncate_prompt_tokens": tokens, "truncation_side": "left"} if tokens > 0 else {}


def surely_fits(rendered: Rendered, cap: int) -> bool:
    """A cheap upper bound: no tokenizer makes more tokens than the UTF-8 bytes it reads (byte-level BPE and
    SentencePiece byte fallback both spend at least one byte per token), so short prompts need no count."""
    return sum(len(t.encode("utf-8")) for t in rendered.texts()) <= cap


async def count_rendered(counter: TokenCounter, rendered: Rendered) -> int:
    total = 0
    for text in rendered.texts():
        total += await counter.count(text)
    return total


def water_fill(counts: Sequence[int], budget: int) -> int | None:
    """The largest per-text cap ``c`` with ``sum(min(n, c)) <= budget``; None when everything fits.

    Short texts stay whole and the long ones are cut to the same length, so one long letter does not take
    the whole budget from the others.
    """
    if sum(counts) <= budget:
        return None
    remaining = max(budget, 0)
    ordered = sorted(counts)
    for index, count in enumerate(ordered):
        share = remaining // (len(ordered) - index)
        if count > share:
            return share
        remaining -= count
    return remaining  # not reached: the sum exceeds the budget
