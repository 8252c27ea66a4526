"""A fault-injecting OpenAI-compatible server for tests and benchmarks (ours; not a mock of any library).

It speaks the parts of vLLM's API that medsweep uses — ``/v1/models``, ``/v1/chat/completions``,
``/v1/completions``, ``/tokenize``, ``/detokenize``, ``/metrics``, ``/health``, ``/version`` — and injects
faults with seeded probabilities: HTTP 500, 429 with ``Retry-After``, connection resets, hangs, and
truncated JSON bodies. ``GET /_stats`` reports what it received and answered so tests can prove that
nothing was re-sent; ``GET /_requests`` returns the last request bodies, as sent. ``--request-log FILE``
appends every completion request's body, as received (before any hold), to FILE: it outlives the server.
``--seconds-per-prompt-token S`` adds S x the prompt's tokens to each completion's latency (a prefill's cost).

Like vLLM it honours ``truncate_prompt_tokens`` (the prompt is counted as at most that many tokens).
``--no-vllm-api`` makes it a plain OpenAI-compatible server instead: no ``/version``, ``/tokenize``,
``/detokenize`` or ``/metrics``, and ``truncate_prompt_tokens`` is ignored (as llama-cpp-python does).

Tests control timing through the server, never by sleeping: with ``--hold`` every completion request waits
until the test releases it (``POST /_release?n=N``, or without ``n`` to stop holding), and
``GET /_wait?held=N`` returns once N requests are held (``&answered=M``: and M answers given in all), so a
test acts while requests are provably in flight and after a known number were answered.
A held request whose client goes away stops waiting (and is not answered).

``--reasoning SHAPE`` answers as a reasoning model does, with a trace that names another label than the
answer (a scorer that read it would be misled): ``reasoning`` (vLLM with a reasoning parser: the trace in
``message.reasoning``, its length in ``usage.completion_tokens_details.reasoning_tokens``),
``reasoning_content`` (the same, as servers named the field before January 2026), ``inline`` (no parser: the
reply text is ``<think>trace</think>answer``) and ``cut`` (the budget ran out inside the trace:
``finish_reason: "length"``, ``content: null``, the trace so far in ``message.reasoning``). Like vLLM, a
request that sets ``thinking_token_budget`` is rejected (HTTP 400) unless the shape is a parser's.

Run: ``python tests/support/fakeserver.py --port 8123 --p500 0.1 --p429 0.05 ...``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Faults:
    p500: float = 0.0
    p429: float = 0.0
    retry_after: float = 0.2
    preset: float = 0.0
    phang: float = 0.0
    ptruncated: float = 0.0
    delay: float = 0.0
    hang_seconds: float = 3600.0
    fail_first: int = 0  # the first N requests get a 500 (deterministic retry tests)
    status_always: int = 0  # answer every completion request with this status (e.g. 400)
    extra_waiting: int = 0  # added to vllm:num_requests_waiting in /metrics (a queue that never drains)


@dataclass
class Gate:
    """Holds completion requests until the test releases them (``--hold``)."""

    holding: bool = False
    permits: int = 0  # requests that may pass while holding
    held: int = 0  # requests waiting now
    watchers: int = 0  # GET /_wait calls waiting now (answers wake them only then: no cost otherwise)
    changed: asyncio.Condition | None = None  # created on the server's loop

    def condition(self) -> asyncio.Condition:
        if self.changed is None:
            self.changed = asyncio.Condition()
        return self.changed

    async def passage(self) -> None:
        if not self.holding:
            return
        cond = self.condition()
        async with cond:
            self.held += 1
            cond.notify_all()
            try:
                await cond.wait_for(lambda: not self.holding or self.permits > 0)
                if self.holding:
                    self.permits -= 1
            finally:
                self.held -= 1
                cond.notify_all()

    async def wake(self) -> None:
        """Tell waiting ``GET /_wait`` calls that something they may wait for changed."""
        if self.watchers:
            cond = self.condition()
            async with cond:
                cond.notify_all()


@dataclass
class State:
    model: str = "fake-model"
    also: tuple[str, ...] = ()  # more served names (a base's LoRA adapters, ``--also-serve``)
    max_model_len: int = 2048
    api_key: str | None = None
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    answer: str | None = None
    received: int = 0
    answered: Counter[str] = field(default_factory=Counter)
    answers: int = 0  # sum of ``answered``
    bodies_seen: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    rng: random.Random = field(default_factory=random.Random)
    gate: Gate = field(default_factory=Gate)
    vllm_api: bool = True
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=512))
    request_log: str | None = None  # every completion body received, one line each
    reasoning: str | None = None  # the reply shape of a reasoning model (REASONING_SHAPES)
    # (phrase, seconds): a request whose prompt holds the phrase takes that long (the first match; none:
    # ``Faults.delay``). bench/sweep_idle.py gives each task's requests its own latency this way.
    latencies: tuple[tuple[str, float], ...] = ()
    seconds_per_prompt_token: float = 0.0  # added to each completion's latency, per prompt token


REASONING_SHAPES = ("reasoning", "reasoning_content", "inline", "cut")
# Names a label the canned answers never are first (CONTRADICTION): a parser reading the trace is caught.
TRACE = (
    "The premise might suggest CONTRADICTION, or is it NEUTRAL? Checking the hypothesis again, step by step."
)


_CANNED = (
    "ENTAILMENT",
    "The correct answer is A: yes.",
    "Who makes this drug?",
    "ICD-10 Codes: I10, E11.9",
    "Hypertension, diabetes",
    "The correct answer is F: Question cannot be answered with provided documents.",
)


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body["messages"])
    return str(body.get("prompt", ""))


def _answer_for(state: State, body: dict[str, Any], text: str) -> str:
    if state.answer is not None:
        return state.answer
    if body.get("response_format"):
        return '{"answer": "A"}'
    digest = hashlib.sha256(text.encode()).digest()
    return _CANNED[digest[0] % len(_CANNED)]


def make_app(state: State) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        if not _authorised(state, request):
            return _error(401, "Unauthorized", "AuthenticationError")
        cards = [
            {"id": name, "object": "model", "max_model_len": state.max_model_len, "root": name}
            for name in (state.model, *state.also)
        ]
        return web.json_response({"object": "list", "data": cards})

    async def completion(request: web.Request) -> web.StreamResponse:
        state.received += 1
        raw = await request.read()
        if state.request_log:
            with open(state.request_log, "ab") as log:
                log.write(raw.replace(b"\n", b" ") + b"\n")
        digest = hashlib.sha256(raw).hexdigest()
        state.bodies_seen[digest] += 1
        await state.gate.passage()
        if not _authorised(state, request):
            return _error(401, "Unauthorized", "AuthenticationError")
        f = state.faults
        if f.status_always:
            return _error(f.status_always, f"injected HTTP {f.status_always}", "BadRequestError")
        if state.received <= f.fail_first:
            return _error(500, "injected failure", "InternalServerError")
        body = orjson.loads(raw)
        state.recent.append(body)
        if body.get("model") not in (state.model, *state.also):
            msg = f"The model `{body.get('model')}` does not exist. Valid aliases: {state.model}."
            return _error(404, msg, "NotFoundError")
        if "thinking_token_budget" in body and state.reasoning in (None, "inline"):
            msg = (
                "thinking_token_budget is set but reasoning_config is not configured. Please set "
                "--reasoning-parser and/or --reasoning-config to use thinking_token_budget."
            )
            return _error(400, msg, "BadRequestError")
        text = _prompt_text(body)
        prompt_tokens = max(1, len(text) // 4)
        keep = body.get("truncate_prompt_tokens") if state.vllm_api else None
        if keep is not None:
            if keep > state.max_model_len:
                msg = f"truncate_prompt_tokens ({keep}) is greater than max_model_len ({state.max_model_len})"
                return _error(400, msg, "BadRequestError")
            prompt_tokens = min(prompt_tokens, keep)
        if prompt_tokens + int(body.get("max_tokens") or 16) > state.max_model_len:
            msg = (
                f"This model's maximum context length is {state.max_model_len} tokens. However, your prompt "
                f"contains at least {prompt_tokens} input tokens."
            )
            return _error(400, msg, "BadRequestError")
        roll = state.rng.random()
        edges = [f.p500, f.p429, f.preset, f.phang, f.ptruncated]
        fault = None
        for name, p in zip(("500", "429", "reset", "hang", "truncated"), edges, strict=True):
            if roll < p:
                fault = name
                break
            roll -= p
        if fault == "500":
            return _error(500, "injected failure", "InternalServerError")
        if fault == "429":
            resp = _error(429, "rate limited", "RateLimitError")
            resp.headers["Retry-After"] = f"{f.retry_after:g}"
            return resp
        if fault == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        state.in_flight += 1
        try:
            if fault == "hang":
                await asyncio.sleep(f.hang_seconds)
            delay = next((s for phrase, s in state.latencies if phrase in text), f.delay)
            delay = (delay or 0.0) + state.seconds_per_prompt_token * prompt_tokens  # a prefill's cost
            if delay:
                await asyncio.sleep(delay)
        finally:
            state.in_flight -= 1
        answer = _answer_for(state, body, text)
        completion_tokens = max(1, len(answer) // 4)
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        finish = "stop"
        shape = state.reasoning
        if shape is not None:
            trace = TRACE[: len(TRACE) // 2] if shape == "cut" else TRACE
            trace_tokens = max(1, len(trace) // 4)
            usage["completion_tokens"] = completion_tokens + trace_tokens
            if shape == "inline":
                answer = message["content"] = f"<think>{trace}</think>\n\n{answer}"
            else:
                message["reasoning" if shape != "reasoning_content" else "reasoning_content"] = trace
                usage["completion_tokens_details"] = {"reasoning_tokens": trace_tokens}
            if shape == "cut":
                message["content"], finish = None, "length"
                usage["completion_tokens"] = trace_tokens
        if request.path.endswith("chat/completions"):
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": answer, "finish_reason": "stop"}
            obj = "text_completion"
        payload = orjson.dumps(
            {"id": "cmpl-fake", "object": obj, "model": body["model"], "choices": [choice], "usage": usage}
        )
        if fault == "truncated":
            return web.Response(body=payload[: len(payload) // 2], content_type="application/json")
        state.answered[digest] += 1
        state.answers += 1
        await state.gate.wake()
        return web.Response(body=payload, content_type="application/json")

    async def tokenize(request: web.Request) -> web.Response:
        body = await request.json()
        text = _prompt_text(body)
        tokens = [ord(c) for c in text]  # one token per character: exact and reversible
        return web.json_response(
            {"count": len(tokens), "max_model_len": state.max_model_len, "tokens": tokens}
        )

    async def detokenize(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"prompt": "".join(chr(t) for t in body["tokens"])})

    async def metrics(request: web.Request) -> web.Response:
        # Held requests are accepted and not yet running: in vLLM's terms, queued like any over the 8 slots.
        accepted = state.in_flight + state.gate.held
        waiting = max(0, accepted - 8) + state.faults.extra_waiting
        running = min(8, accepted)
        labels = f'{{engine="0",model_name="{state.model}"}}'
        text = (
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{labels} {waiting}.0\n"
            f"vllm:num_requests_running{labels} {running}.0\n"
        )
        return web.Response(text=text)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": "0.0.0-fake"})

    def snapshot() -> dict[str, Any]:
        return {
            "received": state.received,
            "answered": dict(state.answered),
            "bodies_seen": dict(state.bodies_seen),
            "held": state.gate.held,
            "answers": state.answers,
        }

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(snapshot())

    async def release(request: web.Request) -> web.Response:
        gate = state.gate
        async with gate.condition():
            if "n" in request.query:
                gate.permits += int(request.query["n"])
            else:
                gate.holding = False
            gate.condition().notify_all()
        return web.json_response(snapshot())

    async def hold(request: web.Request) -> web.Response:
        gate = state.gate
        async with gate.condition():
            gate.holding, gate.permits = True, 0
        return web.json_response(snapshot())

    async def wait(request: web.Request) -> web.Response:
        """Long poll: answer once ``held`` requests are held and ``answered`` answers were given in all (408
        after ``timeout`` seconds)."""
        held, answered = int(request.query.get("held", "1")), int(request.query.get("answered", "0"))
        gate = state.gate
        cond = gate.condition()
        gate.watchers += 1
        try:
            async with cond:
                await asyncio.wait_for(
                    cond.wait_for(lambda: gate.held >= held and state.answers >= answered),
                    float(request.query.get("timeout", "120")),
                )
        except TimeoutError:
            return web.json_response(snapshot(), status=408)
        finally:
            gate.watchers -= 1
        return web.json_response(snapshot())

    async def recent(request: web.Request) -> web.Response:
        return web.json_response(list(state.recent))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", completion)
    app.router.add_post("/v1/completions", completion)
    if state.vllm_api:
        app.router.add_post("/tokenize", tokenize)
        app.router.add_post("/detokenize", detokenize)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/version", version)
    app.router.add_get("/health", health)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_release", release)
    app.router.add_post("/_hold", hold)
    app.router.add_get("/_wait", wait)
    app.router.add_get("/_requests", recent)
    return app


def _authorised(state: State, request: web.Request) -> bool:
    return state.api_key is None or request.headers.get("Authorization") == f"Bearer {state.api_key}"


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--also-serve", action="append", default=[], help="one more served model name")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--answer", default=None, help="answer every request with this text")
    parser.add_argument("--ready-delay", type=float, default=0.0, help="seconds before listening")
    for name in ("p500", "p429", "preset", "phang", "ptruncated", "delay", "retry_after", "hang_seconds"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=None)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--status-always", type=int, default=0)
    parser.add_argument("--extra-waiting", type=int, default=0)
    parser.add_argument("--hold", action="store_true", help="hold completion requests until POST /_release")
    parser.add_argument("--no-vllm-api", action="store_true", help="a plain OpenAI-compatible server")
    parser.add_argument("--request-log", default=None, help="append every completion body received here")
    parser.add_argument("--reasoning", choices=REASONING_SHAPES, help="answer as a reasoning model does")
    parser.add_argument("--latency-map", default=None, help="JSON file: [[phrase, seconds], ...] per request")
    parser.add_argument("--seconds-per-prompt-token", type=float, default=0.0,
                        help="latency added per prompt token (len/4), as a prefill")  # fmt: skip
    args = parser.parse_args()
    faults = Faults(
        fail_first=args.fail_first, status_always=args.status_always, extra_waiting=args.extra_waiting
    )
    for name in ("p500", "p429", "preset", "phang", "ptruncated", "delay", "retry_after", "hang_seconds"):
        if getattr(args, name) is not None:
            setattr(faults, name, getattr(args, name))
    state = State(
        model=args.model, also=tuple(args.also_serve), max_model_len=args.max_model_len, api_key=args.api_key,
        faults=faults, vllm_api=not args.no_vllm_api, reasoning=args.reasoning,
    )  # fmt: skip
    state.rng.seed(args.seed)
    state.answer = args.answer
    state.request_log = args.request_log
    state.gate.holding = args.hold
    state.seconds_per_prompt_token = args.seconds_per_prompt_token
    if args.latency_map:
        with open(args.latency_map, encoding="utf-8") as fh:
            state.latencies = tuple((str(p), float(t)) for p, t in orjson.loads(fh.read()))
    if args.ready_delay:
        import time

        time.sleep(args.ready_delay)
    try:  # uvloop makes the server cheap enough that a benchmark measures the client, not the server
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # handler_cancellation: a request whose client went away (killed, timed out) stops waiting or hanging.
    app = make_app(state)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
