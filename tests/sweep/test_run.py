"""End-to-end sweeps on a simulated 8-GPU inventory: our fake OpenAI server (tests/support/fakeserver.py)
stands in for each vLLM server, started by a test Launcher that records the GPU ids it was given. The evals,
store, watchdog and scheduling are the real ones.

A crash or a hang lands while requests are provably in flight: that server's first process holds its
requests (``--hold``) and the test kills or freezes it once it holds two, so the eval cannot finish first on
any machine; the process the watchdog starts in its place answers normally."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from rich.console import Console

import pipeline.sweep.runner
from pipeline.errors import EndpointError
from pipeline.models.registry import ServerConfig
from pipeline.serving.running import RunningServer
from pipeline.sweep.journal import Journal, ModelDone, ModelStart
from pipeline.sweep.plan import load_plan, resolve_models
from pipeline.sweep.runner import SweepRunner
from pipeline.sweep.summary import ModelReport, print_summary, write_summary
from tests.support import gated_scoring
from tests.support.ports import free_port_block
from tests.support.servers import FAKESERVER, REPO, ServerControl, wait_ready

DEMO = REPO / "demo_data"
DEADLINE_S = 120.0  # for what will happen on any machine (a server starting, requests arriving)
BIG, SMALL_A, SMALL_B, SMALL_C = (
    "meta-llama-3-70b-instruct",
    "meta-llama-3-8b-instruct",
    "mistral-7b-instruct-v0.2",
    "zephyr-7b-beta",
)


class FakeLauncher:
    """Starts a fake server per model (served name = registry name); records GPUs and what each received."""

    def __init__(
        self,
        extra: dict[str, list[str]] | None = None,
        fail_start: Sequence[str] = (),
        hold_first: Sequence[str] = (),
    ) -> None:
        self.extra = extra or {}
        self.fail_start = set(fail_start)
        self.hold_first = set(hold_first)  # these models' first process holds every request (--hold)
        self.frozen: set[int] = set()  # pids stopped with SIGSTOP: they cannot answer /_stats
        self._started: dict[str, threading.Event] = {}
        self.starts: list[tuple[str, tuple[int, ...], int]] = []
        self.served: dict[str, list[str]] = {}  # per started model: the names its server serves
        self.received_at_stop: dict[str, list[int]] = {}
        self.events: list[tuple[str, str]] = []  # ("start"|"stop", model) in order
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def command(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> str:
        return shlex.join(self._argv(model, port, adapters))

    @staticmethod
    def _argv(model: ServerConfig, port: int, adapters: Sequence[ServerConfig]) -> list[str]:
        also = [x for a in adapters for x in ("--also-serve", a.name)]  # as vLLM's --lora-modules NAME=DIR
        return [sys.executable, str(FAKESERVER), "--port", str(port), "--model", model.name, *also]

    def start(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> RunningServer:
        if model.name in self.fail_start:
            raise EndpointError(f"injected: cannot start {model.name}")
        argv = self._argv(model, port, adapters) + self.extra.get(model.name, [])
        self.served[model.name] = [model.name, *(a.name for a in adapters)]
        with self._lock:
            if model.name in self.hold_first and all(m != model.name for m, _, _ in self.starts):
                argv.append("--hold")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        with self._lock:
            self.starts.append((model.name, tuple(gpus), port))
            self.events.append(("start", model.name))
            self.procs[model.name] = proc
        self.started(model.name).set()
        url = f"http://127.0.0.1:{port}"
        return RunningServer(
            url=url, openai_base_url=f"{url}/v1", served_model=model.name, model=model.name, engine="local",
            host="127.0.0.1", port=port, gpus=list(gpus), pid=proc.pid,
        )  # fmt: skip

    def alive(self, handle: RunningServer) -> str | None:
        proc = self.procs.get(handle.model)
        if proc is None or proc.pid != handle.pid:
            return "process is gone"
        code = proc.poll()
        return None if code is None else f"process exited with status {code}"

    def stop(self, handle: RunningServer) -> None:
        proc = self.procs.get(handle.model)
        if proc is None or proc.pid != handle.pid:
            return
        if proc.poll() is None:
            if proc.pid not in self.frozen:
                try:
                    received = httpx.get(f"{handle.url}/_stats", timeout=30).json()["received"]
                    self.received_at_stop.setdefault(handle.model, []).append(received)
                except httpx.HTTPError:
                    pass
            proc.kill()
        proc.wait()
        with self._lock:
            self.events.append(("stop", handle.model))

    def logs(self, handle: RunningServer, lines: int = 50) -> str:
        return ""

    def started(self, model: str) -> threading.Event:
        """Set once ``model``'s first process has been started."""
        with self._lock:
            return self._started.setdefault(model, threading.Event())

    def crash_when_held(self, model: str, held: int, sig: int = signal.SIGKILL) -> Crasher:
        """Send ``sig`` to ``model``'s first server once it holds ``held`` requests (``hold_first`` must name
        it): SIGKILL is a crash mid-run, SIGSTOP a hang."""
        assert model in self.hold_first
        crasher = Crasher(self, model, held, sig)
        crasher.start()
        return crasher


class Crasher(threading.Thread):
    """The thread of ``FakeLauncher.crash_when_held``; ``error`` says what went wrong, if anything did."""

    def __init__(self, launcher: FakeLauncher, model: str, held: int, sig: int) -> None:
        super().__init__(daemon=True)
        self.launcher, self.model, self.held, self.sig = launcher, model, held, sig
        self.error: str | None = None
        self.done = False

    def run(self) -> None:
        launcher = self.launcher
        try:
            if not launcher.started(self.model).wait(DEADLINE_S):
                raise AssertionError(f"{self.model} was never started")
            proc = launcher.procs[self.model]
            port = next(p for m, _, p in launcher.starts if m == self.model)
            server = ServerControl(port)
            wait_ready(server.root, timeout=DEADLINE_S)
            server.wait_held(self.held, timeout=DEADLINE_S)
            if self.sig == signal.SIGSTOP:
                launcher.frozen.add(proc.pid)
            os.kill(proc.pid, self.sig)
            self.done = True
        except Exception as exc:  # the test asserts on it: a thread cannot fail a test itself
            self.error = f"{type(exc).__name__}: {exc}"

    def check(self) -> None:
        self.join(DEADLINE_S)
        assert self.done, f"the {self.model} server was never crashed while it held requests: {self.error}"


def _write_plan(
    tmp_path: Path, models: list[str], base_port: int, extra: str = "", gpus: str = "0, 1, 2, 3, 4, 5, 6, 7"
) -> Path:
    eval_config = tmp_path / "eval.toml"
    eval_config.write_text(
        "[client]\nmax_attempts = 3\nbackoff_base = 0.05\nbackoff_max = 0.3\ntimeout = 10\n"
        "backpressure = false\n"
    )
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[sweep]\nout = "{tmp_path / "out"}"\ndata_dir = "{DEMO}"\ntasks = ["mednli", "meqsum"]\n'
        f'gpus = [{gpus}]\nengine = "local"\nbase_port = {base_port}\nlimit = 3\n'
        f'concurrency = 2\neval_config = "{eval_config}"\nmax_restarts = 2\nstartup_timeout = 120\n'
        "health_interval = 0.2\nhang_timeout = 2\nmax_retry_time = 30\n\n"
        + "".join(f'[[models]]\nname = "{m}"\n{extra if m == models[-1] else ""}\n' for m in models)
    )
    return plan


def _sweep(plan: Path, launcher: FakeLauncher) -> list[ModelReport]:
    loaded = load_plan(plan)
    runner = SweepRunner(
        loaded.sweep, resolve_models(loaded, plan), launcher, console=Console(file=io.StringIO())
    )
    return runner.run()


def _by_name(reports: list[ModelReport]) -> dict[str, ModelReport]:
    return {r.model: r for r in reports}


FAILING_500, FAILING_START = "biomistral-7b", "meditron-7b"


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FakeLauncher, list[ModelReport]]:
    """One sweep, shared by the tests below: 70B + 8Bs on 8 fake GPUs, one server killed mid-run, one model
    whose server answers 500 forever and one whose server cannot start."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    models = [SMALL_A, BIG, SMALL_B, FAILING_500, SMALL_C, FAILING_START]
    plan = _write_plan(tmp_path, models, free_port_block(len(models)))
    launcher = FakeLauncher(
        extra={FAILING_500: ["--status-always", "500"]}, fail_start=[FAILING_START], hold_first=[SMALL_B]
    )
    killer = launcher.crash_when_held(SMALL_B, held=2)  # both of its eval's requests are in flight
    reports = _sweep(plan, launcher)
    killer.check()
    return plan, launcher, reports


def test_sweep_packs_and_runs_in_parallel(first_sweep: tuple[Path, FakeLauncher, list[ModelReport]]) -> None:
    _, launcher, reports = first_sweep
    gpus = {m: g for m, g, _ in launcher.starts}
    assert gpus[BIG] == (0, 1, 2, 3)  # largest first, an aligned block of four
    assert all(len(gpus[m]) == 1 for m in (SMALL_A, SMALL_B, SMALL_C, FAILING_500))
    # Servers that ran at the same time never shared a GPU, and several did run at the same time.
    running: dict[str, tuple[int, ...]] = {}
    most = 0
    for kind, model in launcher.events:
        if kind == "start":
            assert not set(gpus[model]) & {g for gs in running.values() for g in gs}, (model, running)
            running[model] = gpus[model]
            most = max(most, len(running))
        else:
            running.pop(model, None)
    assert most >= 3
    assert [r.model for r in reports] == [SMALL_A, BIG, SMALL_B, FAILING_500, SMALL_C, FAILING_START]


def test_watchdog_restarts_a_killed_server_and_every_good_model_completes(
    first_sweep: tuple[Path, FakeLauncher, list[ModelReport]],
) -> None:
    _, launcher, reports = first_sweep
    by = _by_name(reports)
    assert [m for m, _, _ in launcher.starts].count(SMALL_B) >= 2  # restarted on the same port and GPU
    assert len({(g, p) for m, g, p in launcher.starts if m == SMALL_B}) == 1
    assert by[SMALL_B].restarts >= 1
    for name in (SMALL_A, BIG, SMALL_B, SMALL_C):
        r = by[name]
        assert r.status == "done", (name, r)
        assert r.stats.total == 6 and r.stats.succeeded == 6 and r.stats.failed == 0
        assert r.stats.prompt_tokens > 0 and r.stats.completion_tokens > 0


def test_a_failing_model_does_not_stop_the_others(
    first_sweep: tuple[Path, FakeLauncher, list[ModelReport]],
) -> None:
    _, _, reports = first_sweep
    by = _by_name(reports)
    assert by[FAILING_500].status == "failed" and "server_error" in by[FAILING_500].error
    assert by[FAILING_START].status == "failed" and "cannot start" in by[FAILING_START].error
    assert by[FAILING_START].restarts == 2  # bounded


def test_summary_table_and_json(
    first_sweep: tuple[Path, FakeLauncher, list[ModelReport]], tmp_path: Path
) -> None:
    plan, _, reports = first_sweep
    out = load_plan(plan).sweep.out
    path = write_summary(out, reports, 12.0)
    data = json.loads(path.read_text())
    assert data["models"] == {"done": 4, "failed": 2}
    row = next(r for r in data["results"] if r["model"] == SMALL_B)
    assert row["restarts"] >= 1 and row["stats"]["succeeded"] == 6 and row["stats"]["pending"] == 0
    buffer = io.StringIO()
    print_summary(reports, 12.0, Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "4 done" in text and "2 failed" in text and SMALL_B in text
    events = Journal(out).events()
    assert any(e["event"] == "restart" and e["model"] == SMALL_B for e in events)
    assert "busy" in text and "idle" in text  # the timeline column


TIMELINE_KEYS = {"queued_s", "start_s", "busy_s", "tail_s", "scoring_s", "stop_s", "idle_fraction"}


def test_each_model_has_a_timeline_adding_up_to_its_wall(
    first_sweep: tuple[Path, FakeLauncher, list[ModelReport]],
) -> None:
    """The parts add up to wall_s, in sweep-summary.json and in the journal's model_done; the eval's marks
    (eval_done events) lie inside the model's turn and in order; a model whose server never came up spent
    its turn starting."""
    plan, _, reports = first_sweep
    out = load_plan(plan).sweep.out
    rows = {r["model"]: r for r in json.loads(write_summary(out, reports, 12.0).read_text())["results"]}
    journal = Journal(out)
    done = {d.model: d for d in journal.read(ModelDone)}
    starts = {s.model: s for s in journal.read(ModelStart)}
    for name, row in rows.items():
        timeline = row["timeline"]
        assert set(timeline) == TIMELINE_KEYS, name
        parts = sum(v for k, v in timeline.items() if k != "idle_fraction")
        assert round(parts, 1) == row["wall_s"], (name, timeline, row["wall_s"])
        assert done[name].timeline == timeline and done[name].wall_s == row["wall_s"]
        assert timeline["queued_s"] == 0  # local: nothing pending
        assert 0 <= timeline["idle_fraction"] <= 1
    for name in (SMALL_A, BIG, SMALL_B, SMALL_C):
        marks = [e for e in journal.events() if e["event"] == "eval_done" and e["model"] == name]
        assert marks, name
        last = starts[name].t
        for m in marks:  # each pass: sent, ran out of work, stored, scored; all inside the turn
            assert last <= m["first_sent_at"] < m["generated_at"] <= m["scored_at"], m
            assert m["first_sent_at"] <= m["tail_at"] <= m["generated_at"], m
            last = m["scored_at"]
        assert last <= done[name].t
    never = rows[FAILING_START]["timeline"]
    assert never["start_s"] == rows[FAILING_START]["wall_s"] and never["busy_s"] == 0


def test_rerun_skips_finished_models_and_sends_nothing(
    first_sweep: tuple[Path, FakeLauncher, list[ModelReport]],
) -> None:
    plan, _, _ = first_sweep
    launcher = FakeLauncher(fail_start=[FAILING_START])
    reports = _by_name(_sweep(plan, launcher))
    for name in (SMALL_A, BIG, SMALL_B, SMALL_C):
        assert reports[name].status == "skipped"
    assert {m for m, _, _ in launcher.starts} == {
        FAILING_500
    }  # the failed one is tried again (and now works)
    assert reports[FAILING_500].status == "done"
    # Without the journal the servers start again, and the store still sends nothing for finished keys.
    out = load_plan(plan).sweep.out
    (out / "sweep-journal.jsonl").unlink()
    launcher = FakeLauncher(fail_start=[FAILING_START])
    reports = _by_name(_sweep(plan, launcher))
    assert {m for m, _, _ in launcher.starts} == {SMALL_A, BIG, SMALL_B, SMALL_C, FAILING_500}
    assert all(launcher.received_at_stop[m] == [0] for m in (SMALL_A, BIG, SMALL_B, SMALL_C, FAILING_500))
    assert all(reports[m].status == "done" and reports[m].sent == 0 for m in (SMALL_A, BIG, SMALL_B, SMALL_C))


def test_hung_server_is_restarted(tmp_path: Path) -> None:
    """A server that stops answering health checks (SIGSTOP) is stopped and restarted; the eval completes."""
    plan = _write_plan(tmp_path, [SMALL_A], free_port_block(1))
    launcher = FakeLauncher(hold_first=[SMALL_A])
    freezer = launcher.crash_when_held(SMALL_A, held=2, sig=signal.SIGSTOP)
    reports = _by_name(_sweep(plan, launcher))
    freezer.check()
    assert reports[SMALL_A].restarts >= 1
    assert reports[SMALL_A].status == "done" and reports[SMALL_A].stats.succeeded == 6
    events = Journal(tmp_path / "out").events()
    assert any(e["event"] == "server_down" and "hung" in e.get("reason", "") for e in events)


BASE, LORA = "smollm2-135m-instruct", "smollm2-135m-meqsum-lora"


def test_a_base_and_its_adapter_share_one_server(tmp_path: Path) -> None:
    """Base + adapter in one plan: one server start (serving both names), two evals, two identities; a
    rerun skips both, and when only the adapter is unfinished the base's server starts again for it."""
    ports = free_port_block(3)
    plan = _write_plan(tmp_path, [SMALL_A, BASE, LORA], ports)
    launcher = FakeLauncher()
    reports = _sweep(plan, launcher)
    assert sorted(m for m, _, _ in launcher.starts) == [SMALL_A, BASE]
    assert launcher.served[BASE] == [BASE, LORA]
    by = _by_name(reports)
    assert [r.model for r in reports] == [SMALL_A, BASE, LORA]
    for name in (BASE, LORA):
        assert by[name].status == "done" and by[name].stats.succeeded == 6, by[name]
        assert by[name].port == ports + 1  # the base's server
    assert by[BASE].identity == f"{BASE}@main" and by[LORA].identity.startswith(f"{LORA}@main+lora.")
    assert launcher.received_at_stop[BASE] == [12]  # both evals went to the one server
    out = load_plan(plan).sweep.out
    assert json.loads(write_summary(out, reports, 1.0).read_text())["models"] == {"done": 3}
    buffer = io.StringIO()
    print_summary(reports, 1.0, Console(file=buffer, width=200))
    assert BASE in buffer.getvalue() and LORA in buffer.getvalue()
    for name in (
        BASE,
        LORA,
    ):  # the adapter's turn is its own: the base's wall ends where the adapter's begins
        timeline = by[name].timeline
        assert timeline is not None and timeline.wall_s == by[name].wall_s

    launcher = FakeLauncher()
    assert {r.status for r in _sweep(plan, launcher)} == {"skipped"} and not launcher.starts

    # A new limit for the adapter only: its earlier `done` no longer counts, the base's does.
    plan = _write_plan(tmp_path, [SMALL_A, BASE, LORA], ports, extra="limit = 4\n")
    launcher = FakeLauncher()
    by = _by_name(_sweep(plan, launcher))
    assert [m for m, _, _ in launcher.starts] == [BASE] and launcher.served[BASE] == [BASE, LORA]
    assert by[SMALL_A].status == by[BASE].status == "skipped"
    assert by[LORA].status == "done" and by[LORA].stats.succeeded == 8 and by[LORA].sent == 2


def _scoring_gated(monkeypatch: pytest.MonkeyPatch, gate: Path) -> None:
    """Every eval of the sweeps that follow holds its scoring until ``gate / "open"`` exists."""
    gate.mkdir()
    monkeypatch.setenv(gated_scoring.GATE_ENV, str(gate))
    monkeypatch.setattr(pipeline.sweep.runner, "eval_process", gated_scoring.eval_process)


def _until(what: str, done: Callable[[], bool]) -> None:
    """Wait for something that happens on any machine (a server started, an eval reached scoring)."""
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _at(events: list[dict[str, object]], model: str, event: str) -> int:
    return next(i for i, e in enumerate(events) if e["model"] == model and e["event"] == event)


def test_gpus_go_to_the_next_server_before_scoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One GPU, two models: the first's server is stopped as soon as its answers are in, the second's starts
    on the same GPU while the first's scoring is still held, and the first's timeline puts the scoring
    after the stop, outside its GPU allocation."""
    gate = tmp_path / "gate"
    _scoring_gated(monkeypatch, gate)
    plan = _write_plan(tmp_path, [SMALL_A, SMALL_B], free_port_block(2), gpus="0")
    launcher = FakeLauncher()
    journal = Journal(tmp_path / "out")
    result: list[ModelReport] = []
    sweep = threading.Thread(target=lambda: result.extend(_sweep(plan, launcher)), daemon=True)
    sweep.start()
    try:
        _until(f"{SMALL_B}'s server started", lambda: SMALL_B in {m for m, _, _ in launcher.starts})
    finally:
        (gate / "open").touch()
        sweep.join(DEADLINE_S)
    assert not sweep.is_alive()
    events = journal.events()
    assert [(m, g) for m, g, _ in launcher.starts] == [(SMALL_A, (0,)), (SMALL_B, (0,))]
    assert _at(events, SMALL_A, "model_generated") < _at(events, SMALL_A, "server_stopped")
    assert _at(events, SMALL_A, "server_stopped") < _at(events, SMALL_B, "server_started")
    assert _at(events, SMALL_B, "server_started") < _at(events, SMALL_A, "eval_done")  # scoring held
    by = _by_name(result)
    assert launcher.received_at_stop[SMALL_A] == [6]  # every answer was in before its server stopped
    assert {h.read_text().split("\n")[1] for h in gate.glob("held.*")} == {""}  # scoring saw no GPU
    for name in (SMALL_A, SMALL_B):
        assert by[name].status == "done" and by[name].stats.succeeded == 6, by[name]
        timeline = by[name].timeline
        assert timeline is not None and timeline.wall_s == by[name].wall_s
        gpu_time = timeline.wall_s - timeline.scoring_s  # scoring came after the release
        idle = (gpu_time - timeline.busy_s - timeline.tail_s) / gpu_time
        assert timeline.idle_fraction == pytest.approx(idle, abs=0.002)


def test_scoring_on_a_gpu_keeps_the_gpus_until_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A metric declared ``gpu = true`` that can run here (BERTScore, faked as available): the model scores
    on its own GPUs, seen by the scorer, and only then is its server stopped and the next one started."""
    import pipeline.scoring.extras

    gate = tmp_path / "gate"
    _scoring_gated(monkeypatch, gate)
    monkeypatch.setattr(pipeline.scoring.extras, "gpu_scoring", lambda tasks: ["meqsum:bertscore_f1"])
    plan = _write_plan(tmp_path, [SMALL_A, SMALL_B], free_port_block(2), gpus="3")
    launcher = FakeLauncher()
    (gate / "open").touch()
    by = _by_name(_sweep(plan, launcher))
    events = Journal(tmp_path / "out").events()
    assert _at(events, SMALL_A, "eval_done") < _at(events, SMALL_A, "server_stopped")
    assert _at(events, SMALL_A, "server_stopped") < _at(events, SMALL_B, "server_started")
    assert {h.read_text().split("\n")[1] for h in gate.glob("held.*")} == {"3"}
    timeline = by[SMALL_A].timeline
    assert by[SMALL_A].status == "done" and timeline is not None
    held = (timeline.wall_s - timeline.busy_s - timeline.tail_s) / timeline.wall_s  # scoring counted in
    assert timeline.idle_fraction == pytest.approx(held, abs=0.002)


def test_a_sweep_stopped_between_answers_and_scores_scores_on_rerun_without_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eval process dies in scoring, after its server was stopped (as a killed sweep leaves it): the
    rerun starts no server, sends nothing, and scores the stored answers."""
    gate = tmp_path / "gate"
    _scoring_gated(monkeypatch, gate)
    plan = _write_plan(tmp_path, [SMALL_A], free_port_block(1), gpus="0")
    launcher = FakeLauncher()
    result: list[ModelReport] = []
    sweep = threading.Thread(target=lambda: result.extend(_sweep(plan, launcher)), daemon=True)
    sweep.start()
    _until("the eval reached scoring", lambda: any(gate.glob("held.*")))
    held = next(gate.glob("held.*"))
    os.kill(int(held.name.removeprefix("held.")), signal.SIGKILL)
    sweep.join(DEADLINE_S)
    assert not sweep.is_alive()
    assert result[0].status == "failed" and "exited with status" in result[0].error
    out = tmp_path / "out"
    assert launcher.received_at_stop[SMALL_A] == [6]
    assert _scores(out, result[0].identity) == 0

    monkeypatch.undo()  # the rerun's eval processes are the real ones
    launcher = FakeLauncher()
    by = _by_name(_sweep(plan, launcher))
    assert launcher.starts == []  # no server: every answer was stored
    report = by[SMALL_A]
    assert report.status == "done" and report.sent == 0 and report.stats.succeeded == 6, report
    assert _scores(out, report.identity) == 6
    assert report.timeline is not None and report.timeline.scoring_s == report.wall_s
    assert report.timeline.idle_fraction == 0
    # Done now: a third run skips it.
    assert _by_name(_sweep(plan, FakeLauncher()))[SMALL_A].status == "skipped"


def _scores(out: Path, identity: str) -> int:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        return int(conn.execute("SELECT count(*) FROM scores WHERE model = ?", (identity,)).fetchone()[0])
