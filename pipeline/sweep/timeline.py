"""Where a model's wall time in a sweep went: one ``Timeline`` per model, whose parts add up to its wall.

The marks are wall-clock times (``time.time()``: the eval runs in a child process), read from the eval's
passes (``EvalDone``) and the sweep around them. When the model is its server's last and its scoring needs
no GPU, the sweep stops the server and hands the GPUs on as soon as generation is over, and scores after:

    turn began ─ start ─ first request sent ─ busy ─ first worker out of work ─ tail ─ last answer stored
      ─ stop ─ GPUs released ─ scoring ─ turn ended (the eval process exited)

Otherwise (a LoRA rider with another model after it on the server, scoring that runs on the GPUs) the
scoring happens on the held GPUs and the stop comes last:

    ... ─ last answer stored ─ scoring ─ scored ─ stop ─ turn ended (server stopped, when the last model)

``start_s`` is launch to the first request: image, weights, warm-up, the health wait and the eval process's
own start (and, for a pass after a restart, the server coming back). ``busy_s``: the server had all the work
the client could give it (in-flight at its limit or requests queued). ``tail_s``: no request left to send,
the last ones draining with in-flight below the limit. ``stop_s``: the GPUs held after the last answer
without generating: the server stopping (released first), or the eval process exiting and the server
stopping (scored first). ``scoring_s``: scoring the answers; released first, it is everything from the
release to the end of the turn (scoring began at the last answer, beside the stop: the part that overlapped
the stop is in ``stop_s``, which held the GPUs). A pass that failed before sending is part of the next gap;
a model with no pass that ran to its end (its server never came up) spent all its turn in ``start_s``.
``queued_s`` is the Slurm pending time (0 locally) and is part of ``wall_s``; ``idle_fraction`` is the share
of the GPU allocation in which the GPUs generated nothing: everything but ``busy_s`` and ``tail_s``, over
``wall_s - queued_s``, less ``scoring_s`` when scoring came after the release (the GPUs were no longer held).
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
    # The part of the turn after the GPUs were released (the scoring that came after it): not GPU time.
    # Not in the JSON (the fields are the contract; idle_fraction reflects it); 0 when read back.
    released_s: float = 0.0

    @property
    def wall_s(self) -> float:
        return round(
            self.queued_s + self.start_s + self.busy_s + self.tail_s + self.scoring_s + self.stop_s, 1
        )

    @property
    def allocated_s(self) -> float:
        """The GPU allocation: the wall less the Slurm wait and any scoring after the release."""
        return round(self.wall_s - self.queued_s - self.released_s, 1)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["released_s"]
        return data


def build_timeline(
    began: float,
    passes: list[PassMarks],
    ended: float,
    queued_s: float = 0.0,
    released: float | None = None,
) -> Timeline:
    """The timeline of a model whose turn ran from ``began`` to ``ended`` with these passes, in order;
    ``released``: when its GPUs were handed on before the last pass's scoring ended (None: they were held
    to the end of the turn).

    Each part is rounded to 0.1 s and the last part (``stop_s``, or ``scoring_s`` when released first) takes
    the rounding, so that the parts add up to ``round(queued_s + ended - began, 1)`` exactly."""
    cursor = began
    start = busy = tail = scoring = stop = 0.0
    generated = began
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
    early = bool(passes) and released is not None and released < cursor
    if early:  # the last pass's scoring came after the release: the stop sits between generating and it
        assert released is not None
        at = min(max(released, generated), ended)
        stop = at - generated
    wall = round(queued_s + max(ended - began, 0.0), 1)
    queued, start_s, busy_s, tail_s = (round(x, 1) for x in (queued_s, start, busy, tail))
    if early:
        stop_s = round(stop, 1)
        scoring_s = round(max(wall - queued - start_s - busy_s - tail_s - stop_s, 0.0), 1)
        allocated = wall - queued - scoring_s
    else:
        scoring_s = round(scoring, 1)
        stop_s = round(max(wall - queued - start_s - busy_s - tail_s - scoring_s, 0.0), 1)
        allocated = wall - queued
    idle = (allocated - busy_s - tail_s) / allocated if allocated > 0 else 0.0
    idle_fraction = round(min(max(idle, 0.0), 1.0), 3)
    released_s = scoring_s if early else 0.0
    return Timeline(queued, start_s, busy_s, tail_s, scoring_s, stop_s, idle_fraction, released_s)
