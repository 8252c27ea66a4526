"""The eval loop's scheduling: tasks → requests → client → committer, with clean shutdown.

Requests are expanded lazily by the tasks and pass through a bounded queue, so memory does not grow
with the number of items. ``concurrency`` workers send them; a worker whose index is at or above the
current limit waits (pipeline/evaluation/concurrency.py: backpressure lowers concurrency without
cancelling anything). Results go to the write-behind committer (pipeline/evaluation/committer.py); only
committed ones count as done.

When the store falls behind, workers wait for room before sending more, and when it cannot commit at all
(a full disk) the run stops sending at once and ends with the store's error, so no request is sent whose
result could not be kept.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
from asyncio_throttle import Throttler  # type: ignore[attr-defined]

from pipeline.config import ChatMode, EvalConfig
from pipeline.errors import MedsweepError
from pipeline.evaluation.client import Client, Outcome
from pipeline.evaluation.committer import Committer, Counted, max_uncommitted
from pipeline.evaluation.concurrency import ConcurrencyController, LoadReading
from pipeline.evaluation.loglik import LoglikScorer, Scored
from pipeline.evaluation.progress import Progress
from pipeline.evaluation.send_order import send_order
from pipeline.evaluation.thinking import NOT_THINKING, Thinking
from pipeline.request import Request, content_key, request_body
from pipeline.store.database import Store
from pipeline.store.schema import ResultRecord
from pipeline.tasks.base import AppliedTruncation, RenderContext, Task, TokenCounter
from pipeline.tasks.prompts import prompt_hashes

_SETTLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class EvalTarget:
    """The model an eval sends to, as served: its key identity, the id the endpoint knows it by, and how to
    prompt it (not pipeline.serving.engines.Target, what a server is started for)."""

    identity: str
    served_name: str
    chat_mode: ChatMode
    max_model_len: int
    truncation: AppliedTruncation = (
        "letters"  # what applies at this endpoint (pipeline.evaluation.truncation)
    )
    thinking: Thinking = NOT_THINKING  # a reasoning model's budget, template switch and splitter


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    interrupted: bool
    sent: int
    skipped: int
    # Wall-clock marks (time.time()) of the sending, for a sweep's timeline (pipeline/sweep/timeline.py):
    first_sent_at: float | None = None  # the first request went out (None: nothing to send)
    tail_at: float | None = None  # the first worker found no more work: the rest is the tail
    generated_at: float = 0.0  # the last answer was stored


class EvalRun:
    """One model × a list of tasks, streamed through ``client`` into ``store``."""

    def __init__(
        self,
        config: EvalConfig,
        target: EvalTarget,
        tasks: Sequence[Task],
        client: Client,
        store: Store,
        counter: TokenCounter,
        progress: Progress,
        *,
        provenance: dict[str, Any] | None = None,
        server_load: LoadReading | None = None,
        loglik: LoglikScorer | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self.tasks = list(tasks)
        self.client = client
        self.store = store
        self.counter = counter
        self.progress = progress
        self.provenance = provenance or {}
        self.server_load = server_load  # the server's load (pipeline.endpoint), when it tells
        self.loglik = loglik  # --variant loglik: requests with options are scored, not generated
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        concurrency = config.client.concurrency
        self.controller = ConcurrencyController(concurrency, config.client.max_waiting, progress)
        self.committer = Committer(
            store,
            max_uncommitted(concurrency),
            on_commit=self._committed,
            on_failure=self.stop,
            refresh=progress.refresh,
        )
        self._stopping = asyncio.Event()
        self._sampling = config.sampling.to_sampling()
        self._sampling_body = self._sampling.as_body()
        self._queue: asyncio.Queue[tuple[Request, str] | None] = asyncio.Queue(maxsize=2 * concurrency)
        self._in_flight = 0
        self._sent = 0
        self._first_sent_at: float | None = None
        self._tail_at: float | None = None
        self._throttler = _throttler(config.client.rate)
        # The server has all the work it can take (in flight at the limit, or nothing left to send): what
        # the eval process does from here on costs the server nothing.
        self.busy = asyncio.Event()

    @property
    def limit(self) -> int:
        """The current in-flight limit (backpressure moves it)."""
        return self.controller.limit

    @property
    def lowest_limit(self) -> int:
        return self.controller.lowest_limit

    # --- public ---

    async def run(self) -> RunResult:
        cfg = self.config
        model, variant = self.target.identity, cfg.run.variant
        self.store.begin_run(self.run_id, model, variant, self._run_config(), self.provenance)
        for task in self.tasks:
            total = task.expected_count(cfg.run.data_dir, cfg.run.limit)
            self.store.set_plan(model, variant, task.name, total, self.run_id)
            self.progress.tasks[task.name].total = total
        done = self.store.succeeded_keys(model, variant)

        loop = asyncio.get_running_loop()
        installed = self._install_signals(loop)
        producer = loop.create_task(self._produce(done))
        workers = [loop.create_task(self._work(i)) for i in range(cfg.client.concurrency)]
        flusher = loop.create_task(self.committer.run())
        monitor = (
            loop.create_task(self.controller.run(self.server_load))
            if self.server_load is not None and cfg.client.backpressure
            else None
        )
        self.progress.start()
        interrupted = False
        all_workers = asyncio.gather(*workers)
        stop_wait = loop.create_task(self._stopping.wait())
        try:
            pending: set[asyncio.Future[Any]] = {all_workers, stop_wait, producer}
            while all_workers in pending and stop_wait in pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if producer in finished and producer.exception() is not None:
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(all_workers, return_exceptions=True)
                    raise producer.exception()  # type: ignore[misc]
            if self._stopping.is_set() and not all_workers.done():
                interrupted = self.committer.error is None
                producer.cancel()
                await self._settle(workers)
            await asyncio.gather(all_workers, return_exceptions=True)
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        finally:
            stop_wait.cancel()
            flusher.cancel()
            if monitor is not None:
                monitor.cancel()
            # The writer thread finishes its batch before the flusher ends; only then write the rest here.
            await asyncio.gather(flusher, return_exceptions=True)
            self.committer.final_flush()
            self.progress.stop()
            for sig, previous in installed.items():
                signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        store_error = self.committer.error
        if store_error is not None:
            raise MedsweepError(
                f"{store_error}; {self.committer.lost} request(s) sent after the last commit were not kept "
                "(the rerun sends them again)",
                exit_code=store_error.exit_code,
            )
        if not interrupted:
            self.store.finish_run(self.run_id)
        skipped = sum(p.skipped for p in self.progress.tasks.values())
        return RunResult(
            self.run_id, interrupted, self._sent, skipped, self._first_sent_at, self._tail_at, time.time()
        )

    def stop(self) -> None:
        """Stop sending; in-flight requests get a few seconds to settle."""
        self._stopping.set()

    # --- producer and workers ---

    async def _produce(self, done: set[str]) -> None:
        cfg = self.config
        put = self._queue.put
        # What is left to send, in the order it is sent (longest prompts first by default: send_order.py).
        async with aclosing(send_order(self._unsent(done), cfg.run.send_order, _request_of)) as ordered:
            async for item in ordered:
                await put(item)
        # Every worker must see its end marker, parked ones included: backpressure ends here.
        self.controller.drain()
        for _ in range(cfg.client.concurrency):
            await put(None)

    async def _unsent(self, done: set[str]) -> AsyncIterator[tuple[Request, str]]:
        """Every task's requests whose key has no stored answer yet, with their keys, in the tasks' order."""
        cfg = self.config
        ctx = render_context(cfg, self.target, self.counter)
        identity, thinking = self.target.identity, self.target.thinking
        options = prompt_options(cfg, self.target)
        for task in self.tasks:
            async for rendered in task.requests(cfg.run.data_dir, ctx):
                # Reasoning stays off for scored options (--variant loglik): no budget, no template switch.
                request = rendered if rendered.choices else thinking.apply(rendered)
                key = content_key(identity, request, self._sampling, options)
                if key in done:
                    self.progress.add_skipped(task.name)
                    continue
                yield request, key

    async def _work(self, index: int) -> None:
        throttler = self._throttler
        served, sampling_body, send = self.target.served_name, self._sampling_body, self.client.send
        slot, room = self.controller.slot, self.committer.wait_for_room
        split = self.target.thinking.split
        while not self._stopping.is_set():
            # Wait for a slot before taking work, so that a parked worker never holds a request.
            await slot(index)
            await room(self._stopping)
            if self._stopping.is_set():
                return
            item = await self._queue.get()
            if item is None:
                if self._tail_at is None:
                    self._tail_at = time.time()  # nothing left to send: in-flight falls from here on
                self.busy.set()
                return
            if throttler is not None:
                async with throttler:
                    pass
            request, key = item
            scored: Scored | None = None
            if self._first_sent_at is None:
                self._first_sent_at = time.time()
            self._in_flight += 1
            self.progress.in_flight = self._in_flight
            if self._in_flight >= self.controller.limit:
                self.busy.set()
            try:
                if request.choices and self.loglik is not None:
                    scored = await self.loglik.score(request, key)
                else:
                    chat = request.kind == "chat"
                    body = request_body(request, served, sampling_body)
                    outcome = await send(
                        "chat/completions" if chat else "completions", body, chat=chat, split=split
                    )
            finally:
                self._in_flight -= 1
                self.progress.in_flight = self._in_flight
            self._sent += 1
            if scored is not None:
                self._record(request, key, scored.outcome, scored.request_json, scored.choice_logprobs)
            else:
                self._record(request, key, outcome)

    async def _settle(self, workers: list[asyncio.Task[None]]) -> None:
        if self.committer.error is not None:  # nothing in flight can be kept: no point waiting for it
            self.committer.lost += self._in_flight
            deadline = time.monotonic()
        else:
            deadline = time.monotonic() + _SETTLE_SECONDS
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in workers:
            w.cancel()

    # --- results ---

    def _record(
        self,
        request: Request,
        key: str,
        outcome: Outcome,
        request_json: str | None = None,
        choice_logprobs: str | None = None,
    ) -> None:
        error_class = outcome.error_class.value if outcome.error_class is not None else None
        if request_json is None:
            request_json = _request_meta(request, self._sampling_body)
        row = ResultRecord(
            key=key, run_id=self.run_id, model=self.target.identity, variant=self.config.run.variant,
            task=request.task, subtask=request.subtask, item_id=request.item_id, repeat=request.repeat,
            prompt_hash=request.prompt_hash(), request_json=request_json,
            reference_json=orjson.dumps(request.reference).decode(),
            status="succeeded" if outcome.ok else "failed", error_class=error_class,
            error_message=outcome.error_message,
            output=outcome.text if outcome.ok and not outcome.no_answer else None,
            finish_reason=outcome.finish_reason, prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens, latency_s=outcome.latency_s,
            attempts=outcome.attempts, updated_at=time.time(), reasoning=outcome.reasoning,
            reasoning_tokens=outcome.reasoning_tokens, choice_logprobs=choice_logprobs,
        )  # fmt: skip
        self.committer.add(row, Counted(request.task, outcome.ok, error_class, outcome.completion_tokens))

    def _committed(self, counted: list[Counted]) -> None:
        add = self.progress.add_committed
        for c in counted:
            add(c.task, c.ok, c.error_class, c.output_tokens)
        self.progress.retries = self.client.retries
        self.progress.retries_by_class = self.client.retries_by_class

    # --- misc ---

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> dict[int, Any]:
        """SIGINT/SIGTERM stop the run gracefully; returns the handlers to put back afterwards.

        Plain ``signal.signal`` swaps, not ``loop.add_signal_handler``: removing a loop handler resets the
        signal to its default action (SIGTERM kills), so a signal that came while scoring or printing the
        summary would end the eval without the resume line. A swap between two Python handlers leaves no
        moment in which a signal is not handled.
        """
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: object) -> None:
            loop.call_soon_threadsafe(self._on_signal)

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(self) -> None:
        if self._stopping.is_set():
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        self.stop()

    def _run_config(self) -> dict[str, Any]:
        data = self.config.public_dict()
        data["prompts_sha256"] = prompt_hashes([t.name for t in self.tasks])
        data["sampling_body"] = self._sampling_body
        data["target"] = {
            "identity": self.target.identity,
            "served_name": self.target.served_name,
            "chat_mode": self.target.chat_mode,
            "max_model_len": self.target.max_model_len,
            "truncation": self.target.truncation,
            "reasoning": self.target.thinking.as_config(),
        }
        return data


def render_context(config: EvalConfig, target: EvalTarget, counter: TokenCounter) -> RenderContext:
    """How the run's requests are rendered (the recheck renders them again the same way)."""
    return RenderContext(
        chat_mode=target.chat_mode,
        max_model_len=target.thinking.prompt_room(target.max_model_len),
        counter=counter,
        variant=config.run.variant,
        limit=config.run.limit,
        demonstrations=config.run.demonstrations,
        truncation=target.truncation,
    )


def prompt_options(config: EvalConfig, target: EvalTarget) -> dict[str, str]:
    """The run-wide choices that shape prompts: part of every content key, so that switching one never
    reuses an answer to a prompt built the other way."""
    return {
        "demonstrations": config.run.demonstrations,
        "truncation": target.truncation,
        **target.thinking.key_options(),
    }


def _request_of(item: tuple[Request, str]) -> Request:
    return item[0]


def _throttler(rate: float | None) -> Throttler | None:
    """One rate cap shared by all workers; fractional rates become N requests per N/rate seconds."""
    if rate is None:
        return None
    per_period = max(1, round(rate))
    return Throttler(rate_limit=per_period, period=per_period / rate)


def _request_meta(request: Request, sampling_body: dict[str, Any]) -> str:
    """What was asked, without the prompt text (it is re-rendered from data; prompt_hash pins it)."""
    return orjson.dumps(
        {
            "kind": request.kind,
            "max_tokens": request.max_tokens,
            "sampling": sampling_body,
            "response_format": request.response_format,
            "prefix_group": request.prefix_group,
            "extra": request.extra_body,
        }
    ).decode()
