"""Write-behind commits of an eval's answers: buffered, committed in a writer thread, counted after commit.

Answers are buffered and committed in small batches (every 50 ms, or at once when the buffer reaches its
cap) in a writer thread, so that an fsync never stalls the event loop. Only a committed answer is counted
as done. Answers not yet committed stay under a cap (``max_uncommitted``): senders wait for room when the
store falls behind; when it cannot commit at all (a full disk) the committer keeps the store's error, says
so through ``on_failure`` (the run stops sending) and counts the answers that were not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pipeline.errors import MedsweepError
from pipeline.store.database import Store
from pipeline.store.schema import ResultRecord

_FLUSH_SECONDS = 0.05
_REFRESH_EVERY = 5  # flushes between two progress refreshes


def max_uncommitted(concurrency: int) -> int:
    """Answers received but not yet committed, at most (the workers in flight may add one each)."""
    return max(64, 2 * concurrency)


@dataclass(frozen=True, slots=True)
class Counted:
    """What progress counts for one answer, once it is committed."""

    task: str
    ok: bool
    error_class: str | None
    output_tokens: int


class Committer:
    """Buffers answers and commits them to ``store``; ``on_commit`` counts each batch once it is kept."""

    def __init__(
        self,
        store: Store,
        max_uncommitted: int,
        *,
        on_commit: Callable[[list[Counted]], None],
        on_failure: Callable[[], None],
        refresh: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.error: MedsweepError | None = None  # the store cannot commit: the run stops
        self.lost = 0  # answers received whose results could not be committed
        self._cap = max_uncommitted
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._refresh = refresh
        self._buffer: list[ResultRecord] = []
        self._counted: list[Counted] = []
        self._writing = 0  # rows of the batch the writer thread is committing
        self._room = asyncio.Event()  # set when the uncommitted answers fall under the cap
        self._flush_now = asyncio.Event()

    def add(self, row: ResultRecord, counted: Counted) -> None:
        self._buffer.append(row)
        self._counted.append(counted)

    async def wait_for_room(self, stopping: asyncio.Event) -> None:
        """Return once the answers not yet committed are under the cap (or the run is stopping)."""
        while len(self._buffer) + self._writing >= self._cap and not stopping.is_set():
            self._room.clear()
            self._flush_now.set()
            await self._room.wait()

    async def run(self) -> None:
        """The flush loop, until cancelled; a batch being written when cancelled is finished first."""
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medsweep-store") as writer:
            ticks = 0
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush_now.wait(), _FLUSH_SECONDS)
                self._flush_now.clear()
                rows, counted = self._take()
                if rows:
                    self._writing = len(rows)
                    write = loop.run_in_executor(writer, self.store.write_results, rows)
                    try:
                        await asyncio.shield(write)
                    except asyncio.CancelledError:
                        try:
                            await write
                        except MedsweepError as exc:
                            self._cannot_commit(exc, len(rows))
                        else:
                            self._on_commit(counted)
                        raise
                    except MedsweepError as exc:
                        self._cannot_commit(exc, len(rows))
                        return
                    finally:
                        self._writing = 0
                        self._room.set()
                self._on_commit(counted)
                ticks += 1
                if ticks % _REFRESH_EVERY == 0:
                    self._refresh()

    def final_flush(self) -> None:
        """Commit what is left, in this thread (after ``run`` has ended)."""
        rows, counted = self._take()
        if self.error is not None:
            self.lost += len(rows)
            return
        if rows:
            try:
                self.store.write_results(rows)
            except MedsweepError as exc:
                self._cannot_commit(exc, len(rows))
                return
        self._on_commit(counted)

    def _take(self) -> tuple[list[ResultRecord], list[Counted]]:
        rows, self._buffer = self._buffer, []
        counted, self._counted = self._counted, []
        return rows, counted

    def _cannot_commit(self, exc: MedsweepError, rows: int) -> None:
        """The store refused a batch (a full disk): keep its error, stop the run, wake waiting senders."""
        self.error = exc
        self.lost += rows
        self._on_failure()
        self._room.set()
