"""One vLLM server's endpoints beyond chat and completions: ``/v1/models`` (discovery), ``/health`` (the
readiness wait), ``/tokenize`` + ``/detokenize`` (exact token counts; ``--variant loglik``'s prompts as token
ids), ``/metrics`` (the server's load, for
backpressure, and its prefix caching) and ``/version`` (provenance), over one HTTP client configuration.

``Endpoint`` owns that configuration: the server's root, the ``Authorization`` header and the timeouts
(``TIMEOUTS``), written once here. Its sync client (the readiness wait of `medsweep serve` and of the sweep's
watchdog thread) and its async client (the eval) are both built from it. The chat/completions hot path is
not here: ``pipeline.evaluation.client`` keeps its own aiohttp pool, chosen for per-request cost.

httpx, not aiohttp, for these calls: the readiness wait is synchronous (a CLI command, a watchdog thread)
and the rest is async, and httpx gives both from one configuration (``httpx.Client`` and
``httpx.AsyncClient`` take the same base URL, headers and timeout), where aiohttp is async only. These
calls are few (a probe a second, one ``/tokenize`` per distinct text, cached; ``--variant loglik``: a few
per item, beside the item's own completions), so aiohttp's lower per-request cost, which matters for the
eval's thousands of chat requests, buys nothing here.

Shared vocabulary of the eval core and serving: it imports neither.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.config import server_root, without_credentials
from pipeline.errors import EndpointError
from pipeline.failures import FailureClass


@dataclass(frozen=True)
class Timeouts:
    """Seconds per kind of call."""

    probe: float = 5.0  # /health, /metrics: a poll must not hang on a stalled server
    discovery: float = 30.0  # /v1/models when an eval starts
    call: float = 10.0  # /version and the rest of provenance: it must never hold up an eval
    tokenize: float = 300.0  # /tokenize, /detokenize: they queue behind the eval's own requests


TIMEOUTS = Timeouts()


class TokenizeError(EndpointError):
    """``/tokenize`` failed: the message, and the class the failure of a request that needed it gets
    (``--variant loglik`` stores an item whose prompt could not be tokenized as failed with it)."""

    def __init__(self, message: str, error_class: FailureClass) -> None:
        super().__init__(message)
        self.error_class = error_class


class _Card(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    max_model_len: int | None = None
    root: str | None = None


class _ModelList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[_Card]


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One entry of ``/v1/models``: the name it answers to, its context length and what it loaded."""

    id: str
    max_model_len: int | None
    root: str | None


# The gauges vLLM 0.32 (V1 engine) exports, one series per engine. ``kv_cache_usage_perc`` is a fraction in
# [0, 1] despite its name; ``gpu_cache_usage_perc`` is its older name (vLLM before 0.10), read as a fallback.
WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
CACHE_CONFIG = "vllm:cache_config_info"


@dataclass(frozen=True)
class ServerLoad:
    """One reading of the server: requests queued, requests in its running batch, KV cache in use (0-1).

    ``running`` and ``kv_usage`` are None when the server does not export them."""

    waiting: int
    running: int | None = None
    kv_usage: float | None = None


def _series(text: str, name: str) -> list[float]:
    """The values of every series of gauge ``name`` (any labels; not ``name_suffix`` gauges)."""
    values = []
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            try:
                values.append(float(line.rsplit(" ", 1)[1]))
            except (IndexError, ValueError):
                continue
    return values


def parse_load(text: str) -> ServerLoad | None:
    """A Prometheus ``/metrics`` body's load: waiting and running summed over engines, KV usage the fullest
    engine's (the one that preempts); None when the body has no waiting queue (not vLLM)."""
    waiting = _series(text, WAITING)
    if not waiting:
        return None
    running = _series(text, RUNNING)
    kv = next((values for name in KV_USAGE if (values := _series(text, name))), [])
    return ServerLoad(
        waiting=int(sum(waiting)),
        running=int(sum(running)) if running else None,
        kv_usage=max(kv) if kv else None,
    )


def parse_waiting(text: str) -> int | None:
    """Sum of ``vllm:num_requests_waiting`` over engines, or None when the body has no such metric."""
    load = parse_load(text)
    return None if load is None else load.waiting


def parse_prefix_caching(text: str) -> bool | None:
    """Whether the server caches prefixes (the ``enable_prefix_caching`` label of vLLM's cache-config
    gauge); None when the body does not say."""
    for line in text.splitlines():
        if line.startswith(CACHE_CONFIG + "{") and "enable_prefix_caching=" in line:
            return line.split("enable_prefix_caching=", 1)[1].split('"')[1].lower() == "true"
    return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate store, read once per process (a sweep's eval process reads it before its job): each
    client would read it again, tens of ms of CPU per health probe and per eval."""
    return httpx.create_ssl_context()


class Endpoint:
    """The extras of the server at ``url`` (its root or its OpenAI base URL ``.../v1``).

    Async calls need ``async with Endpoint(...)`` (one connection pool for the eval); the readiness wait
    (``wait_healthy``, ``probe``) is synchronous and opens its own short-lived client.
    """

    def __init__(self, url: str, api_key: str | None = None, timeouts: Timeouts = TIMEOUTS) -> None:
        self.root = server_root(url)
        self.shown = without_credentials(self.root)  # the root as messages show it (a URL may carry a key)
        self.timeouts = timeouts
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._async: httpx.AsyncClient | None = None

    def _settings(self) -> dict[str, Any]:
        """The one HTTP client configuration (both clients are built from it)."""
        return {
            "base_url": self.root,
            "headers": self._headers,
            "timeout": httpx.Timeout(self.timeouts.call),
            "verify": tls_context(),
        }

    # --- async: the eval ---

    async def __aenter__(self) -> Endpoint:
        self._async = httpx.AsyncClient(**self._settings())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    @property
    def _client(self) -> httpx.AsyncClient:
        if self._async is None:
            raise RuntimeError("Endpoint used outside `async with`")
        return self._async

    async def list_models(self) -> list[ServedModel]:
        """``GET /v1/models``; what stops an eval before it starts is a one-line ``EndpointError``."""
        url, shown = f"{self.shown}/v1/models", f"{self.shown}/v1"
        try:
            response = await self._client.get("/v1/models", timeout=self.timeouts.discovery)
        except httpx.HTTPError as exc:
            raise EndpointError(
                f"cannot reach {shown} ({type(exc).__name__}): start a server with "
                "`make serve` or check --base-url"
            ) from None
        if response.status_code in (401, 403):
            raise EndpointError(
                f"{shown} rejected the API key (HTTP {response.status_code}): set "
                "OPENAI_API_KEY to the key the server was started with"
            )
        if response.status_code != 200:
            raise EndpointError(
                f"GET {url} answered HTTP {response.status_code}: not an OpenAI-compatible endpoint; check "
                "--base-url (e.g. http://127.0.0.1:8000/v1)"
            )
        try:
            listing = _ModelList.model_validate_json(response.content)
        except ValidationError:
            raise EndpointError(f"GET {url} did not return an OpenAI model list") from None
        return [ServedModel(m.id, m.max_model_len, m.root) for m in listing.data]

    async def version(self) -> str | None:
        """vLLM's version from ``/version``; None when the server does not say."""
        body = await self._get_json("/version")
        version = body.get("version") if isinstance(body, dict) else None
        return None if version is None else str(version)

    async def model_entries(self) -> list[dict[str, Any]]:
        """The raw entries of ``/v1/models`` (provenance reads what it finds); empty when unreachable."""
        body = await self._get_json("/v1/models")
        try:
            return [m for m in body["data"] if isinstance(m, dict)]
        except (TypeError, KeyError):
            return []

    async def _metrics(self) -> str | None:
        """The ``/metrics`` body; None when the server does not answer it."""
        try:
            response = await self._client.get("/metrics", timeout=self.timeouts.probe)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    async def load(self) -> ServerLoad | None:
        """The server's load now (waiting, running, KV usage); None when it cannot tell."""
        text = await self._metrics()
        return None if text is None else parse_load(text)

    async def queue_depth(self) -> int | None:
        """The requests waiting at the server; None when it cannot tell."""
        load = await self.load()
        return None if load is None else load.waiting

    async def prefix_caching(self) -> bool | None:
        """Whether the server caches prefixes; None when it does not say."""
        text = await self._metrics()
        return None if text is None else parse_prefix_caching(text)

    async def tokenize(self, model: str, text: str, *, special_tokens: bool = False) -> list[int]:
        """``text``'s tokens in ``model``'s tokenizer; by default without special tokens (no BOS: a piece of
        a prompt), with them for a whole completion prompt (a base model's, as the server would feed it)."""
        return await self._tokens({"model": model, "prompt": text, "add_special_tokens": special_tokens})

    async def tokenize_chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        *,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """The token ids ``model`` is fed for ``messages``: its chat template rendered by the server (the
        template writes the special tokens), with the generation prompt or continuing the last message."""
        payload: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in messages],
            "add_generation_prompt": add_generation_prompt,
            "continue_final_message": continue_final_message,
            "add_special_tokens": False,
        }
        if template_kwargs:
            payload["chat_template_kwargs"] = dict(template_kwargs)
        return await self._tokens(payload)

    async def _tokens(self, payload: dict[str, Any]) -> list[int]:
        """``POST /tokenize``'s ``tokens``; a ``TokenizeError`` classed as a request's failure would be: no
        answer (connection), an HTTP error by its status (``FailureClass.of_status``: a rejected key is
        ``auth``), no token list (invalid response)."""
        url = f"{self.shown}/tokenize"
        try:
            response = await self._client.post("/tokenize", json=payload, timeout=self.timeouts.tokenize)
        except httpx.HTTPError as exc:
            raise TokenizeError(
                f"POST {url} failed ({type(exc).__name__}): is the vLLM server up?", FailureClass.CONNECTION
            ) from None
        status = response.status_code
        if status != 200:
            error_class = FailureClass.of_status(status, response.text)
            raise TokenizeError(f"POST {url} failed with HTTP {status}: {response.text[:200]}", error_class)
        try:
            tokens = response.json().get("tokens")
        except (ValueError, AttributeError):
            tokens = None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise TokenizeError(
                f"{url} answered without a 'tokens' list: is it vLLM?", FailureClass.INVALID_RESPONSE
            )
        return tokens

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        body = await self._post("detokenize", {"model": model, "tokens": tokens})
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise EndpointError(f"{self.shown}/detokenize answered without a 'prompt' string: is it vLLM?")
        return prompt

    async def _get_json(self, path: str) -> Any:
        """The JSON body of a 200 answer; None for anything else (provenance never fails an eval)."""
        try:
            response = await self._client.get(path)
            if response.status_code != 200:
                return None
            return response.json()
        except (httpx.HTTPError, ValueError):
            return None

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.shown}/{path}"
        try:
            response = await self._client.post(f"/{path}", json=payload, timeout=self.timeouts.tokenize)
        except httpx.HTTPError as exc:
            raise EndpointError(f"POST {url} failed ({type(exc).__name__}): is the vLLM server up?") from exc
        if response.status_code != 200:
            raise EndpointError(f"POST {url} failed with HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise EndpointError(f"POST {url} did not answer a JSON object")
        return body

    # --- sync: the readiness wait ---

    def wait_healthy(
        self,
        timeout: float,
        served_model: str | None = None,
        alive: Callable[[], str | None] | None = None,
        poll_interval: float = 1.0,
    ) -> dict[str, Any]:
        """Poll until ``/health`` answers 200 and ``/v1/models`` lists ``served_model``; the models body.

        ``alive`` is called between polls; when it returns a reason (the process or container exited),
        waiting stops at once with EndpointError. Timeout also raises EndpointError naming the last thing
        seen. With ``timeout=0`` it is a single probe (the sweep's watchdog).
        """
        deadline = time.monotonic() + timeout
        root = self.shown
        with httpx.Client(**{**self._settings(), "timeout": httpx.Timeout(self.timeouts.probe)}) as client:
            while True:
                body = self._probe(client, served_model)
                if isinstance(body, dict):
                    return body
                if alive is not None and (reason := alive()) is not None:
                    raise EndpointError(f"server at {root} exited before it was ready: {reason}")
                if time.monotonic() >= deadline:
                    raise EndpointError(f"server at {root} not ready after {timeout:.0f} s (last: {body})")
                time.sleep(poll_interval)

    def _probe(self, client: httpx.Client, served_model: str | None) -> dict[str, Any] | str:
        """The models body when ready, else a short description of what was seen."""
        try:
            health = client.get("/health")
            if health.status_code != 200:
                return f"/health HTTP {health.status_code}"
            models = client.get("/v1/models")
        except httpx.HTTPError as exc:
            return f"{exc.__class__.__name__}"
        if models.status_code in (401, 403):
            raise EndpointError(
                f"{self.shown}/v1/models: HTTP {models.status_code}: the API key is missing or wrong"
            )
        if models.status_code != 200:
            return f"/v1/models HTTP {models.status_code}"
        try:
            body: dict[str, Any] = models.json()
            ids = [m["id"] for m in body["data"]]
        except (ValueError, KeyError, TypeError):
            return "/v1/models: unexpected body"
        if served_model is not None and served_model not in ids:
            return f"/v1/models lists {ids}, not {served_model!r}"
        return body
