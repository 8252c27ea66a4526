"""What a sweep will cost, before it runs: each model's load and generation time from the cost model in
``costs.toml`` (figures and their sources there), and the makespan from the sweep's own packing (``order``
and ``allocate``, as the runner calls them) in simulated time. Estimates, not measurements.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.config import Variant
from pipeline.errors import ConfigError
from pipeline.sweep.packing import Need, allocate, check_fits, order
from pipeline.sweep.plan import PlannedModel, SweepPlan, SweepSettings, riders_of

if TYPE_CHECKING:
    from rich.console import Console

COSTS_PATH = Path(__file__).with_name("costs.toml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerCost(_Strict):
    """One serving class: load time and aggregate throughput at full batch."""

    name: str
    max_params_b: float = Field(gt=0)
    load_s: float = Field(ge=0)
    prefill_tps: float = Field(gt=0)
    decode_tps: float = Field(gt=0)
    source: str = Field(min_length=1)


class TaskCost(_Strict):
    """One task as run in full: its request count and mean prompt and answer lengths (tokens)."""

    requests: int = Field(ge=0)
    prompt_tokens: float = Field(ge=0)
    output_tokens: float = Field(ge=0)
    bench_marker: str = Field(min_length=1)
    source: str = Field(min_length=1)


class Costs(_Strict):
    server: tuple[ServerCost, ...] = Field(min_length=1)
    task: dict[str, TaskCost]

    def server_for(self, params_b: float) -> ServerCost:
        """The first class (by max_params_b) that holds a model of ``params_b`` billion parameters."""
        for cls in sorted(self.server, key=lambda c: c.max_params_b):
            if params_b <= cls.max_params_b:
                return cls
        raise ConfigError(
            f"{COSTS_PATH}: no serving class holds a {params_b:g}B model: add a [[server]] with a larger "
            "max_params_b"
        )


def load_costs(path: Path = COSTS_PATH) -> Costs:
    try:
        return Costs.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ConfigError(f"cost model {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: field {field!r}: {first['msg']}") from None


def request_seconds(server: ServerCost, task: TaskCost) -> float:
    """One request's share of its server's time at full batch (seconds)."""
    return task.prompt_tokens / server.prefill_tps + task.output_tokens / server.decode_tps


def task_costs(
    costs: Costs,
    tasks: Sequence[str],
    data_dir: Path | None,
    variant: Variant = "paper",
    limit: int | None = None,
) -> dict[str, TaskCost]:
    """Per task: the data's own request count and mean prompt length where ``data_dir`` holds its file,
    else the cost model's figures for the full task; with ``limit``, of the task's first ``limit`` items
    (a LongHealth question is several requests: counted where the data is, else taken as one)."""
    from pipeline.tasks import get_task

    out: dict[str, TaskCost] = {}
    for name in tasks:
        if name not in costs.task:
            raise ConfigError(
                f"{COSTS_PATH}: no [task.{name}] figures: add them to estimate a plan with {name}"
            )
        cost = costs.task[name]
        if data_dir is not None and get_task(name).data_path(data_dir).exists():
            count, mean_prompt = asyncio.run(_measure(name, data_dir, variant, limit))
            cost = cost.model_copy(
                update={"requests": count, "prompt_tokens": mean_prompt,
                        "source": f"counted in {get_task(name).data_path(data_dir)}"}
            )  # fmt: skip
        elif limit is not None:
            cost = cost.model_copy(update={"requests": min(cost.requests, limit)})
        out[name] = cost
    return out


async def _measure(name: str, data_dir: Path, variant: Variant, limit: int | None) -> tuple[int, float]:
    """(requests, mean prompt tokens) of a task's data, rendered as a chat model's requests are; tokens
    estimated from characters (no tokenizer here)."""
    from pipeline.evaluation.tokens import EstimateCounter
    from pipeline.tasks import get_task
    from pipeline.tasks.base import RenderContext

    counter = EstimateCounter()
    ctx = RenderContext(chat_mode="chat", max_model_len=8192, counter=counter, variant=variant, limit=limit)
    count, tokens = 0, 0
    async for request in get_task(name).requests(data_dir, ctx):
        count += 1
        text = "".join(m["content"] for m in request.messages or ()) + (request.prompt or "")
        tokens += await counter.count(text)
    return count, tokens / count if count else 0.0


@dataclass(frozen=True, slots=True)
class ModelEstimate:
    """One server of the plan (with the LoRA entries riding on it): where and how long."""

    name: str
    gpus: int
    server_class: str
    load_s: float
    generate_s: float
    start_s: float = 0.0  # when the packing starts it (simulated seconds since the sweep's start)

    @property
    def wall_s(self) -> float:
        return self.load_s + self.generate_s

    @property
    def gpu_hours(self) -> float:
        return self.wall_s * max(self.gpus, 1) / 3600


@dataclass(frozen=True, slots=True)
class StudyEstimate:
    models: tuple[ModelEstimate, ...]
    inventory: int  # GPUs (slots); 0 for a Slurm plan (each model its own job)
    makespan_s: float

    @property
    def gpu_hours(self) -> float:
        return sum(m.gpu_hours for m in self.models)

    @property
    def lower_bound_s(self) -> float:
        """Busy GPU-time over the GPUs: no packing finishes sooner (a Slurm plan: the longest job)."""
        if not self.inventory:
            return self.makespan_s
        return sum(m.wall_s * max(m.gpus, 1) for m in self.models) / self.inventory


def estimate(
    settings: SweepSettings, models: list[PlannedModel], costs: Costs, data_dir: Path | None
) -> StudyEstimate:
    """The plan's servers, each with its load and generation time, started where the sweep's packing
    starts them; ``data_dir`` None: the cost model's figures for every task."""
    from pipeline.sweep.runner import slots_for
    from pipeline.tasks import task_names

    if settings.on_device == "cpu":
        raise ConfigError(f"{COSTS_PATH} has figures for GPU servers only; --estimate needs a GPU plan")
    hosts, riders = riders_of(models)
    per_task: dict[tuple[tuple[str, ...], int | None], dict[str, TaskCost]] = {}
    servers: list[ModelEstimate] = []
    for host in hosts:
        cls = costs.server_for(host.server.params_b)
        generate = 0.0
        for model in (host, *riders.get(host.name, ())):
            key = (model.tasks or tuple(task_names()), model.limit)
            if key not in per_task:
                per_task[key] = task_costs(costs, key[0], data_dir, settings.variant, model.limit)
            for task in per_task[key].values():
                generate += task.requests * request_seconds(cls, task)
        need = slots_for(settings, host)[1]
        servers.append(ModelEstimate(host.name, need, cls.name, cls.load_s, generate))
    if settings.scheduler == "slurm":  # one job per model, all queued at once: no packing here
        return StudyEstimate(tuple(servers), 0, max((s.wall_s for s in servers), default=0.0))
    return simulate(servers, list(settings.gpus))


def simulate(servers: list[ModelEstimate], inventory: list[int]) -> StudyEstimate:
    """Start times as the runner's loop gives them: whenever GPUs free up, every waiting server (largest
    first, plan order among equals) that ``allocate`` fits starts; a server holds its GPUs for its wall."""
    needs = [Need(s.name, s.gpus) for s in servers]
    check_fits(needs, inventory)
    by_name = {s.name: s for s in servers}
    queue = [by_name[n.name] for n in order(needs)]
    free, now = set(inventory), 0.0
    running: list[tuple[float, int, tuple[int, ...]]] = []  # (end, tie-break, GPUs)
    started: dict[str, float] = {}
    while queue or running:
        for server in list(queue):
            got = allocate(server.gpus, free, inventory)
            if got is None:
                continue
            free -= set(got)
            queue.remove(server)
            started[server.name] = now
            heapq.heappush(running, (now + server.wall_s, len(started), got))
        end, _, got = heapq.heappop(running)
        now = end
        free |= set(got)
        while running and running[0][0] <= now:  # everything that ends at the same moment
            free |= set(heapq.heappop(running)[2])
    placed = tuple(
        ModelEstimate(s.name, s.gpus, s.server_class, s.load_s, s.generate_s, started[s.name])
        for s in servers
    )
    return StudyEstimate(placed, len(inventory), max((m.start_s + m.wall_s for m in placed), default=0.0))


def print_estimate(plan: SweepPlan, path: Path, console: Console) -> int:
    """`medsweep sweep --plan P --estimate`: the table of servers, the tasks' figures, the totals."""
    from rich import box
    from rich.table import Table

    from pipeline.sweep.plan import resolve_models
    from pipeline.tasks import task_names

    settings = plan.sweep
    models = resolve_models(plan, path)
    costs = load_costs()
    study = estimate(settings, models, costs, settings.data_dir)
    tasks = sorted({t for m in models for t in (m.tasks or tuple(task_names()))}, key=list(costs.task).index)
    console.print(f"# estimate for {path}: {COSTS_PATH} (each figure's source is there); estimates, not "
                  "measurements", highlight=False, soft_wrap=True)  # fmt: skip
    for name, task in task_costs(costs, tasks, settings.data_dir, settings.variant).items():
        where = task.source if task.source.startswith("counted in ") else "costs.toml: the full task"
        console.print(
            f"# {name}: {task.requests:,} requests x {task.prompt_tokens:,.0f} prompt + "
            f"{task.output_tokens:,.0f} output tokens ({where})",
            highlight=False,
            soft_wrap=True,
        )
    used = {m.server_class for m in study.models}
    for cls in costs.server:
        if cls.name in used:
            console.print(
                f"# class {cls.name}: load {_hms(cls.load_s)}, {cls.prefill_tps:,.0f} prompt and "
                f"{cls.decode_tps:,.0f} output tokens/s",
                highlight=False,
                soft_wrap=True,
            )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for col in ("model", "GPUs", "starts", "load", "generate", "wall", "GPU-h"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for m in sorted(study.models, key=lambda m: (m.start_s, m.name)):
        table.add_row(m.name, str(m.gpus), _hm(m.start_s), _hm(m.load_s), _hm(m.generate_s),
                      _hm(m.wall_s), f"{m.gpu_hours:.1f}")  # fmt: skip
    console.print(table)
    where = "each model its own Slurm job" if not study.inventory else f"{study.inventory} GPUs"
    console.print(
        f"makespan {_hms(study.makespan_s)} on {where} (lower bound {_hms(study.lower_bound_s)}); "
        f"{study.gpu_hours:.1f} GPU-hours",
        highlight=False,
    )
    console.print(
        "not in the estimate: vLLM's prefix cache (LongHealth's repeats share documents: lower), the last "
        "requests draining, scoring, stops, restarts (higher); ask for a margin, e.g. "
        f"--time={_hms(study.makespan_s * 1.25)} (+25 %)",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _hms(seconds: float) -> str:
    m, s = divmod(math.ceil(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _hm(seconds: float) -> str:
    """``1h05m`` (minutes rounded up): the table's columns."""
    h, m = divmod(math.ceil(seconds / 60), 60)
    return f"{h}h{m:02d}m"
