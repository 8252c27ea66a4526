"""The plan's ``[slurm]`` table and Slurm time strings.

Only what the table holds lives here (pydantic, strict); how a model becomes a job is in ``layout.py`` and
``script.py``. Field errors are worded for ``plan._describe``, which names the file and the field.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.models.registry import GPUS_PER_NODE

# sbatch --time formats: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
# "days-hours:minutes", "days-hours:minutes:seconds" (sbatch(1)).
_TIME = re.compile(
    r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$"
)
TIME_FORMATS = "MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS"  # noqa: E501
# sbatch options medsweep writes itself: set through their own keys, never through extra_sbatch.
OWN_OPTIONS = {
    "--job-name": "the job name is medsweep-<sweep>-<model>",
    "-J": "the job name is medsweep-<sweep>-<model>",
    "--time": "use [slurm] time or the model's time",
    "-t": "use [slurm] time or the model's time",
    "--gpus": "the GPU count comes from the registry or the model's gpus",
    "--gpus-per-node": "the GPU count comes from the registry or the model's gpus",
    "-G": "the GPU count comes from the registry or the model's gpus",
    "--nodes": "the node count follows from gpus_per_node and max_nodes",
    "-N": "the node count follows from gpus_per_node and max_nodes",
    "--signal": "use [slurm] grace",
    "--output": "the job log is OUT/logs/<model>.slurm-<jobid>.out",
    "-o": "the job log is OUT/logs/<model>.slurm-<jobid>.out",
    "--chdir": "the job runs in the directory medsweep sweep was started in",
    "--partition": "use [slurm] partition",
    "-p": "use [slurm] partition",
    "--account": "use [slurm] account",
    "-A": "use [slurm] account",
    "--qos": "use [slurm] qos",
    "-q": "use [slurm] qos",
}


# A partition, account or QOS name: printable, no whitespace (sbatch(1) names never hold any).
_NAME = re.compile(r"[^\s\x00-\x1f\x7f]+")


def parse_time(text: str) -> int:
    """Seconds of a Slurm time string; ValueError naming the accepted forms."""
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(f'{text!r} is not a Slurm time; use {TIME_FORMATS}, e.g. "12:00:00"')
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None}
    if "d" in g:
        seconds = g["d"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
    elif "c" in g:
        seconds = g["a"] * 3600 + g["b"] * 60 + g["c"]
    else:
        seconds = g["a"] * 60 + g.get("b", 0)
    if seconds <= 0:
        raise ValueError(f'{text!r} is no time at all; give the job a time limit, e.g. "12:00:00"')
    return seconds


def format_time(seconds: int) -> str:
    """``D-HH:MM:SS`` / ``HH:MM:SS``, the form sbatch accepts and squeue shows."""
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"


def default_time(params_b: float) -> str:
    """A model's time limit when the plan gives none, from its size: loading a 70B model takes minutes,
    and the six tasks at the paper's settings run for hours on it. A job that hits its limit commits
    and a rerun resubmits it, so a short guess costs a resubmission, not results."""
    hours = 4 if params_b <= 15 else 8 if params_b <= 50 else 16
    return format_time(hours * 3600)


def check_time(value: str | None) -> str | None:
    if value is not None:
        parse_time(value)
    return value


class SlurmSettings(BaseModel):
    """``[slurm]``: how each model's job is asked for (``scheduler = "slurm"`` in ``[sweep]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: str | None = Field(default=None, min_length=1)
    account: str | None = Field(default=None, min_length=1)
    qos: str | None = Field(default=None, min_length=1)
    time: str | None = None  # every model's limit; None: from each model's size (default_time)
    gpus_per_node: int = Field(default=GPUS_PER_NODE, ge=1, le=64)
    max_nodes: int = Field(default=1, ge=1, le=64, description="nodes one model's job may span")
    extra_sbatch: tuple[str, ...] = ()  # more sbatch options, one per entry: "--constraint=a100"
    setup: tuple[str, ...] = ()  # shell lines run first in the job: module loads, venv activation
    grace: int = Field(default=300, ge=30, le=3600, description="seconds between SIGTERM and the limit")
    poll_interval: float = Field(default=30.0, gt=0, description="seconds between squeue polls")
    # Each model's CPU-only scoring job, after its GPU job (docs/slurm.md): where, how long, what else.
    scoring_partition: str | None = Field(default=None, min_length=1)  # None: `partition`
    scoring_time: str = "02:00:00"
    scoring_extra_sbatch: tuple[str, ...] = ()  # e.g. "--mem=32G" (the UMLS linker is large)
    # GPUs of the scoring job. None: 1 where the model's tasks report a metric declared `gpu = true` that
    # can run here (BERTScore; pipeline/scoring/metrics.toml), else 0. A job with GPUs counts as GPU time.
    scoring_gpus: int | None = Field(default=None, ge=0, le=64)

    @field_validator("time", "scoring_time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return check_time(value)

    @field_validator("partition", "account", "qos", "scoring_partition")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        # Written into an #SBATCH line: a line break would end the header and run the rest as shell.
        if value is not None and not _NAME.fullmatch(value):
            what = "a line break" if any(c in value for c in "\r\n") else "a space or control character"
            raise ValueError(f'{value!r} holds {what}; give one Slurm name, e.g. "gpu"')
        return value

    @field_validator("extra_sbatch", "scoring_extra_sbatch")
    @classmethod
    def _extra(cls, lines: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for i, line in enumerate(lines):
            option = line.strip().removeprefix("#SBATCH").strip()
            if not option.startswith("-") or "\n" in option or "\r" in option:
                raise ValueError(
                    f'entry {i} ({line!r}) is not one sbatch option; write e.g. "--constraint=a100"'
                )
            name = re.split(r"[=\s]", option, maxsplit=1)[0]
            if name in OWN_OPTIONS:
                raise ValueError(f"entry {i} sets {name}, which medsweep writes itself: {OWN_OPTIONS[name]}")
            out.append(option)
        return tuple(out)

    @field_validator("setup")
    @classmethod
    def _setup(cls, lines: tuple[str, ...]) -> tuple[str, ...]:
        for i, line in enumerate(lines):
            if "\n" in line or "\r" in line:
                raise ValueError(f"entry {i} holds a line break; give one shell line per entry")
        return lines
