"""Keep one model's server up while its eval runs.

``ServerKeeper`` owns the server: start it (a failed start is retried, counting as a restart), restart it
on the same port and GPUs, stop it. ``Watchdog`` is a thread that checks it every ``interval`` seconds:
an exited process/container is restarted at once; a server that fails its health check (``/health`` and
``/v1/models``, as `medsweep serve` waits for it) for ``hang_timeout`` seconds is hung and is stopped and
restarted. Restarts are bounded (``max_restarts``); after that the keeper gives up and says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.errors import EndpointError, MedsweepError
from pipeline.models.registry import ServerConfig
from pipeline.serving.lifecycle import wait_ready
from pipeline.serving.running import RunningServer
from pipeline.sweep.launcher import Launcher, journal_ids

EventSink = Callable[..., None]  # (event: str, **details) -> None


class ServerKeeper:
    """Start, restart and stop one model's server; thread-safe."""

    def __init__(
        self,
        launcher: Launcher,
        model: ServerConfig,
        gpus: Sequence[int],
        port: int,
        *,
        max_restarts: int,
        startup_timeout: float,
        api_key: str | None = None,
        on_event: EventSink | None = None,
        cancelled: threading.Event | None = None,
        adapters: Sequence[ServerConfig] = (),
    ) -> None:
        self.launcher = launcher
        self.model = model
        self.adapters = tuple(adapters)  # LoRA entries served beside the model (Launcher.start)
        self.gpus = tuple(gpus)
        self.port = port
        self.max_restarts = max_restarts
        self.startup_timeout = startup_timeout
        self.api_key = api_key
        self.handle: RunningServer | None = None
        self.restarts = 0
        self.gave_up: str | None = None
        self._on_event = on_event or (lambda event, **details: None)
        self._cancelled = cancelled or threading.Event()
        self._lock = threading.RLock()

    def start(self) -> RunningServer:
        """A healthy server, or EndpointError once the restarts are used up."""
        with self._lock:
            while True:
                reason = self._launch_once()
                if reason is None:
                    assert self.handle is not None
                    return self.handle
                if self._cancelled.is_set():
                    raise EndpointError(f"{self.model.name}: sweep stopping")
                self._spend_restart(reason)

    def restart(self, reason: str) -> RunningServer:
        """Stop what runs (a hung server too) and start again on the same port and GPUs."""
        with self._lock:
            if self.gave_up is not None:
                raise EndpointError(f"{self.model.name}: gave up ({self.gave_up})")
            self._on_event("server_down", reason=reason)
            self.stop()
            self._spend_restart(reason)
            return self.start()

    def _spend_restart(self, reason: str) -> None:
        """Count one restart for ``reason``, or give up (EndpointError) once ``max_restarts`` are used."""
        if self.restarts >= self.max_restarts:
            self.gave_up = reason
            self._on_event("gave_up", reason=reason, restarts=self.restarts)
            raise EndpointError(f"{self.model.name}: {reason} (after {self.restarts} restarts)")
        self.restarts += 1
        self._on_event("restart", reason=reason, restart=self.restarts)

    def ensure_healthy(self) -> RunningServer:
        """The running server if it passes a health check, else a restarted one."""
        with self._lock:
            reason, _ = self.check()
            if reason is None and self.handle is not None:
                return self.handle
            return self.restart(reason or "no server")

    def stop(self) -> None:
        with self._lock:
            handle, self.handle = self.handle, None
            if handle is None:
                return
            try:
                self.launcher.stop(handle)
            except (MedsweepError, OSError) as exc:
                self._on_event("stop_failed", error=str(exc))
            self._on_event("server_stopped", **journal_ids(handle))

    def check(self) -> tuple[str | None, bool]:
        """(None, _) when healthy; else (reason, exited) where exited means the process/container is gone.
        A (re)start in progress counts as healthy: it has its own health wait."""
        if not self._lock.acquire(blocking=False):
            return None, False
        try:
            handle = self.handle
            if handle is None:
                return ("no server", True) if self.gave_up is None else (None, False)
            if (gone := self.launcher.alive(handle)) is not None:
                return gone, True
            try:
                wait_ready(handle, 0.0, self.api_key)
            except EndpointError as exc:
                return f"health check failed: {exc}", False
            return None, False
        finally:
            self._lock.release()

    def _launch_once(self) -> str | None:
        """Start and wait for health; None when healthy, else why not (the server is stopped again)."""
        try:
            handle = self.launcher.start(self.model, self.gpus, self.port, self.adapters)
        except (MedsweepError, OSError) as exc:
            return f"start failed: {exc}"
        self.handle = handle
        self._on_event("server_started", **journal_ids(handle))
        try:
            wait_ready(
                handle,
                self.startup_timeout,
                self.api_key,
                alive=lambda: "sweep stopping" if self._cancelled.is_set() else self.launcher.alive(handle),
            )
        except EndpointError as exc:
            tail = self.launcher.logs(handle, 20).strip().splitlines()[-3:]
            self._on_event("unhealthy", reason=str(exc), log_tail=tail)
            self.stop()
            return str(exc)
        self._on_event("healthy", url=handle.url)
        return None


class Watchdog:
    """A thread that restarts the keeper's server when it exits or stays unhealthy."""

    def __init__(self, keeper: ServerKeeper, *, interval: float, hang_timeout: float) -> None:
        self.keeper = keeper
        self.interval = interval
        self.hang_timeout = hang_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watchdog-{keeper.model.name}", daemon=True)
        self.last_reason: str | None = None

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop checking (before the server is stopped on purpose); a second call does nothing."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        bad_since: float | None = None
        while not self._stop.wait(self.interval):
            checked_at = time.monotonic()  # a hung server makes the check itself take the probe timeout
            reason, exited = self.keeper.check()
            if reason is None:
                bad_since = None
                continue
            if self._stop.is_set():
                return
            self.last_reason = reason
            now = time.monotonic()
            if not exited:
                bad_since = bad_since if bad_since is not None else checked_at
                if now - bad_since < self.hang_timeout:
                    continue
                reason = f"hung: {reason} for {now - bad_since:.0f} s"
            bad_since = None
            try:
                self.keeper.restart(reason)
            except EndpointError:
                return  # gave up: the runner sees keeper.gave_up and stops the eval
