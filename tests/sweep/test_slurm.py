"""Sweeps on a real one-node Slurm cluster (tests/support/slurm_cluster.py: slurmctld, slurmd and munge
started for these tests, four GPUs declared). Each model's job runs the real `medsweep sweep --job`: the
local sweep's serve → eval → stop, with a fake ``vllm`` on PATH (tests/support/fake_vllm.py) that starts
our fake OpenAI server on the port it is given. Timing is controlled through the fake servers (--hold,
/_release, /_wait) and by waiting for Slurm and store states, never by sleeping a guessed time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.store.layout import job_dir
from pipeline.sweep.journal import Journal
from pipeline.sweep.slurm.jobs import job_result, store_counts
from pipeline.sweep.slurm.settings import parse_time
from tests.support.fake_vllm import install
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.ports import free_port_block
from tests.support.servers import ServerControl, wait_ready
from tests.support.slurm_cluster import SlurmCluster, slurm_cluster

__all__ = ["slurm_cluster"]  # the session fixture, used by the tests below

SMALL_A, SMALL_B, PAIR = "meta-llama-3-8b-instruct", "mistral-7b-instruct-v0.2", "mixtral-8x7b-instruct-v0.1"
TOTAL = 6  # two tasks x limit 3


@dataclass
class Sweep:
    """One plan on the cluster: its folder, environment and the fake servers' controls."""

    cluster: SlurmCluster
    root: Path
    models: list[str]
    base_port: int
    env: dict[str, str]

    @property
    def plan(self) -> Path:
        return self.root / "plan.toml"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def write_plan(
        self, *, gpus: dict[str, int] | None = None, slurm: str = "", max_restarts: int = 2
    ) -> Path:
        (self.root / "eval.toml").write_text(
            "[client]\nmax_attempts = 3\nbackoff_base = 0.05\nbackoff_max = 0.3\ntimeout = 300\n"
            "backpressure = false\n"
        )
        entries = "".join(
            f'[[models]]\nname = "{m}"\n' + (f"gpus = {gpus[m]}\n" if gpus and m in gpus else "") + "\n"
            for m in self.models
        )
        self.plan.write_text(
            f'[sweep]\nout = "out"\nscheduler = "slurm"\nengine = "local"\ndata_dir = "{DEMO}"\n'
            f'tasks = ["mednli", "meqsum"]\nbase_port = {self.base_port}\nlimit = 3\nconcurrency = 4\n'
            f'eval_config = "eval.toml"\nmax_restarts = {max_restarts}\nstartup_timeout = 60\n'
            "health_interval = 0.5\nhang_timeout = 30\nmax_retry_time = 60\n\n"
            f'[slurm]\npartition = "{self.cluster.partition}"\ngpus_per_node = 4\ntime = "10"\ngrace = 30\n'
            f"poll_interval = 0.5\n{slurm}\n" + entries
        )
        return self.plan

    def hold(self, *models: str, log: Path | None = None) -> None:
        """The next servers of ``models`` hold every request until released (and append every request
        they receive to ``log``, which outlives them)."""
        extra = ["--request-log", str(log)] if log else []
        (self.root / "extra.json").write_text(json.dumps({m: ["--hold", *extra] for m in models}))

    def server(self, model: str) -> ServerControl:
        control = ServerControl(self.base_port + self.models.index(model))
        wait_ready(control.root, timeout=120)
        return control

    def medsweep(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args], cwd=self.root, env=self.env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "sweep", "--plan", str(self.plan), *args], cwd=self.root,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def starts(self) -> list[dict[str, Any]]:
        path = self.root / "vllm-starts.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def counts(self, model: str) -> tuple[int, int]:
        """(succeeded, total) in the model's job store (zeros before the job creates it)."""
        succeeded, total, _ = store_counts(self.out, model)
        return succeeded, total

    def submitted(self, *, scoring: bool = False) -> dict[str, list[str]]:
        """model -> the ids of its GPU jobs (``scoring``: of its scoring jobs), oldest first."""
        subs: dict[str, list[str]] = {}
        for event in Journal(self.out).events():
            if event["event"] == "job_submitted" and event.get("scoring", False) == scoring:
                subs.setdefault(event["model"], []).append(str(event["job_id"]))
        return subs

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(
            (self.out / "logs").glob("*.out"))) if (self.out / "logs").is_dir() else ""  # fmt: skip


def wait_for(what: str, check: Callable[[], bool], timeout: float = 180.0) -> None:
    """Poll a state (Slurm's, a store's) until it holds; the state is what the test waits for."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def sweep(slurm_cluster: SlurmCluster, tmp_path: Path) -> Iterator[Sweep]:
    bin_dir = tmp_path / "bin"
    install(bin_dir)
    models = [SMALL_A, SMALL_B, PAIR]
    base = free_port_block(len(models))
    env = {
        **os.environ, **slurm_cluster.env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_VLLM_RECORD": str(tmp_path / "vllm-starts.jsonl"),
        "FAKE_VLLM_EXTRA": str(tmp_path / "extra.json"),
    }  # fmt: skip
    s = Sweep(slurm_cluster, tmp_path, models, base, env)
    s.hold()
    yield s
    left = slurm_cluster.jobs()
    if left:  # a failed test must not leave jobs (or their servers) for the next one
        slurm_cluster.run("scancel", *left, check=False)
        wait_for("the cancelled jobs to end", lambda: not slurm_cluster.jobs(), 60)
    for start in s.starts():  # the fake servers the jobs started: gone unless a job was killed hard
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(start["pid"]), signal.SIGKILL)


def test_three_models_run_side_by_side_on_disjoint_gpus(sweep: Sweep) -> None:
    sweep.write_plan()
    sweep.hold(*sweep.models)
    proc = sweep.start()
    servers = {m: sweep.server(m) for m in sweep.models}
    for control in servers.values():  # all three hold requests at once: the jobs run side by side
        control.wait_held(1)
    starts = {s["model"]: s for s in sweep.starts()}
    gpus = {m: set(starts[m]["gpus"].split(",")) for m in sweep.models}
    assert [len(gpus[m]) for m in sweep.models] == [1, 1, 2]
    assert set.union(*gpus.values()) == {"0", "1", "2", "3"}  # disjoint: 1 + 1 + 2 of the four
    assert len({s["job_id"] for s in starts.values()}) == 3
    assert "--tensor-parallel-size 2" in " ".join(starts[PAIR]["argv"])
    for control in servers.values():
        control.release()
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output + sweep.logs()
    summary = json.loads((sweep.out / "sweep-summary.json").read_text())
    assert {r["model"]: r["status"] for r in summary["results"]} == dict.fromkeys(sweep.models, "done")
    assert all(r["stats"]["succeeded"] == TOTAL for r in summary["results"])
    assert {m: len(ids) for m, ids in sweep.submitted().items()} == dict.fromkeys(sweep.models, 1)
    # The GPU jobs generated only and ended with their servers; each model's CPU-only scoring job
    # (--dependency=afterany) started after its GPU job had ended, held no GPU, and scored the job's store.
    for model in sweep.models:
        (gpu_job,), (scoring_job,) = sweep.submitted()[model], sweep.submitted(scoring=True)[model]
        assert _asks_gpus(sweep.cluster, gpu_job) and not _asks_gpus(sweep.cluster, scoring_job)
        assert _job_field(sweep.cluster, scoring_job, "Dependency") in (
            "(null)",
            f"afterany:{gpu_job}(unfulfilled)",
        )
        assert _job_field(sweep.cluster, gpu_job, "EndTime") <= _job_field(
            sweep.cluster, scoring_job, "StartTime"
        )
        assert _scored(sweep.out, model) == TOTAL
        done = [e for e in Journal(job_dir(sweep.out, model)).events() if e["event"] == "model_done"]
        assert [e["scored"] for e in done] == [False, True], done
        row = next(r for r in summary["results"] if r["model"] == model)
        timeline = row["timeline"]
        assert round(sum(v for k, v in timeline.items() if k != "idle_fraction"), 1) == row["wall_s"]
        assert timeline["idle_fraction"] == done[0]["timeline"]["idle_fraction"]  # GPU time: the GPU job's
    status = sweep.medsweep("status", "--out", "out", "--json")
    report = json.loads(status.stdout)
    assert report["succeeded"] == 3 * TOTAL  # every job's store is read
    assert {j["model"]: j["status"] for j in report["jobs"]} == dict.fromkeys(sweep.models, "done")
    report = sweep.medsweep("report", "--out", "out")  # reads the three job stores together
    assert report.returncode == 0, report.stderr
    assert all(m in report.stdout for m in sweep.models), report.stdout
    # A rerun submits nothing: every model was finished by its job.
    again = sweep.medsweep("sweep", "--plan", str(sweep.plan))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skipped") == 3
    assert {m: len(ids) for m, ids in sweep.submitted().items()} == dict.fromkeys(sweep.models, 1)


def test_cancelled_job_is_resubmitted_alone_and_resumes_without_resending(sweep: Sweep) -> None:
    # The scoring jobs are submitted held: `done`'s is cancelled after its GPU job generated everything and
    # before it scored; the rerun submits its scoring job alone, never its generation again.
    held, done = SMALL_A, SMALL_B
    sweep.models = [held, done]
    sweep.write_plan(slurm='scoring_extra_sbatch = ["--hold"]')
    sweep.hold(held)
    submitted = sweep.medsweep("sweep", "--plan", str(sweep.plan), "--no-wait")
    assert submitted.returncode == 0, submitted.stderr
    assert "medsweep status --out" in submitted.stderr
    server = sweep.server(held)
    server.wait_held(4)  # concurrency 4: four of the six requests in flight
    server.release(2)
    wait_for("two committed answers", lambda: sweep.counts(held)[0] == 2)
    committed = [r["messages"] for r in server.requests()]  # the fake server lists answered requests
    assert len(committed) == 2
    # Finished: every answer committed and the job's model_done journaled (the status below reads both).
    wait_for(
        f"{done} to finish",
        lambda: sweep.counts(done) == (TOTAL, TOTAL) and bool(job_result(sweep.out, done, 0)),
    )
    status = sweep.medsweep("status", "--out", "out")
    assert status.returncode == 0 and "Slurm jobs of out" in status.stdout, status.stderr
    jobs = {
        j["model"]: j for j in json.loads(sweep.medsweep("status", "--out", "out", "--json").stdout)["jobs"]
    }
    assert jobs[held]["state"] == "RUNNING" and jobs[held]["succeeded"] == 2, jobs
    assert jobs[done]["status"] == "done" and jobs[done]["succeeded"] == TOTAL, jobs
    assert jobs[done]["scored"] is False and jobs[done]["scoring_state"] == "PENDING", jobs
    cancelled = sweep.medsweep("sweep", "--plan", str(sweep.plan), "--cancel")
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"{held}: cancelled job" in cancelled.stderr
    assert f"{done}: cancelled job {sweep.submitted(scoring=True)[done][0]}" in cancelled.stderr
    wait_for("the cancelled job to end", lambda: not sweep.cluster.jobs(), 60)
    assert sweep.counts(held) == (2, TOTAL)  # what was committed is kept; nothing else was stored
    assert _scored(sweep.out, done) == 0
    sweep.write_plan()  # the scoring jobs of the rerun run at once
    log = sweep.root / "second-server-requests.jsonl"
    sweep.hold(held, log=log)
    proc = sweep.start()
    server = sweep.server(held)
    server.wait_held(4)
    server.release()
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output + sweep.logs()
    assert sweep.counts(held) == (TOTAL, TOTAL)
    # Everything the second server received, to its end: the four uncommitted requests once each, none of
    # the two committed ones (not even after the others).
    resent = [json.loads(line)["messages"] for line in log.read_text().splitlines()]
    assert len(resent) == 4 and not [m for m in resent if m in committed], resent
    assert len({json.dumps(m) for m in resent + committed}) == TOTAL
    subs = sweep.submitted()
    assert len(subs[held]) == 2 and len(subs[done]) == 1, subs  # only the cancelled model was resubmitted
    assert f"{done}: generated by an earlier job; submitted its scoring job" in output
    assert {m: len(ids) for m, ids in sweep.submitted(scoring=True).items()} == {held: 2, done: 2}
    assert _scored(sweep.out, done) == TOTAL == _scored(sweep.out, held)
    summary = json.loads((sweep.out / "sweep-summary.json").read_text())
    assert {r["model"]: r["status"] for r in summary["results"]} == {held: "done", done: "done"}


def test_job_at_its_time_limit_commits_and_is_resubmitted(sweep: Sweep) -> None:
    model = SMALL_A
    sweep.models = [model]
    sweep.write_plan()
    sweep.hold(model)
    proc = sweep.start()
    server = sweep.server(model)
    server.wait_held(4)
    server.release(3)
    wait_for("three committed answers", lambda: sweep.counts(model)[0] == 3)
    (job_id,) = sweep.submitted()[model]
    # Bring the limit near (at least 40 s ahead): Slurm sends the job's --signal=B:TERM@30 warning as it
    # would at any limit, and the job must commit and stop before the limit itself.
    elapsed = parse_time(sweep.cluster.run("squeue", "-h", "-j", job_id, "-o", "%M").stdout.strip())
    minutes = elapsed // 60 + (1 if elapsed % 60 < 20 else 2)
    sweep.cluster.run("scontrol", "update", f"JobId={job_id}", f"TimeLimit={minutes}")
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 1, output + sweep.logs()
    # The warning came before the limit: the job ended on its own (medsweep stopped, exit 130), not killed
    # at the limit. Without `--signal=B:TERM@grace` Slurm's SIGTERM at the limit stops medsweep just as
    # cleanly, and only the job's state tells the two apart: TIMEOUT.
    job = sweep.cluster.run("scontrol", "show", "job", "-o", job_id).stdout
    state = next(f for f in job.split() if f.startswith("JobState=")).removeprefix("JobState=")
    assert state != "TIMEOUT", job
    assert state == "FAILED" and "ExitCode=130:0" in job, job
    summary = json.loads((sweep.out / "sweep-summary.json").read_text())
    (row,) = summary["results"]
    assert row["status"] == "incomplete" and "rerun the plan" in row["error"], row
    assert sweep.counts(model) == (3, TOTAL)  # the answers before the warning were committed
    events = [e["event"] for e in Journal(job_dir(sweep.out, model)).events()]
    assert events[-1] == "model_done" and "server_stopped" in events  # a clean stop, server included
    sweep.hold()
    again = sweep.medsweep("sweep", "--plan", str(sweep.plan))
    assert again.returncode == 0, again.stderr + sweep.logs()
    assert len(sweep.submitted()[model]) == 2
    assert sweep.counts(model) == (TOTAL, TOTAL)


def test_a_partition_that_does_not_exist_submits_nothing(sweep: Sweep) -> None:
    sweep.write_plan()
    sweep.plan.write_text(sweep.plan.read_text().replace('partition = "debug"', 'partition = "nope"'))
    result = sweep.medsweep("sweep", "--plan", str(sweep.plan))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: sbatch refused") and "invalid partition" in line.lower(), line
    assert sweep.submitted() == {} and sweep.cluster.jobs() == []


def test_sbatch_not_found_is_one_line(sweep: Sweep) -> None:
    sweep.write_plan()
    sweep.env["PATH"] = str(Path(sys.executable).parent)  # no Slurm commands
    result = sweep.medsweep("sweep", "--plan", str(sweep.plan))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: sbatch not found on PATH") or line.startswith("error: squeue not found"), (
        line
    )


def test_more_gpus_than_the_clusters_nodes_have_submits_nothing(sweep: Sweep) -> None:
    # The plan claims 8-GPU nodes; the cluster's node has 4: sbatch --test-only says so before any job exists.
    sweep.write_plan(gpus={SMALL_A: 8})
    sweep.plan.write_text(sweep.plan.read_text().replace("gpus_per_node = 4", "gpus_per_node = 8"))
    result = sweep.medsweep("sweep", "--plan", str(sweep.plan))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: sbatch refused {SMALL_A}.sbatch") and "not available" in line, line
    assert sweep.submitted() == {} and sweep.cluster.jobs() == []


def test_a_sweep_from_a_folder_with_spaces_and_a_hash_runs_where_it_should(sweep: Sweep) -> None:
    # The real sbatch reads the quoted --chdir and --output (unquoted, it split them at the space and cut
    # them at the `#`): the job runs in that folder and its log lands in OUT/logs there.
    # The job is submitted held (--hold) and released by the test once Slurm's clock has passed its submit
    # second: its pending time is the model's queued_s, exactly Slurm's StartTime - SubmitTime.
    room = sweep.root / "my runs #2"
    room.mkdir()
    sweep.root, sweep.models = room, [SMALL_A]
    sweep.write_plan(slurm='extra_sbatch = ["--hold"]')
    proc = sweep.start()
    wait_for("the job to be submitted", lambda: bool(sweep.submitted().get(SMALL_A)))
    (job_id,) = sweep.submitted()[SMALL_A]
    submitted = _job_field(sweep.cluster, job_id, "SubmitTime")
    assert _job_field(sweep.cluster, job_id, "Reason") == "JobHeldUser"
    wait_for("a second past the submission", lambda: time.time() >= submitted.timestamp() + 1)
    sweep.cluster.run("scontrol", "release", job_id)
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output + sweep.logs()
    assert (room / "out" / "logs" / f"{SMALL_A}.slurm-{job_id}.out").is_file()
    assert sweep.counts(SMALL_A) == (TOTAL, TOTAL)
    queued = (_job_field(sweep.cluster, job_id, "StartTime") - submitted).total_seconds()
    assert queued >= 1
    (row,) = json.loads((sweep.out / "sweep-summary.json").read_text())["results"]
    timeline = row["timeline"]
    # The GPU job's wait, and the scoring job's after the GPU job ended (each job journals its own).
    gpu, scoring = [e for e in Journal(job_dir(sweep.out, SMALL_A)).events() if e["event"] == "job_started"]
    assert gpu["job_id"] == job_id and gpu["queued_s"] == queued, gpu
    assert scoring["job_id"] == sweep.submitted(scoring=True)[SMALL_A][0], scoring
    assert timeline["queued_s"] == round(queued + scoring["queued_s"], 1), timeline
    parts = sum(v for k, v in timeline.items() if k != "idle_fraction")
    assert round(parts, 1) == row["wall_s"], timeline  # the waits are part of the model's wall


def _scored(out: Path, model: str) -> int:
    """Score rows in the model's job store."""
    with sqlite3.connect(job_dir(out, model) / "medsweep.sqlite") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0])


def _asks_gpus(cluster: SlurmCluster, job_id: str) -> bool:
    """The job asked for GPUs (`scontrol show job`: TresPerJob=gres:gpu:N, or gres/gpu in its TRES)."""
    return re.search(r"gres[:/]gpu", cluster.run("scontrol", "show", "job", "-o", job_id).stdout) is not None


def _job_field(cluster: SlurmCluster, job_id: str, name: str) -> Any:
    """A field of `scontrol show job` (times as datetimes, in Slurm's local time)."""
    job = cluster.run("scontrol", "show", "job", "-o", job_id).stdout
    value = next(f for f in job.split() if f.startswith(f"{name}=")).removeprefix(f"{name}=")
    return datetime.fromisoformat(value) if name.endswith("Time") else value
