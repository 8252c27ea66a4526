"""Jobs for pipeline.sweep.children's tests: module-level, so that a spawned child can import them."""

from __future__ import annotations

import os
import sys
from multiprocessing.connection import Connection


def report(extra: str, conn: Connection) -> None:
    """Send what the child had imported before this job ran, its pid, and ``extra`` back."""
    conn.send({
        "pid": os.getpid(),
        "evaluation": "pipeline.evaluation.evaluate" in sys.modules,
        "torch": "torch" in sys.modules,
        "extra": extra,
    })  # fmt: skip
    conn.close()


def chatter(count: int, conn: Connection) -> None:
    """Send ``count`` numbers, then ``"done"``."""
    for n in range(count):
        conn.send(n)
    conn.send("done")
    conn.close()
