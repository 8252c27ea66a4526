"""The in-flight limit of an eval and the backpressure controller that moves it by the server's load.

A worker whose index is at or above the limit parks before taking work, which is how backpressure lowers
concurrency without cancelling anything. The controller reads the server's load once a second (through a
callable: where the reading comes from is the endpoint's business).

It acts only when the server is saturated: its queue is longer than ``max_waiting`` AND its KV cache is
nearly full (vLLM then preempts running requests, and more in flight only adds waiting). A long queue with
room in the KV cache is a batch-hungry server whose prefills are chunked behind each other: cutting
in-flight there shrank the running batch and cost a third of the throughput (issue #23). And it never lowers
the limit below what the server was seen running at once plus ``max_waiting`` (``floor``): the running batch
stays full and a short queue is ready to refill it. docs/performance.md has the measurements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pipeline.endpoint import ServerLoad
from pipeline.evaluation.progress import Progress

LoadReading = Callable[[], Awaitable[ServerLoad | None]]  # the server's load; None: unknown this time
_INTERVAL_S = 1.0
KV_FULL = 0.9  # KV-cache usage at which the server is saturated (vLLM preempts near 1.0)
KV_ROOM = 0.75  # below this the server has room again: the limit may rise (hysteresis against KV_FULL)


class ConcurrencyController:
    """The current limit (at most ``cap``), the lowest it reached, and the parking of workers above it."""

    def __init__(self, cap: int, max_waiting: int, progress: Progress) -> None:
        self.cap = cap
        self.max_waiting = max_waiting
        self.limit = cap
        self.lowest_limit = cap  # how far backpressure had to go (reported, and tested)
        self.peak_running = 0  # the most requests the server was seen running at once
        self.progress = progress
        self._changed = asyncio.Event()
        self._draining = False  # all requests are queued: no worker may park any more
        progress.limit = cap

    @property
    def floor(self) -> int:
        """The lowest limit backpressure may set: the server's largest running batch plus a short queue."""
        return min(self.cap, max(1, self.peak_running + self.max_waiting))

    async def slot(self, index: int) -> None:
        """Wait until worker ``index`` is under the limit (or the run is draining)."""
        while index >= self.limit and not self._draining:
            self._changed.clear()
            await self._changed.wait()

    def drain(self) -> None:
        """Every request is queued: parked workers go on, so that each sees its end marker."""
        self._draining = True
        self._changed.set()

    def saturated(self, load: ServerLoad) -> bool:
        """A queue past ``max_waiting`` and a nearly full KV cache (unknown KV usage: the queue alone)."""
        full = load.kv_usage is None or load.kv_usage >= KV_FULL
        return load.waiting > self.max_waiting and full

    def observe(self, load: ServerLoad) -> None:
        """One reading of the server: when saturated the limit falls by a fifth (not below ``floor``); when
        the queue drains or the KV cache has room it rises by cap/16."""
        self.progress.queue_depth = load.waiting
        if load.running is not None:
            self.peak_running = max(self.peak_running, load.running)
        if self._draining:
            return
        has_room = load.waiting <= self.max_waiting // 2 or (
            load.kv_usage is not None and load.kv_usage < KV_ROOM
        )
        if self.limit < self.floor:  # the server was seen running more than the limit allows: follow it
            self.limit = self.floor
            self._changed.set()
        elif self.saturated(load) and self.limit > self.floor:
            self.limit = max(self.floor, int(self.limit * 0.8))
            self.lowest_limit = min(self.lowest_limit, self.limit)
        elif has_room and self.limit < self.cap:
            self.limit = min(self.cap, self.limit + max(1, self.cap // 16))
            self._changed.set()
        self.progress.limit = self.limit

    async def run(self, read_load: LoadReading) -> None:
        """Read the server's load once a second and adjust, until cancelled."""
        while True:
            await asyncio.sleep(_INTERVAL_S)
            load = await read_load()
            if load is not None:
                self.observe(load)
