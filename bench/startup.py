"""Start-up cost of the command line: `medsweep --help` and `medsweep status` on an 8-model study store.

Builds a synthetic store (marked synthetic: made-up models, items and answers) the size of the study's: 8
models x 6 tasks, 76,000 results in all, a few percent failed and a few pending, written through
``pipeline.store.database.Store`` (the real schema). Then times, in the same run and interleaved so that a
busy machine slows all three alike:

1. ``python -c pass`` (the interpreter's own start: the floor),
2. ``medsweep --help``,
3. ``medsweep status --out STORE``,

each ``--repeat`` times as a child process, and prints the median wall time, the median CPU time (user +
system of the child) and each command's ratio to ``python -c pass``. CPU time is what the command costs;
wall time is what a user waits, and on a shared machine includes waiting for a core.

Usage: ``python bench/startup.py [--repeat 9] [--rows 76000] [--models 8]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.store.database import Store  # noqa: E402
from pipeline.store.schema import ResultRecord  # noqa: E402

TASKS = ("mednli", "meqsum", "probsum", "longhealth", "medisumqa", "medisumcode")
FAILED_CLASSES = ("timeout", "server_error", "context_length")


def build_store(out: Path, models: int, rows: int) -> None:
    """``models`` synthetic models sharing ``rows`` results over the six tasks; 3 % failed, 2 % pending."""
    store = Store.open(out)
    try:
        per_model = rows // models
        per_task = -(-per_model // len(TASKS))
        for m in range(models):
            model = f"synthetic-model-{m}"
            run_id = f"synthetic-run-{m}"
            store.begin_run(run_id, model, "paper", {"synthetic": True}, {"synthetic": True})
            for task in TASKS:
                store.set_plan(model, "paper", task, per_task + per_task // 50, run_id)
            batch: list[ResultRecord] = []
            for i in range(per_model):
                task = TASKS[i % len(TASKS)]
                failed = i % 33 == 0
                fields: dict[str, Any] = dict.fromkeys(ResultRecord._fields)  # columns not filled here: NULL
                fields.update(
                    key=f"{m:02d}-{i:08d}", run_id=run_id, model=model, variant="paper", task=task,
                    subtask="task1" if task == "longhealth" else "", item_id=str(i // len(TASKS)), repeat=0,
                    prompt_hash=f"{i:064x}", request_json='{"kind":"chat","max_tokens":256}',
                    reference_json='"synthetic reference"', status="failed" if failed else "succeeded",
                    error_class=FAILED_CLASSES[i % 3] if failed else None,
                    error_message="synthetic failure" if failed else None,
                    output=None if failed else "synthetic answer " * 8, finish_reason="stop",
                    prompt_tokens=900, completion_tokens=60, latency_s=1.5, attempts=1, updated_at=1.7e9,
                )  # fmt: skip
                batch.append(ResultRecord(**fields))
                if len(batch) == 5000:
                    store.write_results(batch)
                    batch = []
            store.write_results(batch)
            store.finish_run(run_id)
    finally:
        store.close()


def _time(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of ``argv``; its output is discarded, a failure ends the bench."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--rows", type=int, default=76_000)
    parser.add_argument("--models", type=int, default=8)
    args = parser.parse_args()
    medsweep = str(Path(sys.executable).parent / "medsweep")
    if not os.path.exists(medsweep):
        raise SystemExit(f"{medsweep} not found: run `make setup` and call this with .venv/bin/python")
    with tempfile.TemporaryDirectory(prefix="medsweep-startup-") as tmp:
        out = Path(tmp) / "study"
        start = time.perf_counter()
        build_store(out, args.models, args.rows)
        took, size = time.perf_counter() - start, (out / "medsweep.sqlite").stat().st_size / 1e6
        print(f"synthetic store: {args.models} models, {args.rows} rows, built in {took:.1f} s, {size:.0f}MB")
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "medsweep --help": [medsweep, "--help"],
            "medsweep status": [medsweep, "status", "--out", str(out)],
        }
        for argv in cases.values():  # warm the page cache and .pyc files once
            _time(argv)
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, argv in cases.items():
                wall, cpu = _time(argv)
                walls[name].append(wall)
                cpus[name].append(cpu)
    floor_wall = statistics.median(walls["python -c pass"])
    floor_cpu = statistics.median(cpus["python -c pass"])
    print(f"median of {args.repeat} runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'command':<18} {'wall s':>8} {'x pass':>7} {'CPU s':>8} {'x pass':>7}")
    for name in cases:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:<18} {wall:8.3f} {wall / floor_wall:7.1f} {cpu:8.3f} {cpu / max(floor_cpu, 1e-3):7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
