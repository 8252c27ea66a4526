"""Live progress of an eval: counters updated per committed result, rendered a few times a second.

Only results that are committed to the store count as done, so the display never runs ahead of what a
crash would keep. The rate behind each ETA is that of the last minute, not of the whole run: when the server
stalls, the ETA grows at once (or says ``stalled`` when nothing was committed for a minute) instead of
promising the speed of an hour ago. On a terminal the display is a rich table; elsewhere (CI, a log file) a
plain line is printed every ``log_every`` seconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table

RATE_WINDOW = 60.0  # seconds of commits behind the rate and the ETA


@dataclass(slots=True)
class TaskProgress:
    total: int = 0
    done: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed_by_class: dict[str, int] = field(default_factory=dict)
    output_tokens: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failed_by_class.values())


class Progress:
    """Counters for one eval run and their display."""

    def __init__(
        self,
        tasks: list[str],
        *,
        console: Console | None = None,
        log_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tasks = {name: TaskProgress() for name in tasks}
        self.console = console or Console(stderr=True)
        self._clock = clock
        self.started = clock()
        # (time, results sent and committed per task), oldest first, reaching just past RATE_WINDOW back.
        self._samples: deque[tuple[float, dict[str, int]]] = deque([(self.started, dict.fromkeys(tasks, 0))])
        self.retries = 0
        self.retries_by_class: dict[str, int] = {}
        self.queue_depth: int | None = None
        self.in_flight = 0
        self.limit = 0
        self._live: Live | None = None
        self._log_every = log_every
        self._last_log = 0.0

    # --- counters (hot path: keep cheap) ---

    def add_skipped(self, task: str) -> None:
        p = self.tasks[task]
        p.done += 1
        p.skipped += 1

    def add_committed(self, task: str, ok: bool, error_class: str | None, output_tokens: int) -> None:
        p = self.tasks[task]
        p.done += 1
        if ok:
            p.succeeded += 1
            p.output_tokens += output_tokens
        else:
            key = error_class or "unknown"
            p.failed_by_class[key] = p.failed_by_class.get(key, 0) + 1

    # --- display ---

    def start(self) -> None:
        if self.console.is_terminal:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
        elif self._clock() - self._last_log >= self._log_every:
            self._last_log = self._clock()
            self.console.print(self.line(), highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.stop()
            self._live = None
        else:
            self.console.print(self.line(), highlight=False, soft_wrap=True)

    def rates(self) -> dict[str, float]:
        """Per task: results committed per second over the last ``RATE_WINDOW`` seconds (since the start
        while the run is younger). Skipped results (committed by an earlier run) do not count."""
        now = self._clock()
        sent = {name: p.done - p.skipped for name, p in self.tasks.items()}
        self._samples.append((now, sent))
        while len(self._samples) > 1 and self._samples[1][0] <= now - RATE_WINDOW:
            self._samples.popleft()
        then, before = self._samples[0]
        span = now - then
        return {name: (n - before.get(name, 0)) / span if span > 0 else 0.0 for name, n in sent.items()}

    def eta(self, remaining: int, rate: float, sent: int) -> str:
        if not remaining:
            return "done"
        if rate > 0:
            return _fmt_eta(remaining / rate)
        return "stalled" if sent else "-"  # nothing committed for a minute / nothing committed yet

    def render(self) -> Table:
        elapsed = max(self._clock() - self.started, 1e-6)
        rates = self.rates()
        table = Table(title=self._title(), title_justify="left", expand=False)
        for col in ("task", "done/total", "req/s", "out tok/s", "ETA", "failed"):
            table.add_column(col, justify="left" if col in ("task", "failed") else "right")
        for name, p in self.tasks.items():
            rate = rates[name]
            eta = self.eta(max(p.total - p.done, 0), rate, p.done - p.skipped)
            failed = ", ".join(f"{k} {v}" for k, v in sorted(p.failed_by_class.items())) or "0"
            table.add_row(
                name, f"{p.done}/{p.total}", f"{rate:.1f}", f"{p.output_tokens / elapsed:.0f}", eta, failed
            )
        return table

    def line(self) -> str:
        done = sum(p.done for p in self.tasks.values())
        total = sum(p.total for p in self.tasks.values())
        failed = sum(p.failed for p in self.tasks.values())
        sent = sum(p.done - p.skipped for p in self.tasks.values())
        elapsed = self._clock() - self.started
        eta = self.eta(max(total - done, 0), sum(self.rates().values()), sent)
        return (
            f"progress: {done}/{total} done, {failed} failed, {self.retries} retries, "
            f"{self.in_flight} in flight, {elapsed:.0f} s, ETA {eta}"
            + (f", server queue {self.queue_depth}" if self.queue_depth is not None else "")
        )

    def _title(self) -> str:
        retries = ", ".join(f"{k} {v}" for k, v in sorted(self.retries_by_class.items()))
        parts = [
            f"in flight {self.in_flight}/{self.limit}",
            f"retries {self.retries}" + (f" ({retries})" if retries else ""),
        ]
        if self.queue_depth is not None:
            parts.append(f"server queue {self.queue_depth}")
        return "medsweep eval — " + " · ".join(parts)


def _fmt_eta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
