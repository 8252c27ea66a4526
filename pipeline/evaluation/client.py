"""Async client for OpenAI-compatible endpoints (vLLM or any other), built on aiohttp.

aiohttp is the transport because it was the cheapest per request in our measurements (see
docs/performance.md): the client must never be the bottleneck of a saturated server.

One ``Client`` serves one model on one or more replicas. It balances by least outstanding requests,
takes a replica out after consecutive connection failures and probes it back in, retries what is worth
retrying with exponential backoff and jitter (honouring ``Retry-After``), and turns every final failure
into an ``Outcome`` with an error class. It never raises for a request that failed: failures are data.
The server's other endpoints (model list, tokenizer, metrics, health, version) are ``pipeline.endpoint``'s.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.config import ClientConfig, without_credentials
from pipeline.errors import ConfigError, EndpointError
from pipeline.evaluation.reasoning_split import DEFAULT_SPLITTER, Splitter, from_server, is_no_answer
from pipeline.failures import FailureClass

RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
_DOWN_AFTER = 3  # consecutive connection-level failures before a replica is taken out
# The failures that say the replica itself is unreachable (the others are answers it gave).
_REPLICA_DOWN = frozenset({FailureClass.CONNECTION, FailureClass.TIMEOUT})


# --- response validation --------------------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Message(_Loose):
    content: str | None = None
    reasoning: str | None = None  # vLLM's reasoning parser (since January 2026)
    reasoning_content: str | None = None  # the same field before it was renamed: older servers


class _ChatChoice(_Loose):
    message: _Message
    finish_reason: str | None = None


class _TextLogprobs(_Loose):
    token_logprobs: list[float | None] = []


class _TextChoice(_Loose):
    text: str
    finish_reason: str | None = None
    logprobs: _TextLogprobs | None = None  # asked for by --variant loglik (echo: the prompt's too)


class _TokenDetails(_Loose):
    reasoning_tokens: int | None = None


class _Usage(_Loose):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    completion_tokens_details: _TokenDetails | None = None


class ChatResponse(_Loose):
    choices: list[_ChatChoice]
    usage: _Usage | None = None


class CompletionResponse(_Loose):
    choices: list[_TextChoice]
    usage: _Usage | None = None


# --- outcomes --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """The final result of one request: either ``text`` or an ``error_class`` with its message.

    ``text`` is the final answer only; a reasoning model's trace is ``reasoning`` (``reasoning_tokens``:
    its length where the server reports it). ``no_answer``: the budget ran out inside the trace, a
    succeeded request without an answer (pipeline.evaluation.reasoning_split)."""

    ok: bool
    text: str = ""
    reasoning: str | None = None
    reasoning_tokens: int | None = None
    no_answer: bool = False
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 0
    error_class: FailureClass | None = None
    error_message: str | None = None
    # A completion's per-token log-probabilities when the body asked for them (``echo``: the prompt's first).
    token_logprobs: list[float | None] | None = None


class _Retry(Exception):
    def __init__(self, error_class: FailureClass, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.retry_after = retry_after


class _Final(Exception):
    def __init__(self, error_class: FailureClass, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class


# --- replicas --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Replica:
    base_url: str  # as given: it may carry credentials, so messages show ``shown``

    @property
    def shown(self) -> str:
        return without_credentials(self.base_url)

    outstanding: int = 0
    healthy: bool = True
    failures: int = 0
    down_since: float = 0.0


class Client:
    """Send chat and completion requests to one model served at ``base_urls``.

    Use as an async context manager; it owns one aiohttp connection pool sized to ``concurrency``.
    """

    def __init__(self, config: ClientConfig, base_urls: tuple[str, ...], api_key: str | None = None) -> None:
        if not base_urls:
            raise EndpointError("no endpoint: pass --base-url URL, set OPENAI_BASE_URL, or run `make serve`")
        if api_key and any(without_credentials(u) != u for u in base_urls):
            # aiohttp would refuse both at the first request (with a traceback): say it now, in one line.
            raise ConfigError(
                "the base URL carries credentials (user:token@) and an API key is set (OPENAI_API_KEY or "
                "[endpoint] api_key): give one of them"
            )
        self.config = config
        self.replicas = [Replica(u) for u in base_urls]
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._any_healthy = asyncio.Event()
        self._any_healthy.set()
        self._probes: set[asyncio.Task[None]] = set()
        self.retries = 0
        self.retries_by_class: dict[str, int] = {}

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(
            limit=self.config.concurrency + 8, limit_per_host=0, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, skip_auto_headers=("User-Agent",)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for probe in self._probes:
            probe.cancel()
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Client used outside `async with`")
        return self._session

    # --- requests ---

    async def send(
        self, path: str, body: bytes, *, chat: bool, split: Splitter = DEFAULT_SPLITTER
    ) -> Outcome:
        """POST ``body`` to ``<replica>/<path>`` with retries; always returns an ``Outcome``. A reply's
        trace is the server's (``reasoning``, else ``reasoning_content``), else ``split`` cuts it off."""
        cfg = self.config
        start = time.monotonic()
        deadline = start + cfg.max_retry_time
        attempt = 0
        last: _Retry | None = None
        while True:
            attempt += 1
            replica = await self._pick(deadline)
            if replica is None:
                # The class is what took the replicas out (a stalled server's timeouts stay `timeout`).
                return Outcome(
                    False, attempts=attempt - 1, latency_s=time.monotonic() - start,
                    error_class=last.error_class if last else FailureClass.CONNECTION,
                    error_message=(f"{last}; " if last else "") + "no healthy replica within the retry time",
                )  # fmt: skip
            replica.outstanding += 1
            try:
                outcome = await self._attempt(replica, path, body, chat, split)
            except _Retry as exc:
                last = exc
                self._note_failure(replica, exc.error_class)
                now = time.monotonic()
                delay = self._backoff(attempt, exc.retry_after)
                if attempt >= cfg.max_attempts or now + delay >= deadline:
                    return Outcome(
                        False, attempts=attempt, latency_s=now - start,
                        error_class=exc.error_class, error_message=str(exc),
                    )  # fmt: skip
                self.retries += 1
                name = exc.error_class.value
                self.retries_by_class[name] = self.retries_by_class.get(name, 0) + 1
                await asyncio.sleep(delay)
                continue
            except _Final as exc:
                replica.failures = 0
                return Outcome(
                    False, attempts=attempt, latency_s=time.monotonic() - start,
                    error_class=exc.error_class, error_message=str(exc),
                )  # fmt: skip
            finally:
                replica.outstanding -= 1
            replica.failures = 0
            outcome.attempts = attempt
            outcome.latency_s = time.monotonic() - start
            return outcome

    async def _attempt(
        self, replica: Replica, path: str, body: bytes, chat: bool, split: Splitter
    ) -> Outcome:
        try:
            async with self.session.post(
                f"{replica.base_url}/{path}", data=body, timeout=self._timeout
            ) as resp:
                status = resp.status
                payload = await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:
            raise _Retry(FailureClass.TIMEOUT, f"no answer within {self.config.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise _Retry(
                FailureClass.CONNECTION, without_credentials(f"{type(exc).__name__}: {exc}")
            ) from None
        if status != 200:
            _raise_for_status(status, payload, retry_after)
        try:
            if chat:
                parsed_chat = ChatResponse.model_validate_json(payload)
                choice = parsed_chat.choices[0]
                message, finish, usage = choice.message, choice.finish_reason, parsed_chat.usage
                trace = message.reasoning if message.reasoning is not None else message.reasoning_content
                reply = from_server(message.content, trace, split)
                logprobs = None
            else:
                parsed_text = CompletionResponse.model_validate_json(payload)
                tchoice = parsed_text.choices[0]
                finish, usage = tchoice.finish_reason, parsed_text.usage
                reply = from_server(tchoice.text, None, split)
                logprobs = tchoice.logprobs.token_logprobs if tchoice.logprobs is not None else None
        except (ValidationError, IndexError):
            raise _Retry(
                FailureClass.INVALID_RESPONSE, f"unparseable response body ({len(payload)} bytes)"
            ) from None
        details = usage.completion_tokens_details if usage else None
        no_answer = is_no_answer(reply, finish)
        return Outcome(
            True,
            text=reply.answer,
            reasoning=reply.reasoning,
            reasoning_tokens=_trace_tokens(reply.reasoning, details, no_answer, usage),
            no_answer=no_answer,
            finish_reason=finish,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            token_logprobs=logprobs,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.config
        delay: float = min(cfg.backoff_max, cfg.backoff_base * 2.0 ** (attempt - 1)) * random.uniform(
            0.5, 1.5
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, cfg.max_retry_time))
        return delay

    # --- replica health ---

    async def _pick(self, deadline: float) -> Replica | None:
        while True:
            best: Replica | None = None
            for r in self.replicas:
                if r.healthy and (best is None or r.outstanding < best.outstanding):
                    best = r
            if best is not None:
                return best
            self._any_healthy.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._any_healthy.wait(), timeout=remaining)
            except TimeoutError:
                return None

    def _note_failure(self, replica: Replica, error_class: FailureClass) -> None:
        if error_class not in _REPLICA_DOWN:
            return
        replica.failures += 1
        if replica.healthy and replica.failures >= _DOWN_AFTER:
            replica.healthy = False
            replica.down_since = time.monotonic()
            probe = asyncio.get_running_loop().create_task(self._probe(replica))
            self._probes.add(probe)
            probe.add_done_callback(self._probes.discard)

    async def _probe(self, replica: Replica) -> None:
        """Poll ``GET /v1/models`` until the replica answers, then put it back in rotation."""
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                async with self.session.get(
                    f"{replica.base_url}/models", timeout=aiohttp.ClientTimeout(total=10)
                ) as resp:
                    if resp.status == 200:
                        break
            except (aiohttp.ClientError, TimeoutError):
                pass
            delay = min(delay * 2, 10.0)
        replica.healthy = True
        replica.failures = 0
        self._any_healthy.set()

    @property
    def healthy_replicas(self) -> int:
        return sum(r.healthy for r in self.replicas)


def _trace_tokens(
    trace: str | None, details: _TokenDetails | None, no_answer: bool, usage: _Usage | None
) -> int | None:
    """The trace's length in tokens: the server's count; for a no-answer, every generated token (the reply
    is all trace). vLLM 0.32 counts only the tokens between tags it generated itself, so a trace whose
    ``<think>`` the prompt opened (DeepSeek-R1's template) is reported as 0: a 0 for a non-empty trace is
    taken as no count (measured on the CPU vLLM: docs/reasoning.md)."""
    if not trace:
        return None
    if details is not None and details.reasoning_tokens:
        return details.reasoning_tokens
    return usage.completion_tokens if no_answer and usage is not None else None


def _raise_for_status(status: int, payload: bytes, retry_after: str | None) -> None:
    message = _error_message(payload) or f"HTTP {status}"
    error_class = FailureClass.of_status(status, message)
    if status in RETRYABLE_STATUS:
        raise _Retry(error_class, f"HTTP {status}: {message}", _parse_retry_after(retry_after))
    if error_class is FailureClass.CONTEXT_LENGTH:
        raise _Final(error_class, message)
    if error_class is FailureClass.AUTH:
        raise _Final(error_class, f"HTTP {status}: the endpoint rejected the API key")
    raise _Final(error_class, f"HTTP {status}: {message}")


def _error_message(payload: bytes) -> str:
    try:
        data: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message", ""))[:500]
        return str(err)[:500]
    return ""


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(parsed.timestamp()) - time.time())
