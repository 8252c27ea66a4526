"""``--variant loglik``: score each answer option by its log-probability after the paper's prompt.

The prompt is the ``paper`` variant's request, unchanged (demonstrations, truncation). The server turns it
into token ids: ``POST /tokenize`` with the messages renders the model's chat template (generation prompt
added, reasoning off), or with the completion prompt of a base model. Each option's continuation, as the
answer format writes it (``Request.choices``), is tokenized on its own and appended; one
``/v1/completions`` body per option sends the token ids with ``echo``, ``logprobs: 1`` and ``max_tokens: 1``
(the server returns every prompt token's log-probability), and the option's score is the sum over its
continuation's tokens.

Honest numbers: ``check_endpoint`` refuses an endpoint that does not score the prompt before anything is
sent (llama.cpp's server, for one, returns generated tokens' log-probabilities only, which would score every
option alike). Each body carries its own ``cache_salt``, so no body reads another's prefix-cache blocks:
with prefix caching on, prompt log-probabilities can depend on request order (vLLM #42019); vLLM also skips
reading the cache for prompt log-probabilities by itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.config import without_credentials
from pipeline.endpoint import Endpoint, TokenizeError
from pipeline.errors import EndpointError
from pipeline.evaluation.client import Client, Outcome
from pipeline.failures import FailureClass
from pipeline.request import Request

LOGLIK_BODY: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
"""What every scoring body asks besides the model, the token ids and the salt: one token generated (the
API needs one), the prompt echoed with one log-probability per token."""


def option_tasks() -> tuple[str, ...]:
    """The tasks whose options ``--variant loglik`` can score: a ``[loglik]`` table in the prompt file."""
    from pipeline.tasks import task_names
    from pipeline.tasks.prompts import load_prompts, prompt_path

    return tuple(t for t in task_names() if prompt_path(t).exists() and load_prompts(t).loglik is not None)


_NO_THINKING = {"enable_thinking": False}  # reasoning off: the chat templates that know the switch read it
_PROBE = "medsweep log-likelihood probe"


@dataclass(frozen=True, slots=True)
class Scored:
    """One item's outcome: ``outcome.text`` is the label of the best option, ``request_json`` the bodies
    sent (in option order) with what scoring needs, ``choice_logprobs`` the JSON list of option sums."""

    outcome: Outcome
    request_json: str
    choice_logprobs: str | None


def cache_salt(key: str, index: int) -> str:
    """The prefix-cache salt of option ``index`` of the result ``key``: unique per body, and the same on
    every rerun (the body is part of the stored record)."""
    return hashlib.sha256(f"{key}/{index}".encode()).hexdigest()


def continuation_sum(logprobs: Sequence[float | None] | None, start: int, length: int) -> float | None:
    """The sum of the log-probabilities of the ``length`` prompt tokens from ``start``; ``None`` when the
    answer lacks any of them (the endpoint did not score the prompt)."""
    if logprobs is None or len(logprobs) < start + length:
        return None
    window = logprobs[start : start + length]
    if any(value is None for value in window):
        return None
    return float(sum(value for value in window if value is not None))


class LoglikScorer:
    """Sends the scoring bodies of one item through ``client`` (its retries and replicas); the server's
    tokenizer is reached through ``endpoint`` (pipeline.endpoint: the one owner of calls other than
    generation)."""

    def __init__(self, client: Client, endpoint: Endpoint, base_url: str, served_name: str) -> None:
        self.client = client
        self.endpoint = endpoint
        self.base_url = without_credentials(base_url)  # as messages show it
        self.served_name = served_name

    async def check_endpoint(self) -> None:
        """Refuse an endpoint without ``/tokenize`` or without prompt log-probabilities: one line each, naming
        the endpoint and the fix, before anything is stored."""
        try:
            ids = await self.endpoint.tokenize(self.served_name, _PROBE)
        except TokenizeError as exc:
            raise EndpointError(
                f"--variant loglik needs the server's tokenizer, and {exc}: serve the model with vLLM (its "
                "/tokenize renders the chat template into token ids)"
            ) from None
        body = self._body(ids, "probe")
        outcome = await self.client.send("completions", orjson.dumps(body), chat=False)
        if not outcome.ok:
            why = outcome.error_class.value if outcome.error_class else "failed"
            raise EndpointError(
                f"--variant loglik: {self.base_url}/completions refused a scoring request "
                f"({why}: {outcome.error_message}): "
                "it needs /v1/completions with token-id prompts, echo and logprobs (vLLM serves them)"
            )
        if continuation_sum(outcome.token_logprobs, 1, len(ids) - 1) is None:
            got = "none" if outcome.token_logprobs is None else f"{len(outcome.token_logprobs)} values"
            raise EndpointError(
                f"{self.base_url} returns no prompt log-probabilities (asked for {len(ids)} prompt tokens "
                f"with echo and logprobs, got {got}): --variant loglik cannot score options there. Serve the "
                "model with vLLM; servers that score generated tokens only (llama.cpp's) would score every "
                "option alike"
            )

    async def score(self, request: Request, key: str) -> Scored:
        """Tokenize the prompt and the options, send one body per option, sum each continuation."""
        start = time.monotonic()
        labels = [label for label, _ in request.choices]
        meta: dict[str, Any] = {
            "kind": "loglik",
            "labels": labels,
            "continuations": [text for _, text in request.choices],
        }
        try:
            context = await self._context_ids(request)
            options = [await self.endpoint.tokenize(self.served_name, text) for _, text in request.choices]
        except TokenizeError as exc:
            failed = Outcome(
                False, attempts=1, latency_s=time.monotonic() - start, error_class=exc.error_class,
                error_message=f"tokenizing the prompt for log-likelihood scoring: {exc}",
            )  # fmt: skip
            return Scored(failed, _dumps(meta), None)
        bodies = [self._body(context + ids, cache_salt(key, i)) for i, ids in enumerate(options)]
        meta |= {
            "context_tokens": len(context),
            "continuation_tokens": [len(ids) for ids in options],
            "bodies": bodies,
        }
        sums: list[float] = []
        attempts = 0
        for body, ids in zip(bodies, options, strict=True):
            outcome = await self.client.send("completions", orjson.dumps(body), chat=False)
            attempts += outcome.attempts
            if not outcome.ok:
                outcome.attempts, outcome.latency_s = attempts, time.monotonic() - start
                return Scored(outcome, _dumps(meta), None)
            total = continuation_sum(outcome.token_logprobs, len(context), len(ids))
            if total is None:
                missing = Outcome(
                    False, attempts=attempts, latency_s=time.monotonic() - start,
                    error_class=FailureClass.INVALID_RESPONSE,
                    error_message="the answer has no log-probabilities for the option's prompt tokens",
                )  # fmt: skip
                return Scored(missing, _dumps(meta), None)
            sums.append(total)
        best = max(range(len(sums)), key=lambda i: sums[i])
        done = Outcome(
            True, text=labels[best], prompt_tokens=len(context), completion_tokens=0,
            latency_s=time.monotonic() - start, attempts=attempts,
        )  # fmt: skip
        return Scored(done, _dumps(meta), _dumps(sums))

    # --- the server's tokenizer ---

    async def _context_ids(self, request: Request) -> list[int]:
        """The prompt as the server would feed it to the model, cut as the paper variant's request asks
        (``truncate_prompt_tokens``: the server keeps the prompt's last tokens)."""
        extra = request.extra_body
        if request.messages is not None:
            ids = await self.endpoint.tokenize_chat(
                self.served_name,
                request.messages,
                add_generation_prompt=bool(extra.get("add_generation_prompt", True)),
                continue_final_message=bool(extra.get("continue_final_message", False)),
                template_kwargs=_NO_THINKING,
            )
        else:  # a base model's completion prompt, with the tokenizer's own special tokens (its BOS)
            ids = await self.endpoint.tokenize(self.served_name, request.prompt or "", special_tokens=True)
        keep = extra.get("truncate_prompt_tokens")
        if isinstance(keep, int) and 0 < keep < len(ids):
            ids = ids[-keep:]
        return ids

    def _body(self, ids: list[int], salt: str) -> dict[str, Any]:
        return {"model": self.served_name, "prompt": ids, **LOGLIK_BODY, "cache_salt": salt}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
