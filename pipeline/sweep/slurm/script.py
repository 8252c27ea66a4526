"""The sbatch script of one model's job. Pure: the same plan gives the same text (tests assert it).

One node: ask for the GPUs, run the setup lines, then ``exec`` medsweep's job entry, so the batch shell
*is* medsweep and the ``--signal=B:TERM@grace`` warning before the time limit reaches it directly.
Several nodes: vLLM's documented layout for Slurm: a Ray head on the first node and a Ray worker on each
other node, each by ``srun`` holding that node's GPUs; once Ray sees every GPU, medsweep starts
``vllm serve`` on the head with TP inside a node and PP across nodes (``--distributed-executor-backend
ray``; ``RAY_ADDRESS`` points it at this cluster).
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.sweep.plan import PlannedModel, SweepPlan
from pipeline.sweep.slurm.jobs import JOB_PREFIX
from pipeline.sweep.slurm.settings import default_time, format_time, parse_time
from pipeline.sweep.slurm.shapes import JobShape

RAY_PORT = 6379
# Inside a job: where the Ray cluster of a multi-node job answers (set by the script, read by job.py).
RAY_ADDRESS_ENV = "RAY_ADDRESS"
# What an #SBATCH argument may hold unquoted (no space, quote, backslash, or `#`: it starts a comment).
_PLAIN = re.compile(r"[\w./:%@+=,-]+")


SCORING_SUFFIX = ".score"  # the scoring job's name: the GPU job's and this (no model name ends so)


def job_name(sweep: str, model: str, *, scoring: bool = False) -> str:
    return f"{JOB_PREFIX}-{sweep}-{model}" + (SCORING_SUFFIX if scoring else "")


def job_time(plan: SweepPlan, model: PlannedModel) -> int:
    """The model's time limit in seconds: its own ``time``, else ``[slurm] time``, else from its size."""
    text = model.entry.time or plan.slurm.time or default_time(model.server.params_b)
    seconds = parse_time(text)
    if seconds <= plan.slurm.grace:
        where = f"models[{model.index}].time" if model.entry.time else "slurm.time"
        raise ConfigError(
            f"field {where!r}: the time limit {text!r} is not longer than slurm.grace "
            f"({plan.slurm.grace} s), the warning medsweep gets before it; give more time or a smaller grace"
        )
    return seconds


@dataclass(frozen=True)
class JobFiles:
    """Where one job's files go (absolute: the job may start in another directory on another host)."""

    plan: Path  # the plan file the job reads
    workdir: Path  # the directory `medsweep sweep` ran in: relative plan paths resolve against it
    logs: Path  # OUT/logs

    def log(self, model: str, *, scoring: bool = False) -> Path:
        return self.logs / f"{model}.{'score' if scoring else 'slurm'}-%j.out"


def one_line(value: str) -> str:
    """``value``, unless it holds a line break, which would end a header line of the script: ConfigError."""
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{value!r} holds a line break, which an sbatch script cannot carry: rename it")
    return value


def sbatch_quote(value: str) -> str:
    """``value`` as one argument of an ``#SBATCH`` line: as it is when plain, else double-quoted with ``\\``
    and ``"`` escaped (sbatch's own parser: a space or ``#`` inside quotes is kept)."""
    if _PLAIN.fullmatch(one_line(value)):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def medsweep_argv(plan: Path, model: str, *, scoring: bool = False) -> list[str]:
    """The job's command: this interpreter's medsweep (the venv must be visible on the compute nodes)."""
    argv = [sys.executable, "-m", "pipeline", "sweep", "--plan", str(plan), "--job", model]
    return [*argv, "--score"] if scoring else argv


def render(plan: SweepPlan, sweep: str, model: PlannedModel, shape: JobShape, files: JobFiles) -> str:
    slurm = plan.slurm
    seconds = job_time(plan, model)
    head = [
        "#!/bin/bash",
        f"# medsweep: {model.name} of sweep {sweep!r}; written by "
        f"`medsweep sweep --plan {shlex.quote(one_line(str(files.plan)))}`",
        f"#SBATCH --job-name={sbatch_quote(job_name(sweep, model.name))}",
        f"#SBATCH --output={sbatch_quote(str(files.log(model.name)))}",
        f"#SBATCH --chdir={sbatch_quote(str(files.workdir))}",
        f"#SBATCH --time={format_time(seconds)}",
        # B: only the batch shell (medsweep, by exec) gets the warning: it stops the eval, which commits.
        f"#SBATCH --signal=B:TERM@{slurm.grace}",
        f"#SBATCH --nodes={shape.nodes}",
        "#SBATCH --ntasks-per-node=1",
        # medsweep resubmits a job that did not finish (up to max_restarts); Slurm must not rerun it too.
        "#SBATCH --no-requeue",
    ]
    if shape.gpus_per_node:
        head.append(
            f"#SBATCH --gpus={shape.gpus}" if not shape.multinode else f"#SBATCH --gpus-per-node={shape.tp}"
        )
    for key in ("partition", "account", "qos"):
        value = getattr(slurm, key)
        if value:
            head.append(f"#SBATCH --{key}={sbatch_quote(value)}")
    head += [f"#SBATCH {option}" for option in slurm.extra_sbatch]
    body = ["", "set -e"]
    if slurm.setup:
        body += ["# [slurm] setup", *slurm.setup]
    if shape.multinode:
        body += ["", *_ray_cluster(shape, plan.sweep.startup_timeout)]
    body += ["", shlex.join(["exec", *medsweep_argv(files.plan, model.name)])]
    return "\n".join(head + body) + "\n"


def render_scoring(plan: SweepPlan, sweep: str, model: PlannedModel, files: JobFiles, gpus: int = 0) -> str:
    """The model's scoring job: CPU only (no ``--gpus`` unless ``gpus``: job.scoring_gpus), submitted with
    ``--dependency=afterany:<GPU job>``, so it starts once the GPU job has ended, whichever way (it scores
    only what was generated)."""
    slurm = plan.slurm
    head = [
        "#!/bin/bash",
        f"# medsweep: scoring of {model.name} of sweep {sweep!r}, after its GPU job; written by "
        f"`medsweep sweep --plan {shlex.quote(one_line(str(files.plan)))}`",
        f"#SBATCH --job-name={sbatch_quote(job_name(sweep, model.name, scoring=True))}",
        f"#SBATCH --output={sbatch_quote(str(files.log(model.name, scoring=True)))}",
        f"#SBATCH --chdir={sbatch_quote(str(files.workdir))}",
        f"#SBATCH --time={format_time(parse_time(slurm.scoring_time))}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --no-requeue",
    ]
    if gpus:
        head.append(f"#SBATCH --gpus={gpus}")
    options = {"partition": slurm.scoring_partition or slurm.partition, "account": slurm.account,
               "qos": slurm.qos}  # fmt: skip
    head += [f"#SBATCH --{key}={sbatch_quote(value)}" for key, value in options.items() if value]
    head += [f"#SBATCH {option}" for option in slurm.scoring_extra_sbatch]
    body = ["", "set -e"]
    if slurm.setup:
        body += ["# [slurm] setup", *slurm.setup]
    body += ["", shlex.join(["exec", *medsweep_argv(files.plan, model.name, scoring=True)])]
    return "\n".join(head + body) + "\n"


def _ray_cluster(shape: JobShape, timeout: float) -> list[str]:
    """Start Ray on every node of the job and wait until it sees all GPUs (vLLM's multi-node layout)."""
    step = f"srun --nodes=1 --ntasks=1 --gres=gpu:{shape.tp}"
    # A node's address for Ray and vLLM (VLLM_HOST_IP): its first address from `hostname -I`.
    ip = "$(hostname -I | cut -d' ' -f1)"
    worker = (
        f'ip={ip}; VLLM_HOST_IP=$ip exec ray start --block --address="$RAY_ADDRESS" '
        f"--node-ip-address=$ip --num-gpus={shape.tp}"
    )
    return [
        f"# {shape.nodes} nodes x {shape.tp} GPUs: Ray head on this (the first) node, a worker on the others",
        'mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        f"head_ip={ip}",
        f'export {RAY_ADDRESS_ENV}="$head_ip:{RAY_PORT}" VLLM_HOST_IP="$head_ip"',
        f'{step} -w "${{nodes[0]}}" ray start --block --head --node-ip-address="$head_ip" '
        f"--port={RAY_PORT} --num-gpus={shape.tp} &",
        'for node in "${nodes[@]:1}"; do',
        f'  {step} -w "$node" bash -c {shlex.quote(worker.replace(chr(39), chr(34)))} &',
        "done",
        f"deadline=$((SECONDS + {int(timeout)}))",
        f'until ray status --address="$RAY_ADDRESS" 2>/dev/null | grep -Eq "/{shape.gpus}\\.0 GPU"; do',
        "  if (( SECONDS > deadline )); then",
        f'    echo "medsweep: Ray did not see {shape.gpus} GPUs within {int(timeout)} s" >&2; exit 1',
        "  fi",
        "  sleep 5",
        "done",
    ]
