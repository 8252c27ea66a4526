"""Token counting for prompt budgets: the served model's tokenizer (vLLM ``/tokenize``) or an estimate.

Both implement ``pipeline.tasks.base.TokenCounter``. ``make_counter`` picks the server when it answers.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Literal

import aiohttp

from pipeline.config import server_root
from pipeline.errors import EndpointError
from pipeline.tasks.base import TokenCounter

CHARS_PER_TOKEN = 3.0
"""The estimate's ratio. English prose is about 4 characters per token with Llama/Mistral tokenizers, and
clinical text with numbers and abbreviations is denser, so 3 over-counts most text: a prompt the estimate
fits will almost always fit the real tokenizer too."""

_CACHE_SIZE = 4096


class EstimateCounter:
    """Estimated counts (``ceil(len(text) / CHARS_PER_TOKEN)``); truncation cuts characters."""

    def __init__(self, chars_per_token: float = CHARS_PER_TOKEN) -> None:
        self._chars_per_token = chars_per_token

    @property
    def exact(self) -> bool:
        return False

    async def count(self, text: str) -> int:
        return math.ceil(len(text) / self._chars_per_token)

    async def truncate(self, text: str, max_tokens: int, *, keep: Literal["start", "end"]) -> str:
        if await self.count(text) <= max_tokens:
            return text
        n_chars = max(0, math.floor(max_tokens * self._chars_per_token))
        if n_chars == 0:
            return ""
        return text[:n_chars] if keep == "start" else text[-n_chars:]


class ServerCounter:
    """Exact counts from a vLLM server's ``POST /tokenize`` and ``POST /detokenize``, with a small LRU cache.

    Texts are tokenized without special tokens (no BOS): they are pieces of a prompt, and the chat template
    reserve (prompts/budget.toml) covers the specials.
    """

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, model: str, headers: dict[str, str]
    ) -> None:
        self._session = session
        self._root = server_root(base_url)
        self._model = model
        self._headers = headers
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
        body = await self._post("detokenize", {"model": self._model, "tokens": kept})
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise EndpointError(f"{self._root}/detokenize answered without a 'prompt' string: is it vLLM?")
        return prompt

    async def tokens(self, text: str) -> list[int]:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        body = await self._post(
            "tokenize", {"model": self._model, "prompt": text, "add_special_tokens": False}
        )
        tokens = body.get("tokens")
        if not isinstance(tokens, list):
            raise EndpointError(f"{self._root}/tokenize answered without a 'tokens' list: is it vLLM?")
        self._cache[text] = tokens
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return tokens

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._root}/{path}"
        try:
            async with self._session.post(url, json=payload, headers=self._headers) as response:
                if response.status != 200:
                    detail = (await response.text())[:200]
                    raise EndpointError(f"POST {url} failed with HTTP {response.status}: {detail}")
                body = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise EndpointError(f"POST {url} failed ({type(exc).__name__}): is the vLLM server up?") from exc
        if not isinstance(body, dict):
            raise EndpointError(f"POST {url} did not answer a JSON object")
        return body


async def make_counter(
    session: aiohttp.ClientSession, base_url: str, model: str, headers: dict[str, str]
) -> TokenCounter:
    """The server's tokenizer when ``/tokenize`` answers for ``model``, else the estimate."""
    counter = ServerCounter(session, base_url, model, headers)
    try:
        await counter.tokens("medsweep tokenizer probe")
    except EndpointError:
        return EstimateCounter()
    return counter
