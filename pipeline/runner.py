"""The eval loop: tasks → requests → client → store, with progress, backpressure and clean shutdown.

Requests are expanded lazily by the tasks and pass through a bounded queue, so memory does not grow
with the number of items. ``concurrency`` workers send them; a worker whose index is at or above the
current limit waits, which is how backpressure lowers concurrency without cancelling anything. Results
are committed in small batches; only then do they count as done.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from asyncio_throttle import Throttler  # type: ignore[attr-defined]

from pipeline.client import Client, Outcome
from pipeline.config import EvalConfig
from pipeline.progress import Progress
from pipeline.request import Request, content_key, merge_stops
from pipeline.store import ResultRow, Store
from pipeline.tasks.base import AppliedTruncation, RenderContext, Task, TokenCounter
from pipeline.tasks.prompts import prompt_hashes

_FLUSH_SECONDS = 0.05
_SETTLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    """The model as served: its key identity, the id the endpoint knows it by, and how to prompt it."""

    identity: str
    served_name: str
    chat_mode: str
    max_model_len: int
    truncation: AppliedTruncation = "letters"  # what applies at this endpoint (pipeline.truncation)


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    interrupted: bool
    sent: int
    skipped: int


class EvalRun:
    """One model × a list of tasks, streamed through ``client`` into ``store``."""

    def __init__(
        self,
        config: EvalConfig,
        target: Target,
        tasks: Sequence[Task],
        client: Client,
        store: Store,
        counter: TokenCounter,
        progress: Progress,
        *,
        provenance: dict[str, Any] | None = None,
        metrics_url: str | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self.tasks = list(tasks)
        self.client = client
        self.store = store
        self.counter = counter
        self.progress = progress
        self.provenance = provenance or {}
        self.metrics_url = metrics_url
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.limit = config.client.concurrency
        self.lowest_limit = self.limit  # how far backpressure had to go (reported, and tested)
        self._limit_changed = asyncio.Event()
        self._draining = False  # all requests are queued: no worker may park any more
        self._stopping = asyncio.Event()
        self._buffer: list[ResultRow] = []
        self._pending_progress: list[tuple[str, bool, str | None, int]] = []
        self._sampling = config.sampling.to_sampling()
        self._sampling_body = self._sampling.as_body()
        self._queue: asyncio.Queue[tuple[Request, str] | None] = asyncio.Queue(maxsize=2 * self.limit)
        self._in_flight = 0
        self._sent = 0
        self._throttler = _throttler(config.client.rate)

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
        self.progress.limit = self.limit

        loop = asyncio.get_running_loop()
        installed = self._install_signals(loop)
        producer = loop.create_task(self._produce(done))
        workers = [loop.create_task(self._work(i)) for i in range(cfg.client.concurrency)]
        flusher = loop.create_task(self._flush_loop())
        monitor = loop.create_task(self._monitor()) if self.metrics_url and cfg.client.backpressure else None
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
                interrupted = True
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
            self._flush()
            self.progress.stop()
            for sig in installed:
                loop.remove_signal_handler(sig)
        if not interrupted:
            self.store.finish_run(self.run_id)
        skipped = sum(p.skipped for p in self.progress.tasks.values())
        return RunResult(self.run_id, interrupted, self._sent, skipped)

    def stop(self) -> None:
        """Stop sending; in-flight requests get a few seconds to settle."""
        self._stopping.set()

    # --- producer and workers ---

    async def _produce(self, done: set[str]) -> None:
        cfg = self.config
        ctx = RenderContext(
            chat_mode=self.target.chat_mode,  # type: ignore[arg-type]
            max_model_len=self.target.max_model_len,
            counter=self.counter,
            variant=cfg.run.variant,
            limit=cfg.run.limit,
            demonstrations=cfg.run.demonstrations,
            truncation=self.target.truncation,
        )
        identity, put = self.target.identity, self._queue.put
        options = prompt_options(cfg, self.target)
        for task in self.tasks:
            async for request in task.requests(cfg.run.data_dir, ctx):
                key = content_key(identity, request, self._sampling, options)
                if key in done:
                    self.progress.add_skipped(task.name)
                    continue
                await put((request, key))
        # Every worker must see its end marker, parked ones included: backpressure ends here.
        self._draining = True
        self._limit_changed.set()
        for _ in range(cfg.client.concurrency):
            await put(None)

    async def _work(self, index: int) -> None:
        throttler = self._throttler
        served, sampling_body, send = self.target.served_name, self._sampling_body, self.client.send
        while not self._stopping.is_set():
            # Wait for a slot before taking work, so that a parked worker never holds a request.
            while index >= self.limit and not self._draining:
                self._limit_changed.clear()
                await self._limit_changed.wait()
            item = await self._queue.get()
            if item is None:
                return
            if throttler is not None:
                async with throttler:
                    pass
            request, key = item
            body = _body(request, served, sampling_body)
            chat = request.kind == "chat"
            self._in_flight += 1
            self.progress.in_flight = self._in_flight
            try:
                outcome = await send("chat/completions" if chat else "completions", body, chat=chat)
            finally:
                self._in_flight -= 1
                self.progress.in_flight = self._in_flight
            self._sent += 1
            self._record(request, key, outcome)

    async def _settle(self, workers: list[asyncio.Task[None]]) -> None:
        deadline = time.monotonic() + _SETTLE_SECONDS
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for w in workers:
            w.cancel()

    # --- store ---

    def _record(self, request: Request, key: str, outcome: Outcome) -> None:
        self._buffer.append(
            (
                key, self.run_id, self.target.identity, self.config.run.variant, request.task,
                request.subtask, request.item_id, request.repeat, request.prompt_hash(),
                _request_meta(request, self._sampling_body), orjson.dumps(request.reference).decode(),
                "succeeded" if outcome.ok else "failed", outcome.error_class, outcome.error_message,
                outcome.text if outcome.ok else None, outcome.finish_reason, outcome.prompt_tokens,
                outcome.completion_tokens, outcome.latency_s, outcome.attempts, time.time(),
            )
        )  # fmt: skip
        self._pending_progress.append(
            (request.task, outcome.ok, outcome.error_class, outcome.completion_tokens)
        )

    def _take(self) -> tuple[list[ResultRow], list[tuple[str, bool, str | None, int]]]:
        rows, self._buffer = self._buffer, []
        pending, self._pending_progress = self._pending_progress, []
        return rows, pending

    def _committed(self, pending: list[tuple[str, bool, str | None, int]]) -> None:
        add = self.progress.add_committed
        for task, ok, error_class, tokens in pending:
            add(task, ok, error_class, tokens)
        self.progress.retries = self.client.retries
        self.progress.retries_by_class = self.client.retries_by_class

    def _flush(self) -> None:
        rows, pending = self._take()
        if rows:
            self.store.write_results(rows)
        self._committed(pending)

    async def _flush_loop(self) -> None:
        """Commit in a writer thread so that an fsync never stalls the event loop; count after commit."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medsweep-store") as writer:
            ticks = 0
            while True:
                await asyncio.sleep(_FLUSH_SECONDS)
                rows, pending = self._take()
                if rows:
                    write = loop.run_in_executor(writer, self.store.write_results, rows)
                    try:
                        await asyncio.shield(write)
                    except asyncio.CancelledError:
                        await write
                        self._committed(pending)
                        raise
                self._committed(pending)
                ticks += 1
                if ticks % 5 == 0:
                    self.progress.refresh()

    # --- backpressure ---

    async def _monitor(self) -> None:
        """Keep vLLM's waiting queue short: lower concurrency when it grows, raise it when it drains."""
        from pipeline.backpressure import read_queue_depth

        assert self.metrics_url is not None
        cap, target = self.config.client.concurrency, self.config.client.max_waiting
        while True:
            await asyncio.sleep(1.0)
            waiting = await read_queue_depth(self.client.session, self.metrics_url)
            if waiting is None:
                continue
            self.progress.queue_depth = waiting
            if self._draining:
                continue
            if waiting > target and self.limit > 1:
                self.limit = max(1, int(self.limit * 0.8))
                self.lowest_limit = min(self.lowest_limit, self.limit)
            elif waiting <= target // 2 and self.limit < cap:
                self.limit = min(cap, self.limit + max(1, cap // 16))
                self._limit_changed.set()
            self.progress.limit = self.limit

    # --- misc ---

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass
        return installed

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
        }
        return data


def prompt_options(config: EvalConfig, target: Target) -> dict[str, str]:
    """The run-wide choices that shape prompts: part of every content key, so that switching one never
    reuses an answer to a prompt built the other way."""
    return {"demonstrations": config.run.demonstrations, "truncation": target.truncation}


def _throttler(rate: float | None) -> Throttler | None:
    """One rate cap shared by all workers; fractional rates become N requests per N/rate seconds."""
    if rate is None:
        return None
    per_period = max(1, round(rate))
    return Throttler(rate_limit=per_period, period=per_period / rate)


def _body(request: Request, served: str, sampling_body: dict[str, Any]) -> bytes:
    body: dict[str, Any] = {"model": served, "max_tokens": request.max_tokens, **sampling_body}
    if request.messages is not None:
        body["messages"] = request.messages
    else:
        body["prompt"] = request.prompt
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.extra_body:
        extra = dict(request.extra_body)
        if "stop" in extra and "stop" in body:  # a task's stop strings add to the model's
            extra["stop"] = merge_stops(body["stop"], extra["stop"])
        body.update(extra)
    return orjson.dumps(body)


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
