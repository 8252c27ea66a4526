"""bench/sweep_idle.py on a tiny plan: the real sweep code against the bench's fake servers, to its last line.

No wall-clock asserts: the figures depend on the machine; what is checked is that every model ran to the end
and the bench prints what it promises, in that order, with the idle fraction last."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.servers import REPO

PLAN = """[sweep]
out = "unused"
tasks = ["mednli", "meqsum"]
gpus = [0, 1]
engine = "local"

[[models]]
name = "meta-llama-3-8b-instruct"

[[models]]
name = "mixtral-8x7b-instruct-v0.1"
"""


def test_the_bench_runs_a_tiny_plan_to_its_idle_fraction(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    # An acceleration that leaves each model a few seconds of simulated work (the timeline rounds to 0.1 s).
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "sweep_idle.py"), "--plan", str(plan), "--accel", "40",
         "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("models: 2 (2 done) on 2 GPUs")
    assert any(line.startswith("makespan: ") for line in lines)
    assert any(line.startswith("lower bound (generating GPU-time / GPUs): ") for line in lines)
    last = re.fullmatch(r"idle_fraction=(\d\.\d{3})", lines[-1])
    assert last is not None, lines[-1]
    assert 0.0 < float(last.group(1)) < 1.0, done.stdout  # the breakdown above it says why
    # The real sweep ran: its journal has each model's end, with the timeline the bench summed.
    journal = (tmp_path / "runs" / "sweep-journal.jsonl").read_text()
    assert journal.count('"model_done"') == 2 and '"busy_s"' in journal
