"""The in-flight limit of an eval and the backpressure controller that moves it by the server's queue.

A worker whose index is at or above the limit parks before taking work, which is how backpressure lowers
concurrency without cancelling anything. The controller reads the server's waiting queue once a second
(through a callable: where the number comes from is the endpoint's business) and keeps it short: it
lowers the limit when the queue grows past ``max_waiting`` and raises it when the queue drains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pipeline.evaluation.progress import Progress

QueueDepth = Callable[[], Awaitable[int | None]]  # the server's waiting requests; None: unknown this time
_INTERVAL_S = 1.0


class ConcurrencyController:
    """The current limit (at most ``cap``), the lowest it reached, and the parking of workers above it."""

    def __init__(self, cap: int, max_waiting: int, progress: Progress) -> None:
        self.cap = cap
        self.max_waiting = max_waiting
        self.limit = cap
        self.lowest_limit = cap  # how far backpressure had to go (reported, and tested)
        self.progress = progress
        self._changed = asyncio.Event()
        self._draining = False  # all requests are queued: no worker may park any more
        progress.limit = cap

    async def slot(self, index: int) -> None:
        """Wait until worker ``index`` is under the limit (or the run is draining)."""
        while index >= self.limit and not self._draining:
            self._changed.clear()
            await self._changed.wait()

    def drain(self) -> None:
        """Every request is queued: parked workers go on, so that each sees its end marker."""
        self._draining = True
        self._changed.set()

    def observe(self, waiting: int) -> None:
        """One reading of the server's queue: the limit falls by a fifth, or rises by cap/16."""
        self.progress.queue_depth = waiting
        if self._draining:
            return
        if waiting > self.max_waiting and self.limit > 1:
            self.limit = max(1, int(self.limit * 0.8))
            self.lowest_limit = min(self.lowest_limit, self.limit)
        elif waiting <= self.max_waiting // 2 and self.limit < self.cap:
            self.limit = min(self.cap, self.limit + max(1, self.cap // 16))
            self._changed.set()
        self.progress.limit = self.limit

    async def run(self, queue_depth: QueueDepth) -> None:
        """Read the queue once a second and adjust, until cancelled."""
        while True:
            await asyncio.sleep(_INTERVAL_S)
            waiting = await queue_depth()
            if waiting is not None:
                self.observe(waiting)
