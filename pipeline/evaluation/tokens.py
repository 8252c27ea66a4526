"""Token counting for prompt budgets: the served model's tokenizer (vLLM ``/tokenize``) or an estimate.

Both implement ``pipeline.tasks.base.TokenCounter``. ``make_counter`` picks the server when it answers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

from pipeline.endpoint import Endpoint
from pipeline.errors import EndpointError
from pipeline.tasks.base import TokenCounter

CHARS_PER_TOKEN = 3.0
"""The estimate's ratio. English prose is about 4 characters per token with Llama/Mistral tokenizers, and
clinical text with numbers and abbreviations is denser, so 3 over-counts most text: a prompt the estimate
fits will almost always fit the real tokenizer too."""

_CACHE_SIZE = 4096


def estimate_tokens(chars: int, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """The estimate's count for a text of ``chars`` characters."""
    return math.ceil(chars / chars_per_token)


class EstimateCounter:
    """Estimated counts (``ceil(len(text) / CHARS_PER_TOKEN)``); truncation cuts characters."""

    def __init__(self, chars_per_token: float = CHARS_PER_TOKEN) -> None:
        self._chars_per_token = chars_per_token

    @property
    def exact(self) -> bool:
        return False

    async def count(self, text: str) -> int:
        return estimate_tokens(len(text), self._chars_per_token)

    async def truncate(self, text: str, max_tokens: int, *, keep: Literal["start", "end"]) -> str:
        if await self.count(text) <= max_tokens:
            return text
        n_chars = max(0, math.floor(max_tokens * self._chars_per_token))
        if n_chars == 0:
            return ""
        return text[:n_chars] if keep == "start" else text[-n_chars:]


class ServerCounter:
    """Exact counts from a vLLM server's ``/tokenize`` and ``/detokenize`` (``pipeline.endpoint``), with a
    small LRU cache.

    Texts are tokenized without special tokens (no BOS): they are pieces of a prompt, and the chat template
    reserve (prompts/budget.toml) covers the specials.
    """

    def __init__(self, endpoint: Endpoint, model: str) -> None:
        self._endpoint = endpoint
        self._model = model
        self._cache: OrderedDict[str, list[int]] = OrderedDict()

    @property
    def exact(self) -> bool:
        return True

    async def count(self, text: str) -> int:
        return len(await self.tokens(text))

    async def truncate(self, text: str, max_tokens: int, *, keep: Literal["start", "end"]) -> str:
        tokens = await self.tokens(text)
        if len(tokens) <= max_tokens:
            return text
        if max_tokens <= 0:
            return ""
        kept = tokens[:max_tokens] if keep == "start" else tokens[-max_tokens:]
        return await self._endpoint.detokenize(self._model, kept)

    async def tokens(self, text: str) -> list[int]:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        tokens = await self._endpoint.tokenize(self._model, text)
        self._cache[text] = tokens
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return tokens


async def make_counter(endpoint: Endpoint, model: str) -> TokenCounter:
    """The server's tokenizer when ``/tokenize`` answers for ``model``, else the estimate."""
    counter = ServerCounter(endpoint, model)
    try:
        await counter.tokens("medsweep tokenizer probe")
    except EndpointError:
        return EstimateCounter()
    return counter
