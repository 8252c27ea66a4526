"""The sweep's child processes, started before they are needed.

A model's eval runs in a spawned process: it owns an event loop and signal handlers, sees only the GPUs its
scoring may use, and can be stopped cleanly with SIGTERM. Spawning one costs the interpreter's start and
the evaluation code's imports: about a second on this 2-core machine, more from a cluster's shared file
system, and every second of it is GPU time held by a loaded server with nothing to do. ``Children`` keeps
processes that have already paid it waiting for their job, started while the servers load and replaced as
they are taken, so a model's first request goes out as soon as its server is healthy.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

_TERM_GRACE_S = 30.0  # an eval asked to stop settles in-flight requests (10 s) and commits
_CLOSE_GRACE_S = 5.0  # a waiting child told there is no job exits at once

_READY = "warm"  # a child's first message: its imports are done
_spawn = multiprocessing.get_context("spawn")


class _Waiting:
    """A started child and the two ends the sweep keeps: its job goes in, its messages come out."""

    def __init__(self) -> None:
        jobs_out, self.jobs = _spawn.Pipe(duplex=False)
        self.messages, messages_in = _spawn.Pipe(duplex=False)
        self.process: BaseProcess = _spawn.Process(target=_wait_for_job, args=(jobs_out, messages_in))
        self.process.start()
        self._warm = False
        jobs_out.close()
        messages_in.close()

    def warm(self, timeout: float) -> bool:
        """Whether it has done its imports (waiting up to ``timeout`` seconds for it)."""
        if not self._warm and self.messages.poll(timeout):
            self._warm = self.messages.recv() == _READY
        return self._warm

    def close(self) -> None:
        """No job for this one: it exits (killed if it does not)."""
        self.jobs.close()  # the child's recv() ends
        self.process.join(_CLOSE_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.messages.close()


class Children:
    """Child processes for ``expected`` jobs, up to ``at_once`` of them started ahead; thread-safe."""

    def __init__(self, expected: int, at_once: int) -> None:
        self._expected, self._at_once = expected, max(at_once, 1)
        self._ready: list[_Waiting] = []
        self._lock = threading.Lock()
        self._closed = False
        with self._lock:
            self._top_up()

    def _top_up(self) -> None:
        while not self._closed and len(self._ready) < min(self._expected, self._at_once):
            self._ready.append(_Waiting())

    def _take(self) -> _Waiting:
        with self._lock:
            self._expected = max(self._expected - 1, 0)
            child = None
            while self._ready and child is None:
                candidate = self._ready.pop(0)
                if candidate.process.is_alive():
                    child = candidate
                else:  # died while it waited (killed, out of memory): a fresh one instead
                    candidate.close()
            self._top_up()
        return child or _Waiting()

    def waiting(self, warm_within: float | None = None) -> list[int]:
        """The pids of the children waiting for a job; with ``warm_within``, once each has done its
        imports (waiting up to that many seconds for each)."""
        with self._lock:
            ready = list(self._ready)
        if warm_within is not None:
            for child in ready:
                child.warm(warm_within)
        return [child.process.pid for child in ready if child.process.pid is not None]

    def close(self) -> None:
        """End the children no job came for; later jobs get a fresh process each."""
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, []
        for child in ready:
            child.close()

    def run(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        stopping: Callable[[], bool],
        heard: Callable[[object], bool],
    ) -> tuple[object | None, str]:
        """Run ``target(*args, conn)`` in a child until it exits: each message it sends goes to ``heard``,
        which says whether it consumed it; the last message it did not consume is returned (None, and why,
        when there was none). Once ``stopping()``, the child is asked to stop (SIGTERM) and killed after a
        grace period."""
        child = self._take()
        child.warm(0.0)  # its marker, if it came, is no message of the job's
        proc, receive = child.process, child.messages
        with contextlib.suppress(OSError):  # it died after it was taken: its exit status says so below
            child.jobs.send((target, args))
        child.jobs.close()
        asked_to_stop: float | None = None
        message: object | None = None
        open_ = True
        while open_ or proc.is_alive():
            if open_:
                try:
                    if receive.poll(0.5):
                        got = receive.recv()
                        if got == _READY:
                            continue
                        if not heard(got):
                            message = got
                        continue
                except (EOFError, OSError):
                    open_ = False  # the child closed its end (it ends) or died
            else:
                proc.join(0.5)
            if asked_to_stop is None and stopping():
                asked_to_stop = time.monotonic()
                proc.terminate()  # SIGTERM: the eval stops sending, settles and commits
            elif asked_to_stop is not None and time.monotonic() - asked_to_stop > _TERM_GRACE_S:
                proc.kill()
        receive.close()
        why = "stopped" if asked_to_stop is not None else f"exited with status {proc.exitcode}"
        return message, why


def _wait_for_job(jobs: Connection, messages: Connection) -> None:
    """Child-process entry: import what an eval runs, then run the job that comes (none: exit)."""
    # Ctrl-C reaches the whole process group; a child with no job yet leaves the stopping to the sweep.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm_up()
    messages.send(_READY)
    try:
        target, args = jobs.recv()
    except (EOFError, OSError):
        return
    finally:
        jobs.close()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    target(*args, messages)


def _warm_up() -> None:
    """The imports of an eval's start: the evaluation code and every task definition. Not torch: a
    scorer's model is loaded only after the job has set the GPUs its process may see."""
    from pipeline.evaluation import evaluate  # noqa: F401
    from pipeline.tasks.registry import get_def, task_names

    for name in task_names():
        get_def(name)
