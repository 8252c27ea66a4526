"""The end-of-sweep summary: one row per model, printed as a rich table and written as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import orjson
from rich.console import Console
from rich.table import Table

from pipeline.failures import is_transient
from pipeline.files import write_private
from pipeline.store.database import Store, db_path
from pipeline.sweep.timeline import Timeline

SUMMARY_NAME = "sweep-summary.json"
Status = Literal["done", "incomplete", "failed", "skipped", "interrupted"]
STATUSES: frozenset[str] = frozenset(get_args(Status))


@dataclass(frozen=True, slots=True)
class ModelStats:
    """What the store holds for one model (all runs, so a resumed model counts its earlier results)."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    failed_by_class: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def pending(self) -> int:
        return max(self.total - self.succeeded - self.failed, 0)

    @property
    def retryable(self) -> int:
        """Failures a rerun may fix (the server was down or overloaded; ``FailureClass.transient``)."""
        return sum(n for cls, n in self.failed_by_class.items() if is_transient(cls))

    def count(self, *classes: str) -> int:
        return sum(self.failed_by_class.get(c, 0) for c in classes)


@dataclass
class ModelReport:
    model: str
    gpus: list[int]
    port: int
    status: Status = "failed"
    identity: str = ""
    restarts: int = 0
    eval_passes: int = 0
    sent: int = 0
    wall_s: float = 0.0
    error: str = ""
    stats: ModelStats = field(default_factory=ModelStats)
    timeline: Timeline | None = None  # where wall_s went (None: the model's turn never came)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stats"]["pending"] = self.stats.pending
        data["timeline"] = self.timeline.as_json() if self.timeline is not None else None
        return data


def model_stats(out: Path, identity: str, variant: str, tasks: tuple[str, ...] = ()) -> ModelStats:
    """Counts and tokens of ``identity`` in the store under ``out`` (only ``tasks`` when given)."""
    if not identity or not db_path(out).exists():
        return ModelStats()
    store = Store.open_readonly(out)
    try:
        counts = store.tally(identity, variant, tasks)
        prompt_tokens, completion_tokens = store.token_totals(identity, variant, tasks)
    finally:
        store.close()
    return ModelStats(
        counts.total,
        counts.succeeded,
        counts.failed,
        counts.failed_by_class,
        prompt_tokens,
        completion_tokens,
    )


def write_summary(out: Path, reports: list[ModelReport], wall_s: float) -> Path:
    path = out / SUMMARY_NAME
    totals: dict[str, int] = {}
    for r in reports:
        totals[r.status] = totals.get(r.status, 0) + 1
    data = {"wall_s": round(wall_s, 1), "models": totals, "results": [r.as_json() for r in reports]}
    return write_private(path, orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n", atomic=True)


def print_summary(reports: list[ModelReport], wall_s: float, console: Console) -> None:
    table = Table(title=f"sweep: {_counts_line(reports)} in {_fmt_time(wall_s)}", title_justify="left")
    columns = (
        "model",
        "GPUs",
        "status",
        "restarts",
        "ok/total",
        "failed",
        "tokens in/out",
        "time",
        "timeline",
        "note",
    )
    for col in columns:
        table.add_column(
            col,
            justify="right" if col in ("restarts", "ok/total", "time") else "left",
            no_wrap=col in ("model", "status"),
        )
    for r in reports:
        s = r.stats
        failed = ", ".join(f"{k} {v}" for k, v in sorted(s.failed_by_class.items())) or "0"
        table.add_row(
            r.model,
            ",".join(map(str, r.gpus)) or "-",
            _styled(r.status),
            str(r.restarts),
            f"{s.succeeded}/{s.total}",
            failed,
            f"{s.prompt_tokens:,}/{s.completion_tokens:,}",
            _fmt_time(r.wall_s),
            timeline_text(r.timeline),
            r.error,
        )
    console.print(table)


def timeline_text(t: Timeline | None) -> str:
    """``start 1m02s, busy 5m10s, tail 0m40s, scoring 0m12s, stop 0m03s, idle 23%`` (queued only when >0)."""
    if t is None:
        return "-"
    parts = [("queued", t.queued_s)] if t.queued_s else []
    parts += [("start", t.start_s), ("busy", t.busy_s), ("tail", t.tail_s), ("scoring", t.scoring_s),
              ("stop", t.stop_s)]  # fmt: skip
    return ", ".join(f"{name} {_fmt_time(s)}" for name, s in parts) + f", idle {t.idle_fraction:.0%}"


def _counts_line(reports: list[ModelReport]) -> str:
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _styled(status: str) -> str:
    colour = {"done": "green", "skipped": "green", "incomplete": "yellow"}.get(status, "red")
    return f"[{colour}]{status}[/{colour}]"


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
