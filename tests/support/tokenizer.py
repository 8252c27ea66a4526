"""A deterministic stand-in tokenizer for the task tests (packing and truncation)."""

from __future__ import annotations

from typing import Literal


class WordCounter:
    """A fake tokenizer: one token per whitespace-separated word (exact, deterministic)."""

    exact = True

    async def count(self, text: str) -> int:
        return len(text.split())

    async def truncate(self, text: str, max_tokens: int, *, keep: Literal["start", "end"]) -> str:
        words = text.split()
        if len(words) <= max_tokens:
            return text
        kept = words[:max_tokens] if keep == "start" else words[len(words) - max_tokens :]
        return " ".join(kept)
