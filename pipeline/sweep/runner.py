"""Run a sweep: schedule models onto free GPUs, and per model serve → eval → stop under a watchdog.

Each server runs in its own thread; its evals run in child processes (``run_evaluation`` owns an event
loop and signal handlers, and a child can be stopped cleanly with SIGTERM when its server cannot be kept
up), started ahead so that their imports overlap the servers' load (pipeline/sweep/children.py).
A model's failure ends in its report, never in the sweep. GPUs go back to the pool the moment the server is
stopped, and the next model that fits (largest first) starts: for the server's last model that is
as soon as its generation is over (the eval process says so before it scores), unless its scoring runs a
model on a GPU (a metric declared ``gpu = true``, pipeline/scoring/metrics.toml); it then scores with no GPU
visible while the next server loads.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

from pipeline.config import EvalConfig, load_config
from pipeline.errors import EndpointError, MedsweepError
from pipeline.failures import FailureClass
from pipeline.files import open_private, private_dir
from pipeline.serving.argv import connect_host
from pipeline.serving.process import cmdline
from pipeline.serving.provenance import LauncherFacts, SweepPass
from pipeline.serving.running import RunningServer
from pipeline.sweep.children import Children, Prepare
from pipeline.sweep.journal import (
    Journal,
    ModelDone,
    ModelGenerated,
    ModelStart,
    ServerStarted,
    ServerStopped,
)
from pipeline.sweep.launcher import Launcher, leftover
from pipeline.sweep.packing import Need, allocate, check_fits, order
from pipeline.sweep.plan import PlannedModel, SweepSettings, riders_of
from pipeline.sweep.summary import ModelReport, ModelStats, model_stats
from pipeline.sweep.timeline import PassMarks, Timeline, build_timeline
from pipeline.sweep.watchdog import ServerKeeper, Watchdog

if TYPE_CHECKING:
    from pipeline.evaluation.scheduler import EvalTarget, RunResult

_SHOWN_EVENTS = {"server_started", "healthy", "server_down", "restart", "gave_up", "unhealthy", "eval_rerun",
                 "leftover_stopped"}  # fmt: skip
# The events a reader reads back go through their journal records (pipeline.sweep.journal).
_TYPED_EVENTS = {
    kind.EVENT: kind for kind in (ModelStart, ModelGenerated, ModelDone, ServerStarted, ServerStopped)
}


@dataclass(frozen=True, slots=True)
class Generated:
    """What an eval process sends when its generation is over, before it scores."""

    identity: str
    tasks: list[str]
    interrupted: bool


@dataclass(frozen=True, slots=True)
class EvalDone:
    """What an eval process sends back when its eval ran (to the end, or interrupted)."""

    identity: str
    tasks: list[str]
    sent: int
    interrupted: bool
    # The pass's marks for the model's timeline (pipeline/sweep/timeline.py), seconds since the epoch.
    first_sent_at: float | None = None
    tail_at: float | None = None
    generated_at: float = 0.0
    scored_at: float = 0.0


@dataclass(frozen=True, slots=True)
class EvalFailed:
    """What an eval process sends back when its eval could not run or ended with an error."""

    error: str


EvalMessage = EvalDone | EvalFailed
HandOver = Callable[[Generated], None]  # called (sweep side) when an eval pass's generation is over


class _Returns:
    """GPUs the server threads hand back to the allocator, and a future the allocator's wait wakes on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gpus: set[int] = set()
        self.wake: Future[None] = Future()

    def giver(self, gpus: tuple[int, ...]) -> Callable[[], None]:
        """Hands ``gpus`` back the first time it is called; later calls do nothing."""
        given = False

        def give() -> None:
            nonlocal given
            with self._lock:
                if given:
                    return
                given = True
                self._gpus |= set(gpus)
                if not self.wake.done():
                    self.wake.set_result(None)

        return give

    def take(self) -> set[int]:
        """The GPUs handed back since the last call."""
        with self._lock:
            gpus, self._gpus = self._gpus, set()
            if self.wake.done():
                self.wake = Future()
            return gpus


def slots_for(settings: SweepSettings, model: PlannedModel) -> tuple[list[int], int]:
    """(inventory, need) for packing: a CPU sweep is a one-slot inventory (one model at a time)."""
    if settings.on_device == "cpu":
        return [0], 1
    return list(settings.gpus), model.gpu_count


class SweepRunner:
    def __init__(
        self,
        settings: SweepSettings,
        models: list[PlannedModel],
        launcher: Launcher,
        *,
        console: Console | None = None,
        environ: dict[str, str] | None = None,
        score: bool = True,
    ) -> None:
        self.settings = settings
        # False: the evals generate only and the model_done events say so (scored=False); a Slurm GPU job
        # ends with its server and a CPU-only job scores after it (pipeline/sweep/slurm/job.py).
        self.score = score
        self.models = models
        self.launcher = launcher
        self.console = console or Console(stderr=True)
        self.environ = dict(os.environ) if environ is None else environ
        self.out = settings.out
        self.log_dir = self.out / "logs"
        self.journal = Journal(self.out)
        self._cancel = threading.Event()
        self._children = Children(0, 1)  # run() makes the sweep's: one process per eval, started ahead
        self._api_key = self._read_api_key()
        # A Slurm job's (pipeline/sweep/slurm/job.py): when its allocation began and how long it was pending
        # before; the first model's turn begins then and its timeline counts the wait as queued_s.
        self.allocated_at: float | None = None
        self.queued_s = 0.0

    # --- the sweep ---

    def run(self) -> list[ModelReport]:
        """Run every model of the plan; return one report per model, in plan order."""
        private_dir(self.log_dir)
        hosts, riders = riders_of(self.models)
        inventory = slots_for(self.settings, self.models[0])[0] if self.models else []
        needs = {m.name: Need(m.name, slots_for(self.settings, m)[1]) for m in hosts}
        check_fits(list(needs.values()), inventory)
        self.check_inputs()
        self._stop_leftovers()
        finished = self.journal.finished()
        generated = self.journal.generated()
        by_name = {m.name: m for m in self.models}
        reports: dict[str, ModelReport] = {}
        queue: list[PlannedModel] = []
        todo: dict[str, list[PlannedModel]] = {}  # per server to start: the models evaluated on it
        to_score: list[tuple[PlannedModel, ModelGenerated]] = []  # answered earlier, not scored: no server
        for need in order(list(needs.values())):
            host = by_name[need.name]
            for model in (host, *riders.get(host.name, ())):
                skipped = self._already_done(model, finished.get(model.name))
                answered = self._answered_earlier(model, generated.get(model.name))
                if skipped is not None:
                    reports[model.name] = skipped
                    self.console.print(f"{model.name}: done in an earlier run of this plan; skipped")
                elif answered is not None:
                    to_score.append((model, answered))
                    self.console.print(f"{model.name}: answered in an earlier run of this plan; scoring it")
                else:
                    todo.setdefault(host.name, []).append(model)
            if host.name in todo:
                queue.append(host)
        free = set(inventory)
        returns = _Returns()
        running: dict[Future[list[ModelReport]], tuple[PlannedModel, Callable[[], None]]] = {}

        def interrupted(host: PlannedModel) -> None:
            for model in todo[host.name]:
                reports[model.name] = ModelReport(model.name, [], host.port, "interrupted")

        workers = max(1, len(queue) + len(to_score))
        # One child process per eval pass, up to one per GPU slot started ahead (a server holds one or more),
        # each with the datasets loaded (check_inputs read them here; an eval reads them before it sends).
        self._children = Children(
            len(to_score) + sum(map(len, todo.values())), len(inventory), prepare=self._load_inputs()
        )
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as pool:
            try:
                for model, answered in to_score:  # scoring needs no GPU: all at once
                    running[pool.submit(self._score_only_safely, model, answered)] = (model, lambda: None)
                while queue or running:
                    for host in list(queue):
                        got = allocate(needs[host.name].gpus, free, inventory)
                        if got is None or self._cancel.is_set():
                            continue
                        free -= set(got)
                        queue.remove(host)
                        gpus = () if self.settings.on_device == "cpu" else got
                        give = returns.giver(got)  # the server thread calls it when the server is stopped
                        future = pool.submit(self._run_server_safely, host, todo[host.name], gpus, give)
                        running[future] = (host, give)
                    if self._cancel.is_set():
                        for host in queue:
                            interrupted(host)
                        queue.clear()
                    waited: list[Future[Any]] = [*running, returns.wake]
                    done, _ = wait(waited, timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        if future not in running:
                            continue  # returns.wake: GPUs came back before their thread ended
                        _, give = running.pop(future)
                        reports.update((r.model, r) for r in future.result())
                        give()  # nothing when the server thread gave them back already
                    free |= returns.take()
            except KeyboardInterrupt:
                self._cancel.set()
                self.console.print("interrupted: stopping the evals (results so far are kept) and servers")
                for future in list(running):
                    running.pop(future)
                    reports.update((r.model, r) for r in future.result())
                for host in queue:
                    interrupted(host)
            finally:
                self._children.close()
        return [reports[m.name] for m in self.models]

    def cancel(self) -> None:
        """Stop starting models; running evals stop cleanly and their servers are stopped."""
        self._cancel.set()

    # --- one server: its model, then the LoRA entries riding on it ---

    def _run_server_safely(
        self, host: PlannedModel, evals: list[PlannedModel], gpus: tuple[int, ...], give: Callable[[], None]
    ) -> list[ModelReport]:
        try:
            return self._run_server(host, evals, gpus, give)
        except Exception as exc:  # a bug for one model must not end the sweep
            for model in evals:
                self.journal.write(ModelDone(model=model.name, status="failed", error=repr(exc)))
            return [
                ModelReport(m.name, list(gpus), host.port, "failed", error=f"internal error: {exc!r}")
                for m in evals
            ]

    def _run_server(
        self,
        host: PlannedModel,
        evals: list[PlannedModel],
        gpus: tuple[int, ...],
        give: Callable[[], None],
    ) -> list[ModelReport]:
        """Start ``host``'s server (with the adapters of the riders in ``evals``), evaluate each model of
        ``evals`` on it in turn under one watchdog, stop it and ``give`` its GPUs back (as soon as the last
        model's generation is over when its scoring needs no GPU); one report per model of ``evals``."""
        reports = [ModelReport(m.name, list(gpus), host.port) for m in evals]
        tasks: dict[str, tuple[str, ...]] = {}
        # Wall-clock (the eval process's marks are compared with them): a model's turn and its passes.
        now = time.time()
        started = {m.name: min(self.allocated_at or now, now) for m in evals[:1]}
        queued = {m.name: self.queued_s for m in evals[:1]}
        ended: dict[str, float] = {}
        released: dict[str, float] = {}  # the model whose GPUs were handed on before it scored: when
        passes: dict[str, list[PassMarks]] = {m.name: [] for m in evals}
        for model in evals:
            on = {} if model is host else {"server_of": host.name}
            self._event(model.name, "model_start", gpus=list(gpus), port=host.port, **on)
        keeper = ServerKeeper(
            self.launcher,
            host.server,
            gpus,
            host.port,
            max_restarts=self.settings.max_restarts,
            startup_timeout=self.settings.startup_timeout,
            api_key=self._api_key,
            on_event=lambda event, **details: self._event(host.name, event, **details),
            cancelled=self._cancel,
            adapters=[m.server for m in evals if m is not host],
        )
        watchdog = Watchdog(
            keeper, interval=self.settings.health_interval, hang_timeout=self.settings.hang_timeout
        )

        def hand_over(model: PlannedModel, report: ModelReport) -> HandOver:
            def on_generated(message: Generated) -> None:
                if self._final(report, keeper, message.interrupted, message.identity, message.tasks):
                    watchdog.stop()  # first: a stopped server is no crash to restart
                    keeper.stop()
                    released[model.name] = time.time()
                    give()

            return on_generated

        gpu_scoring = self._gpu_scoring(evals[-1], gpus)
        current = reports[0]
        try:
            self._check_port_free(host.port)
            handle = keeper.start()
            with watchdog:
                for model, report in zip(evals, reports, strict=True):
                    current = report
                    started.setdefault(model.name, time.time())
                    # Only the server's last model frees the server; scoring on the GPUs keeps them.
                    last = model is evals[-1] and not gpu_scoring
                    on_generated = hand_over(model, report) if last else None
                    scoring_gpus = gpus if model is evals[-1] and gpu_scoring else ()
                    handle = self._evaluate(
                        model, report, keeper, handle, tasks, passes[model.name], on_generated, scoring_gpus
                    )
                    ended[model.name] = time.time()
                    if report.status == "interrupted" or keeper.gave_up is not None:
                        break
        except MedsweepError as exc:
            current.error = str(exc)
            for report in reports[reports.index(current) + 1 :]:
                report.error = str(exc)  # the server these would have used did not start
        finally:
            keeper.stop()
            give()  # the GPUs go to the next model now, before this server's bookkeeping
            # The server's last model holds the GPUs until the server is gone: its stop is its own.
            ended[evals[reports.index(current)].name] = time.time()
        for model, report in zip(evals, reports, strict=True):
            turn = (started[model.name], ended[model.name]) if model.name in started else None
            timeline = (
                build_timeline(
                    turn[0],
                    passes[model.name],
                    turn[1],
                    queued.get(model.name, 0.0),
                    released=released.get(model.name),
                )
                if turn is not None
                else None
            )
            self._finish(model, report, keeper.restarts, keeper.gave_up, timeline, tasks.get(model.name, ()))
        return reports

    def _gpu_scoring(self, model: PlannedModel, gpus: tuple[int, ...]) -> bool:
        """Whether ``model``'s scoring runs a model on a GPU (a metric declared ``gpu = true`` that can run
        here): it then scores on its own GPUs before they are released."""
        from pipeline.evaluation.evaluate import select_tasks
        from pipeline.scoring.extras import gpu_scoring

        if not gpus or not self.score:  # no GPU, or no scoring here (a Slurm GPU job)
            return False
        tasks, _ = select_tasks(list(model.tasks), self.settings.data_dir, self.settings.variant)
        return bool(gpu_scoring(tasks))

    def _final(
        self, report: ModelReport, keeper: ServerKeeper, interrupted: bool, identity: str, tasks: list[str]
    ) -> bool:
        """Whether a pass that generated this is ``report``'s last: no second pass will need the server."""
        if interrupted or self._cancel.is_set() or keeper.gave_up is not None:
            return False
        stats = model_stats(self.out, identity, self.settings.variant, tuple(tasks))
        down = stats.count(FailureClass.CONNECTION, FailureClass.TIMEOUT)
        return not down or report.eval_passes > self.settings.max_restarts

    def _evaluate(
        self,
        model: PlannedModel,
        report: ModelReport,
        keeper: ServerKeeper,
        handle: RunningServer,
        tasks: dict[str, tuple[str, ...]],
        passes: list[PassMarks],
        on_generated: HandOver | None = None,
        scoring_gpus: tuple[int, ...] = (),
    ) -> RunningServer:
        """``model``'s eval passes on ``handle``'s server: again while requests failed for a server that
        was down (it is back by then); the handle of the server as it is now. Each pass's marks go to
        ``passes``; ``on_generated`` hears when a pass's generation is over; scoring sees ``scoring_gpus``."""
        while True:
            report.eval_passes += 1
            result = self._eval_pass(model, handle, keeper, report.eval_passes, on_generated, scoring_gpus)
            if isinstance(result, EvalFailed):
                report.error = result.error
                return handle
            passes.append(
                PassMarks(result.first_sent_at, result.tail_at, result.generated_at, result.scored_at)
            )
            report.identity, tasks[model.name] = result.identity, tuple(result.tasks)
            report.sent += result.sent
            if result.interrupted or self._cancel.is_set():
                report.status = "interrupted"
                return handle
            if keeper.gave_up is not None or keeper.handle is None:  # no server: handed over
                return handle
            if self._final(report, keeper, False, report.identity, list(tasks[model.name])):
                return handle
            # The server was down long enough for requests to fail: resend those once it is back.
            stats = model_stats(self.out, report.identity, self.settings.variant, tasks[model.name])
            down = stats.count(FailureClass.CONNECTION, FailureClass.TIMEOUT)
            self._event(model.name, "eval_rerun", failed=down)
            handle = keeper.ensure_healthy()

    def _finish(
        self,
        model: PlannedModel,
        report: ModelReport,
        restarts: int,
        gave_up: str | None,
        timeline: Timeline | None,
        tasks: tuple[str, ...],
    ) -> None:
        """Fill in ``model``'s report from the store and journal its end (``timeline`` None: its turn never
        came)."""
        report.restarts = restarts
        if timeline is not None:
            report.timeline = timeline
            report.wall_s = timeline.wall_s
        report.stats = model_stats(self.out, report.identity, self.settings.variant, tasks)
        if report.status != "interrupted":
            if timeline is None and self._cancel.is_set() and not report.error:
                report.status = "interrupted"  # its turn on the server never came
            else:
                report.status, note = _status(report.stats, gave_up, report.error)
                report.error = report.error or note
        self._event(
            model.name,
            "model_done",
            status=report.status,
            identity=report.identity,
            tasks=list(tasks),
            settings=self._settings(model),
            restarts=report.restarts,
            sent=report.sent,
            wall_s=report.wall_s,
            error=report.error,
            timeline=report.timeline.as_json() if report.timeline is not None else None,
            scored=self.score,
        )

    def _eval_pass(
        self,
        model: PlannedModel,
        handle: RunningServer,
        keeper: ServerKeeper,
        n: int,
        on_generated: HandOver | None = None,
        scoring_gpus: tuple[int, ...] = (),
    ) -> EvalMessage:
        config = self._eval_config(model, handle.openai_base_url)
        provenance = LauncherFacts.of(handle, SweepPass.model_validate({"port": handle.port, "pass": n}))
        log_path = self.log_dir / f"{model.name}.eval.log"
        self._event(model.name, "eval_start", eval_pass=n)
        visible = ",".join(map(str, scoring_gpus))

        def heard(generated: object) -> bool:
            if not isinstance(generated, Generated):
                return False
            self.journal.write(
                ModelGenerated(model=model.name, identity=generated.identity, tasks=generated.tasks,
                               settings=self._settings(model), eval_pass=n)
            )  # fmt: skip
            if on_generated is not None and not generated.interrupted:
                on_generated(generated)
            return True

        stopping = lambda: keeper.gave_up is not None or self._cancel.is_set()  # noqa: E731
        args = (config, provenance, str(log_path), visible)
        message, why = self._children.run(eval_process, args, stopping, heard)
        result: EvalMessage
        if message is None:
            result = EvalFailed(f"eval process {why} (log: {log_path})")
        elif not isinstance(message, EvalDone | EvalFailed):  # a bug: said, never read as a zero
            result = EvalFailed(
                f"eval process sent {type(message).__name__}, not an EvalDone (log: {log_path})"
            )
        else:
            result = message
        shown = {k: v for k, v in asdict(result).items() if k != "tasks"}
        self._event(model.name, "eval_done", eval_pass=n, **shown)
        return result

    # --- inputs ---

    def _eval_config(self, model: PlannedModel, base_url: str) -> EvalConfig:
        s = self.settings
        client: dict[str, Any] = {"concurrency": model.concurrency}
        if s.max_retry_time is not None:
            client["max_retry_time"] = s.max_retry_time
        overrides: dict[str, dict[str, Any]] = {
            "endpoint": {"base_urls": [base_url]},
            "model": {"name": model.name},
            "client": client,
            "run": {"tasks": list(model.tasks), "data_dir": s.data_dir, "out": s.out, "limit": model.limit,
                    "variant": s.variant, "score": self.score},
        }  # fmt: skip
        environ = {"OPENAI_API_KEY": self._api_key} if self._api_key else {}
        return load_config(s.eval_config, overrides, environ=environ)

    def check_inputs(self) -> None:
        """Config and data errors, and a damaged store, stop the sweep before any server starts."""
        from pipeline.evaluation.evaluate import select_tasks
        from pipeline.store.database import check_intact, db_path

        check_intact(db_path(self.out))
        for model in self.models:
            self._eval_config(model, "http://127.0.0.1:1")
            select_tasks(list(model.tasks), self.settings.data_dir)

    def _load_inputs(self) -> Prepare:
        """What loads every dataset the plan's evals read (each model's tasks; none named: all with data)."""
        named = [m.tasks for m in self.models]
        tasks = [] if not all(named) else sorted({t for ts in named for t in ts})
        return _load_datasets, (tasks, self.settings.data_dir, self.settings.variant)

    def _read_api_key(self) -> str | None:
        from pipeline.serving.lifecycle import api_key_from_env

        return api_key_from_env(self.settings.api_key_env, "[sweep] api_key_env", self.environ)

    def _settings(self, model: PlannedModel) -> dict[str, Any]:
        """What must match for an earlier `done` to count on a rerun (the keys depend on all of it)."""
        from pipeline.tasks.prompts import prompt_hashes

        return {
            "prompts_sha256": prompt_hashes(list(model.tasks)),
            "data": _data_stamps(model.tasks, self.settings.data_dir),
            "revision": model.server.revision,
            "tasks": list(model.tasks),
            "limit": model.limit,
            "variant": self.settings.variant,
            "data_dir": str(self.settings.data_dir),
            "max_model_len": model.server.max_model_len,
        }

    def finished_earlier(self, model: PlannedModel) -> ModelReport | None:
        """The ``skipped`` report when this plan finished ``model`` before with the same settings."""
        return self._already_done(model, self.journal.finished().get(model.name))

    def generated_earlier(self, model: PlannedModel) -> ModelDone | ModelGenerated | None:
        """What says that only scoring is left of ``model`` (same settings, the store holds every answer):
        its last ``model_done`` when it is ``done`` but generated only (``scored=False``: a Slurm GPU job),
        else its ``model_generated`` when the run that wrote it ended before its ``model_done`` (stopped in
        the server's stop)."""
        done = [d for d in self.journal.read(ModelDone) if d.model == model.name]
        last = done[-1] if done else None
        if last is not None and not last.scored and last.status == "done":
            stats = model_stats(self.out, last.identity, self.settings.variant, tuple(last.tasks))
            complete = stats.total and not stats.pending and not stats.retryable
            return last if complete and last.settings == self._settings(model) else None
        return self._answered_earlier(model, self.journal.generated().get(model.name))

    def _answered_earlier(self, model: PlannedModel, record: ModelGenerated | None) -> ModelGenerated | None:
        """``record`` when an earlier run of this plan, with the same settings, stored every answer of
        ``model`` (nothing pending, no failure a rerun may fix) and ended before scoring it: the sweep was
        stopped between generation and scoring. It is scored without a server; nothing is sent."""
        if record is None or record.settings != self._settings(model):
            return None
        stats = model_stats(self.out, record.identity, self.settings.variant, tuple(record.tasks))
        if stats.total == 0 or stats.pending or stats.retryable:
            return None
        return record

    def _score_only_safely(self, model: PlannedModel, record: ModelGenerated) -> list[ModelReport]:
        """Score ``model``'s stored answers in a child process (no server, no GPU); its report. Its
        timeline is all ``scoring_s``: it held no GPU."""
        report = ModelReport(model.name, [], model.port, identity=record.identity, eval_passes=1)
        began = time.time()
        try:
            self._event(model.name, "model_start", gpus=[], port=model.port)
            log_path = self.log_dir / f"{model.name}.eval.log"
            args = (str(self.out), record.identity, self.settings.variant, list(record.tasks), str(log_path))
            message, why = self._children.run(score_process, args, self._cancel.is_set, lambda _: False)
            if isinstance(message, EvalDone):
                self._event(model.name, "eval_done", eval_pass=1, identity=message.identity, sent=0,
                            interrupted=False, scored_at=message.scored_at)  # fmt: skip
            else:
                report.error = message.error if isinstance(message, EvalFailed) else f"scoring process {why}"
        except Exception as exc:  # a bug for one model must not end the sweep
            report.error = f"internal error: {exc!r}"
        ended = time.time()
        timeline = build_timeline(began, [PassMarks(None, None, began, ended)], ended, released=began)
        self._finish(model, report, 0, None, timeline, tuple(record.tasks))
        return [report]

    def _already_done(self, model: PlannedModel, record: ModelDone | None) -> ModelReport | None:
        if record is None or record.settings != self._settings(model):
            return None
        identity = record.identity
        stats = model_stats(self.out, identity, self.settings.variant, tuple(record.tasks))
        if stats.total == 0 or stats.pending or stats.retryable:
            return None
        return ModelReport(model.name, [], model.port, "skipped", identity=identity, stats=stats)

    # --- servers ---

    def _check_port_free(self, port: int) -> None:
        host = connect_host(self.settings.host)
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((host, port)) == 0:
                raise EndpointError(
                    f"port {port} is already in use (another server?): stop it or change [sweep] base_port"
                )

    def _stop_leftovers(self) -> None:
        """Stop the servers a crashed earlier sweep left running (found in the journal)."""
        for record in self.journal.leftover_servers():
            pid = record.pid
            if pid and not _cmdline_mentions(pid, record.model, str(record.port)):
                self.journal.write(ServerStopped(model=record.model, port=record.port, note="gone"))
                continue
            handle = leftover(record, self.settings)
            try:
                if self.launcher.alive(handle) is None:
                    self.launcher.stop(handle)
                    self._event(handle.model, "leftover_stopped", port=handle.port)
            except (MedsweepError, OSError) as exc:
                self.console.print(f"{handle.model}: could not stop a leftover server: {exc}")
            self.journal.write(ServerStopped(model=handle.model, port=handle.port, note="leftover"))

    # --- output ---

    def _event(self, model: str, event: str, **details: Any) -> None:
        kind = _TYPED_EVENTS.get(event)
        if kind is not None:
            self.journal.write(kind(model=model, **details))
        else:
            self.journal.append(model, event, **details)
        if event in _SHOWN_EVENTS or event in ("model_start", "model_done"):
            shown = {
                k: v for k, v in details.items() if k not in ("settings", "log_path") and v not in (None, "")
            }
            text = ", ".join(f"{k}={v}" for k, v in shown.items())
            self.console.print(f"[bold]{model}[/bold]: {event} {text}", highlight=False, soft_wrap=True)


def _load_datasets(tasks: list[str], data_dir: Path, variant: str) -> None:
    """A child process's preparation (pipeline/sweep/children.py): the datasets an eval reads before it
    sends. Here, beside the jobs, so that the child has imported their module before its job comes."""
    from pipeline.evaluation.evaluate import select_tasks

    select_tasks(tasks, data_dir, variant)


def eval_process(
    config: EvalConfig, provenance: LauncherFacts, log_path: str, scoring_gpus: str, conn: Connection
) -> None:
    """Child-process entry: run one eval, progress into ``log_path``; send ``Generated`` once generation is
    over (the sweep may stop the server then), then score with only ``scoring_gpus`` visible (``""``: none)
    and send an ``EvalMessage``."""
    # Before anything imports torch: a scorer's model (BERTScore) would otherwise take cuda:0, whichever
    # model's GPU that is by then.
    os.environ["CUDA_VISIBLE_DEVICES"] = scoring_gpus
    from pipeline.evaluation.evaluate import run_evaluation

    def generated(run: RunResult, target: EvalTarget, tasks: list[str]) -> None:
        conn.send(Generated(target.identity, list(tasks), run.interrupted))

    fd = open_private(Path(log_path))
    with open(fd, "a", encoding="utf-8") as log:
        console = Console(file=log, force_terminal=False, width=120)

        def evaluate() -> EvalMessage:
            outcome = run_evaluation(config, console=console, launcher=provenance, on_generated=generated)
            return EvalDone(
                identity=outcome.target.identity,
                tasks=list(outcome.tasks),
                sent=outcome.run.sent,
                interrupted=outcome.run.interrupted,
                first_sent_at=outcome.run.first_sent_at,
                tail_at=outcome.run.tail_at,
                generated_at=outcome.run.generated_at,
                scored_at=outcome.scored_at,
            )

        message = _as_message(log, evaluate)
    conn.send(message)
    conn.close()


def score_process(
    out: str, identity: str, variant: str, tasks: list[str], log_path: str, conn: Connection
) -> None:
    """Child-process entry: score a model whose answers are all stored (no server, no GPU visible); send
    ``EvalDone`` (nothing sent) or ``EvalFailed``."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from pipeline.evaluation.evaluate import score_stored
    from pipeline.evaluation.scorecard import print_summary

    fd = open_private(Path(log_path))
    with open(fd, "a", encoding="utf-8") as log:
        console = Console(file=log, force_terminal=False, width=120)

        def score() -> EvalMessage:
            summaries = score_stored(Path(out), identity, variant, tasks)
            print_summary(summaries, identity, Path(out), console=console)
            now = time.time()
            return EvalDone(identity, list(tasks), 0, False, None, None, now, now)

        message = _as_message(log, score)
    conn.send(message)
    conn.close()


def _as_message(log: TextIO, work: Callable[[], EvalMessage]) -> EvalMessage:
    """What a child process tells the sweep: ``work``'s message; a ``MedsweepError`` as its one line; any
    other exception (a bug) by its name, its traceback written to the child's log."""
    try:
        return work()
    except MedsweepError as exc:
        return EvalFailed(str(exc))
    except Exception as exc:
        log.write(traceback.format_exc())
        return EvalFailed(f"{type(exc).__name__}: {exc}")


def _status(stats: ModelStats, gave_up: str | None, error: str) -> tuple[Any, str]:
    if gave_up is not None:
        return "failed", f"server not kept up: {gave_up}"
    if error:
        return "failed", error
    if stats.total and not stats.succeeded:
        classes = ", ".join(f"{k} {v}" for k, v in sorted(stats.failed_by_class.items()))
        return "failed", f"no request succeeded ({classes})"
    if stats.pending or stats.retryable:
        return "incomplete", "rerun the plan to retry the failed requests"
    return "done", ""


def _data_stamps(tasks: tuple[str, ...], data_dir: Path) -> dict[str, list[int]]:
    """(size, mtime) of each task's data file: a changed file means new keys, so no skipping."""
    from pipeline.tasks import get_task, task_names

    stamps: dict[str, list[int]] = {}
    for name in tasks or task_names():
        try:
            st = get_task(name).data_path(data_dir).stat()
        except OSError:
            continue
        stamps[name] = [st.st_size, st.st_mtime_ns]
    return stamps


def _cmdline_mentions(pid: int, *words: str) -> bool:
    """Guard against pid reuse before stopping a recorded server: its command line names model and port."""
    line = cmdline(pid)
    return line is not None and all(w in line for w in words)


def print_dry_run(
    settings: SweepSettings, models: list[PlannedModel], launcher: Launcher, console: Console
) -> None:
    """The packing as waves and, per model, the exact command that starts its server."""
    from pipeline.sweep.packing import pack

    if not models:
        return
    hosts, riders = riders_of(models)
    inventory = slots_for(settings, models[0])[0]
    needs = [Need(m.name, slots_for(settings, m)[1]) for m in hosts]
    waves = pack(needs, inventory)
    by_name = {m.name: m for m in models}
    where = (
        "one model at a time (on the CPU)" if settings.on_device == "cpu" else f"GPUs {list(settings.gpus)}"
    )
    console.print(
        f"# {len(models)} models ({len(hosts)} servers) on {where}, {settings.memory_class} GB class, "
        f"engine {settings.engine}; results in {settings.out}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "# waves assume the models of a wave finish together; in the run a model starts as soon as its GPUs "
        "are free",
        highlight=False,
        soft_wrap=True,
    )
    for wave in waves:
        console.print(f"\n# wave {wave.index}", highlight=False, soft_wrap=True)
        for a in wave.assignments:
            m = by_name[a.name]
            gpus = () if settings.on_device == "cpu" else a.gpus
            label = ",".join(map(str, gpus)) or "cpu"
            tasks = ", ".join(m.tasks) or "all with data"
            console.print(
                f"# {m.name}: GPUs {label} (TP {max(1, len(gpus))}), port {m.port}, tasks: {tasks}, "
                f"limit {m.limit or 'none'}",
                highlight=False,
            )
            on = riders.get(m.name, [])
            for r in on:
                console.print(
                    f"# {r.name}: on the server of {m.name} (LoRA adapter), tasks: "
                    f"{', '.join(r.tasks) or 'all with data'}, limit {r.limit or 'none'}",
                    highlight=False,
                    soft_wrap=True,
                )
            command = launcher.command(m.server, gpus, m.port, [r.server for r in on])
            console.print(command, highlight=False, soft_wrap=True, markup=False)
