"""Where a model's wall time in a sweep went: one ``Timeline`` per model, whose parts add up to its wall.

The marks are wall-clock times (``time.time()``: the eval runs in a child process), read from the eval's
passes (``EvalDone``) and the sweep around them:

    turn began ─ start ─ first request sent ─ busy ─ first worker out of work ─ tail ─ last answer stored
      ─ scoring ─ scored ─ (next pass: its start again ...) ─ stop ─ turn ended (server stopped, last model)

``start_s`` is launch to the first request: image, weights, warm-up, the health wait and the eval process's
own start (and, for a pass after a restart, the server coming back). ``busy_s``: the server had all the work
the client could give it (in-flight at its limit or requests queued). ``tail_s``: no request left to send,
the last ones draining with in-flight below the limit. ``stop_s``: from the last pass's scoring to the
model's end (the eval process exiting; the server stopping when it is the server's last model). A pass that
failed before sending is part of the next gap; a model with no pass that ran to its end (its server never
came up) spent all its turn in ``start_s``. ``queued_s`` is the Slurm pending time (0 locally) and is
part of ``wall_s``; ``idle_fraction`` is the share of the GPU allocation (``wall_s - queued_s``) in which the
GPUs generated nothing: everything but ``busy_s`` and ``tail_s``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PassMarks:
    """One eval pass's marks (seconds since the epoch); None: the pass sent nothing / never ran dry."""

    first_sent_at: float | None
    tail_at: float | None
    generated_at: float
    scored_at: float


@dataclass(frozen=True, slots=True)
class Timeline:
    queued_s: float = 0.0
    start_s: float = 0.0
    busy_s: float = 0.0
    tail_s: float = 0.0
    scoring_s: float = 0.0
    stop_s: float = 0.0
    idle_fraction: float = 0.0

    @property
    def wall_s(self) -> float:
        return round(
            self.queued_s + self.start_s + self.busy_s + self.tail_s + self.scoring_s + self.stop_s, 1
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def build_timeline(began: float, passes: list[PassMarks], ended: float, queued_s: float = 0.0) -> Timeline:
    """The timeline of a model whose turn ran from ``began`` to ``ended`` with these passes, in order.

    Each part is rounded to 0.1 s and ``stop_s`` takes the rounding, so that the parts add up to
    ``round(queued_s + ended - began, 1)`` exactly."""
    cursor = began
    start = busy = tail = scoring = 0.0
    for p in passes:
        generated = min(max(p.generated_at, cursor), ended)
        sent = min(max(p.first_sent_at if p.first_sent_at is not None else generated, cursor), generated)
        dry = min(max(p.tail_at if p.tail_at is not None else generated, sent), generated)
        scored = min(max(p.scored_at, generated), ended)
        start += sent - cursor
        busy += dry - sent
        tail += generated - dry
        scoring += scored - generated
        cursor = scored
    if not passes:  # no pass ran to the end (the server never came up, the eval failed): all of it is start
        start, cursor = max(ended - began, 0.0), ended
    parts = [round(x, 1) for x in (queued_s, start, busy, tail, scoring)]
    wall = round(queued_s + max(ended - began, 0.0), 1)
    stop = round(max(wall - sum(parts), 0.0), 1)
    allocated = wall - parts[0]
    idle = (allocated - parts[2] - parts[3]) / allocated if allocated > 0 else 0.0
    queued, start_s, busy_s, tail_s, scoring_s = parts
    return Timeline(queued, start_s, busy_s, tail_s, scoring_s, stop, round(min(max(idle, 0.0), 1.0), 3))
