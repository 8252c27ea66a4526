"""Where a night of GPUs goes: a sweep plan run by the real sweep code against fake servers, in accelerated
time (issue #23, item 4).

Real: the sweep (``SweepRunner``: its packing and allocator, server keeper, watchdog, one eval process per
model, the evals' client, store and scoring, the timeline). Simulated: each model's server is our fake
OpenAI server (tests/support/fakeserver.py) that becomes healthy ``load_s / A`` after its launch and answers
each request after the latency the cost model (pipeline/sweep/costs.toml) gives a request of its task on a
server of its class, divided by A (the acceleration). The fake servers' own processes are started before the
sweep: a Python process's start (a third of a second here, two minutes simulated) is no part of an engine's
load, which ``load_s`` already is, whole.

The data are the synthetic demo_data/, each task's first ``--limit`` items (default 2: 40 requests a model
over the six tasks, LongHealth's two questions being 30), sent one at a time (concurrency 1): each demo
request of task t stands for k_t = requests_t (the full task, costs.toml) / demo requests_t real ones, and
takes the server time those k_t requests take at full batch (k_t x their share of the server,
``estimate.request_seconds``). A model's generation time is therefore the cost model's for the full study,
divided by A, and its last request takes k_t requests' share of the server (a few real requests' latency at
full batch: the order of the real tail; counted as busy_s here: with one request in flight, in-flight never
drops below its limit; the idle fraction counts busy and tail alike). What does not scale: the code's own
costs (an eval process's start, each request's round trip, scoring, stopping) run at real speed and count A
times over in simulated time; the output shows how much of the allocation each part is, and the study's
figures with those costs taken at the study's scale instead (eval start and stop once, scoring times the
items' scale; the schedule replayed with those walls by the sweep's packing, ``estimate.simulate``) beside the
measured ones.

Prints the makespan, the lower bound (generating GPU-time / GPUs) and, last, ``idle_fraction=X``: the share
of the allocated GPU-time in which the GPUs generated nothing (pipeline/sweep/timeline.py's definition,
summed over the models, weighted by their GPUs). Times are simulated seconds unless they say "real".

Run: .venv/bin/python bench/sweep_idle.py [--plan docs/plans/clue.toml] [--accel A] [--models N] [--limit N]
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Each eval process the sweep spawns imports this script again, as __mp_main__ (multiprocessing's spawn),
# and needs none of the bench: these imports would add half a second to each one's start, which the
# acceleration makes minutes (medsweep's own entry point imports in 0.04 s).
if __name__ != "__mp_main__":
    from rich.console import Console

    from pipeline.errors import MedsweepError
    from pipeline.models.registry import ServerConfig
    from pipeline.serving.running import RunningServer
    from pipeline.sweep.estimate import (
        Costs,
        ModelEstimate,
        StudyEstimate,
        TaskCost,
        estimate,
        load_costs,
        request_seconds,
        simulate,
        task_costs,
    )
    from pipeline.sweep.plan import PlannedModel, SweepSettings, load_plan, resolve_models
    from pipeline.sweep.runner import SweepRunner
    from pipeline.sweep.summary import ModelReport
    from tests.support.ports import free_port_block
    from tests.support.servers import FAKESERVER

DEMO = REPO / "demo_data"
# Each task's first LIMIT demo items, each standing for a larger share of the study's requests: fewer round
# trips, whose real CPU (client and fake server, eight models at once on this 2-core machine) would otherwise
# slow the code's own steps, and count A times over.
LIMIT = 2
TARGET_WALL_S = 60.0  # the default acceleration makes the cost model's makespan this many real seconds


class FakeLauncher:
    """One fake server per model, its process started here (on ``port0`` and up, beside the sweep's ports),
    each request answered after its task's latency (``--latency-map``); ``start`` "loads" it: it returns the
    server ``load_s / accel`` after it was called."""

    def __init__(
        self,
        load_s: dict[str, float],
        latencies: dict[str, list[tuple[str, float]]],
        work: Path,
        port0: int,
    ):
        self.load_s, self.latencies, self.work = load_s, latencies, work
        self.ports = {name: port0 + i for i, name in enumerate(load_s)}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.waiting: dict[str, subprocess.Popen[bytes]] = {}
        for name, port in self.ports.items():
            log = open(work / f"{name}.server.log", "ab")  # noqa: SIM115 (the process keeps it)
            argv = self._argv(name, port)
            self.waiting[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
        for name, proc in self.waiting.items():
            while proc.poll() is None and not _listening(self.ports[name]):
                time.sleep(0.01)

    def _argv(self, name: str, port: int) -> list[str]:
        table = self.work / f"{name}.latency.json"
        table.write_text(json.dumps(self.latencies[name]))
        return [sys.executable, str(FAKESERVER), "--port", str(port), "--model", name,
                "--max-model-len", "100000", "--latency-map", str(table)]  # fmt: skip

    def command(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> str:
        return shlex.join(self._argv(model.name, self.ports[model.name]))

    def start(
        self, model: ServerConfig, gpus: Sequence[int], port: int, adapters: Sequence[ServerConfig] = ()
    ) -> RunningServer:
        launched = time.monotonic()
        proc = self.waiting.pop(model.name)
        if proc.poll() is not None:
            raise MedsweepError(f"{model.name}: the fake server exited with {proc.returncode}")
        self.procs[proc.pid] = proc
        # Healthy at load_s after launch: wait here (finer than the keeper's 1 s health poll, which A would
        # stretch to A seconds).
        time.sleep(max(0.0, launched + self.load_s[model.name] - time.monotonic()))
        port = self.ports[model.name]
        url = f"http://127.0.0.1:{port}"
        return RunningServer(
            url=url, openai_base_url=f"{url}/v1", served_model=model.name, model=model.name, engine="local",
            host="127.0.0.1", port=port, gpus=list(gpus), pid=proc.pid,
        )  # fmt: skip

    def alive(self, server: RunningServer) -> str | None:
        proc = self.procs.get(server.pid or 0)
        code = None if proc is None else proc.poll()
        return "process is gone" if proc is None else None if code is None else f"exited with {code}"

    def stop(self, server: RunningServer) -> None:
        proc = self.procs.pop(server.pid or 0, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def logs(self, server: RunningServer, lines: int = 50) -> str:
        return ""

    def close(self) -> None:
        """Stop the fake servers the sweep did not start (a model that failed before its launch)."""
        for proc in [*self.waiting.values(), *self.procs.values()]:
            proc.kill()
            proc.wait()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def bench_models(
    settings: SweepSettings, models: list[PlannedModel], costs: Costs, accel: float
) -> tuple[dict[str, float], dict[str, list[tuple[str, float]]], dict[str, float]]:
    """Per model: its simulated load time, (marker, seconds) per task of its demo requests, and how many
    real requests its demo requests stand for on average (full / demo)."""
    load_s: dict[str, float] = {}
    latencies: dict[str, list[tuple[str, float]]] = {}
    scale: dict[str, float] = {}
    counted: dict[tuple[tuple[str, ...], int | None], tuple[dict[str, TaskCost], dict[str, TaskCost]]] = {}
    for model in models:
        cls = costs.server_for(model.server.params_b)
        load_s[model.name] = cls.load_s / accel
        tasks = model.tasks or tuple(costs.task)
        if (tasks, model.limit) not in counted:  # rendering the demo data: once per task list and limit
            counted[tasks, model.limit] = (
                task_costs(costs, tasks, settings.data_dir, limit=model.limit),  # the bench's request counts
                task_costs(costs, tasks, None),  # the full study's
            )
        demo, full = counted[tasks, model.limit]
        latencies[model.name] = [
            (full[t].bench_marker, full[t].requests / max(demo[t].requests, 1) * request_seconds(cls, full[t])
             / accel)
            for t in costs.task if t in tasks
        ]  # fmt: skip
        scale[model.name] = sum(t.requests for t in full.values()) / max(
            sum(t.requests for t in demo.values()), 1
        )
    return load_s, latencies, scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, default=REPO / "docs/plans/clue.toml")
    parser.add_argument(
        "--accel", type=float, default=None, help=f"default: the makespan in {TARGET_WALL_S:g} s"
    )
    parser.add_argument("--models", type=int, default=None, help="only the plan's first N models")
    parser.add_argument(
        "--limit", type=int, default=LIMIT, help="each task's first N demo items (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the sweep's store and logs here")
    args = parser.parse_args(argv)
    try:
        plan = load_plan(args.plan)
        models = resolve_models(plan, args.plan)[: args.models]
        costs = load_costs()
        planned = estimate(plan.sweep, models, costs, None)
    except MedsweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    accel = args.accel or max(planned.makespan_s / TARGET_WALL_S, 1.0)
    with tempfile.TemporaryDirectory(prefix="sweep-idle-") as tmp:
        out = args.out or Path(tmp) / "runs"
        ports = free_port_block(2 * len(models))  # the sweep's, then the fake servers'
        settings = plan.sweep.model_copy(
            update={"out": out, "data_dir": DEMO, "base_port": ports, "limit": None}
        )
        models = [
            m.model_copy(update={"port": settings.base_port + i, "concurrency": 1, "limit": args.limit})
            for i, m in enumerate(models)
        ]
        load_s, latencies, scale = bench_models(settings, models, costs, accel)
        launcher = FakeLauncher(load_s, latencies, Path(tmp), ports + len(models))
        runner = SweepRunner(settings, models, launcher, console=Console(file=io.StringIO()))
        try:
            began = time.monotonic()
            reports = runner.run()
            wall = time.monotonic() - began
        finally:
            launcher.close()
    report(reports, planned, list(settings.gpus), accel, wall, load_s, scale)
    return 0 if all(r.status == "done" for r in reports) else 1


def report(
    reports: list[ModelReport],
    planned: StudyEstimate,
    inventory: list[int],
    accel: float,
    wall: float,
    load_s: dict[str, float],
    scale: dict[str, float],
) -> None:
    """The study's figures in simulated seconds (real ones x ``accel``); ``idle_fraction=X`` last."""
    parts = dict.fromkeys(("load", "eval start", "busy", "tail", "scoring", "stop"), 0.0)  # GPU-seconds, real
    # The same at the full study's scale: the simulated parts x accel; the code's own costs at real speed,
    # scoring x the model's item scale (it scores that many times more answers), eval start and stop once;
    # the schedule replayed with those walls by the sweep's packing (estimate.simulate).
    at_scale: list[ModelEstimate] = []
    released = 0.0  # scoring after the GPUs were released: not allocated GPU-time (timeline.py)
    for r in reports:
        t = r.timeline
        if t is None:
            print(f"{r.model}: no timeline ({r.status}: {r.error})")
            continue
        n = max(len(r.gpus), 1)
        load = min(load_s[r.model], t.start_s)
        scoring = t.scoring_s - t.released_s
        released += t.released_s * n
        for name, seconds in (("load", load), ("eval start", t.start_s - load), ("busy", t.busy_s),
                              ("tail", t.tail_s), ("scoring", scoring), ("stop", t.stop_s)):  # fmt: skip
            parts[name] += seconds * n
        own = t.start_s - load + scoring * scale[r.model] + t.stop_s
        at_scale.append(ModelEstimate(r.model, n, "", load * accel, (t.busy_s + t.tail_s) * accel + own))
    allocated = sum(parts.values())
    generating = parts["busy"] + parts["tail"]
    gpus = len(inventory)
    makespan, bound = wall * accel, generating * accel / gpus
    replay = simulate(at_scale, inventory)
    print(f"models: {len(reports)} ({sum(r.status == 'done' for r in reports)} done) on {gpus} GPUs; "
          f"acceleration {accel:.0f}x; real wall {wall:.1f} s")  # fmt: skip
    print(f"cost model (pipeline/sweep/costs.toml): makespan {planned.makespan_s / 3600:.2f} h, "
          f"lower bound {planned.lower_bound_s / 3600:.2f} h, {planned.gpu_hours:.1f} GPU-hours")  # fmt: skip
    expected = sum(m.generate_s * m.gpus for m in planned.models) / 3600
    print(
        f"generating GPU-time: {generating * accel / 3600:.1f} GPU-h measured, {expected:.1f} in the cost "
        "model"
    )
    if allocated:
        shares = ", ".join(f"{name} {seconds / allocated:.1%}" for name, seconds in parts.items())
        print(f"allocated GPU-time {allocated * accel / 3600:.1f} GPU-h: {shares}; scoring after the GPUs' "
              f"release (not allocated): {released * accel / 3600:.1f} GPU-h")  # fmt: skip
        print(f"at the study's scale (the code's own steps once, not x{accel:.0f}: eval start and stop, "
              f"scoring x the items' scale; the schedule replayed by the sweep's packing): makespan "
              f"{replay.makespan_s / 3600:.2f} h = {replay.makespan_s / (bound or 1):.2f} x the lower bound, "
              f"idle fraction {1 - generating * accel / (replay.gpu_hours * 3600):.3f}")  # fmt: skip
    print(f"makespan: {makespan / 3600:.2f} h")
    print(f"lower bound (generating GPU-time / GPUs): {bound / 3600:.2f} h  (makespan / bound = "
          f"{makespan / bound if bound else float('inf'):.2f})")  # fmt: skip
    print(f"idle_fraction={1 - generating / allocated if allocated else 1.0:.3f}")


if __name__ == "__main__":
    sys.exit(main())
