"""The sweep's child processes, started before they are needed.

A model's eval runs in a spawned process: it owns an event loop and signal handlers, sees only the GPUs its
scoring may use, and can be stopped cleanly with SIGTERM. Spawning one costs the interpreter's start and
the evaluation code's imports: about a second on this 2-core machine, more from a cluster's shared file
system, and every second of it is GPU time held by a loaded server with nothing to do. ``Children`` keeps
processes that have already paid it waiting for their job, started while the servers load and replaced as
they are taken, so a model's first request goes out as soon as its server is healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from typing import Any

_TERM_GRACE_S = 30.0  # an eval asked to stop settles in-flight requests (10 s) and commits
_CLOSE_GRACE_S = 5.0  # a waiting child told there is no job exits at once

_spawn = multiprocessing.get_context("spawn")
# What a child does once its imports are done, before its job comes: a module-level function (it travels
# to the child by name) and its arguments. An error there is the job's to meet and report.
Prepare = tuple[Callable[..., object], tuple[Any, ...]]


class _Waiting:
    """A started child and what the sweep keeps of it: the end its job goes in, the end its messages come
    out of, and the event it sets once its imports are done."""

    def __init__(self, prepare: Prepare | None) -> None:
        jobs_out, self.jobs = _spawn.Pipe(duplex=False)
        self.messages, messages_in = _spawn.Pipe(duplex=False)
        self.warm = _spawn.Event()
        self.process: BaseProcess = _spawn.Process(
            target=_wait_for_job, args=(jobs_out, messages_in, self.warm, prepare)
        )
        self.process.start()
        jobs_out.close()
        messages_in.close()

    def close(self) -> None:
        """No job for this one: it exits (killed if it does not)."""
        self.jobs.close()  # the child's recv() ends
        self.process.join(_CLOSE_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.messages.close()


class Children:
    """Child processes for ``expected`` jobs, up to ``at_once`` of them started ahead; thread-safe.

    They are started one at a time, each once the one before has done its imports: started together they
    would share the CPUs and the first would be ready last (on this 2-core machine, 3.5 s for eight at once
    against 1 s alone)."""

    def __init__(self, expected: int, at_once: int, prepare: Prepare | None = None) -> None:
        self._expected, self._at_once = expected, max(at_once, 1)
        self._prepare = prepare
        self._ready: list[_Waiting] = []
        self._lock = threading.Lock()
        self._changed = threading.Event()  # a child was taken, or the sweep is done
        self._closed = False
        self._keeper = threading.Thread(target=self._keep_ready, name="sweep-children", daemon=True)
        if expected > 0:  # none expected (a runner that never runs): no thread, a job gets a fresh child
            self._keeper.start()

    def _keep_ready(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                dead = [c for c in self._ready if not c.process.is_alive()]
                self._ready = [c for c in self._ready if c not in dead]
                warming = next((c for c in self._ready if not c.warm.is_set()), None)
                if warming is None and len(self._ready) < min(self._expected, self._at_once):
                    self._ready.append(_Waiting(self._prepare))
                    continue
            for child in dead:  # killed or out of memory while it waited: the next round replaces it
                child.close()
            if warming is not None:
                warming.warm.wait(0.2)  # and look again: it may have died instead
            else:
                self._changed.wait()
                self._changed.clear()

    def _take(self) -> _Waiting:
        with self._lock:
            self._expected = max(self._expected - 1, 0)
            child = None
            while self._ready and child is None:
                candidate = self._ready.pop(0)
                if candidate.process.is_alive():
                    child = candidate
                else:
                    candidate.close()
        self._changed.set()
        return child or _Waiting(self._prepare)

    def waiting(self, warm_within: float | None = None) -> list[int]:
        """The pids of the children waiting for a job; with ``warm_within``, of those that have done their
        imports, once as many as are due have (or ``warm_within`` seconds have passed)."""
        deadline = time.monotonic() + (warm_within or 0.0)
        while True:
            with self._lock:
                ready = list(self._ready)
                due = min(self._expected, self._at_once)
            warm = [c for c in ready if c.warm.is_set()]
            if warm_within is None or len(warm) >= due or time.monotonic() >= deadline:
                return [c.process.pid for c in (ready if warm_within is None else warm) if c.process.pid]
            time.sleep(0.01)

    def close(self) -> None:
        """End the children no job came for; later jobs get a fresh process each."""
        with self._lock:
            self._closed = True
            ready, self._ready = self._ready, []
        self._changed.set()
        if self._keeper.is_alive():
            self._keeper.join()
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
        proc, receive = child.process, child.messages
        with contextlib.suppress(OSError):  # it died after it was taken: its exit status says so below
            child.jobs.send((target, args))
        child.jobs.close()
        try:
            message, stopped = _follow(proc, receive, stopping, heard)
        except BaseException:  # the listener's error (a bug): the child must not outlive its sweep
            proc.kill()
            proc.join()
            raise
        finally:
            receive.close()
        why = "stopped" if stopped else f"exited with status {proc.exitcode}"
        return message, why


def _follow(
    proc: BaseProcess, receive: Connection, stopping: Callable[[], bool], heard: Callable[[object], bool]
) -> tuple[object | None, bool]:
    """Until ``proc`` exits: its messages to ``heard``; the last one not consumed, and whether it was asked
    to stop."""
    asked_to_stop: float | None = None
    message: object | None = None
    open_ = True
    while open_ or proc.is_alive():
        if open_:
            try:
                if receive.poll(0.5):
                    got = receive.recv()
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
    return message, asked_to_stop is not None


def _wait_for_job(jobs: Connection, messages: Connection, warm: EventType, prepare: Prepare | None) -> None:
    """Child-process entry: import what an eval runs and ``prepare``, then run the job that comes (none:
    exit)."""
    # Ctrl-C reaches the whole process group; a child with no job yet leaves the stopping to the sweep.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm_up()
    if prepare is not None:
        with contextlib.suppress(Exception):
            prepare[0](*prepare[1])
    warm.set()
    try:
        target, args = jobs.recv()
    except (EOFError, OSError):
        return
    finally:
        jobs.close()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    target(*args, messages)


def _warm_up() -> None:
    """The imports of an eval's start (the evaluation code, every task definition, the HTTP stack's
    transport), the checkout's commit and the certificate store. Not torch: a scorer's model is loaded
    only after the job has set the GPUs its process may see."""
    from pipeline.endpoint import tls_context
    from pipeline.evaluation import evaluate  # noqa: F401
    from pipeline.serving.provenance import git_commit
    from pipeline.tasks.registry import get_def, task_names

    for name in task_names():
        get_def(name)
    git_commit()  # a run's provenance: two git processes, once
    tls_context()
    asyncio.run(_touch_http())


async def _touch_http() -> None:
    """One request to a closed local port: the HTTP stack imports its transport on its first request."""
    from pipeline.endpoint import Endpoint

    with contextlib.suppress(Exception):
        async with Endpoint("http://127.0.0.1:1", None) as endpoint:
            await endpoint.list_models()
