"""Jobs for pipeline.sweep.children's tests: module-level, so that a spawned child can import them."""

from __future__ import annotations

import os
import sys
import time
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


def linger(conn: Connection) -> None:
    """Send 0, then wait a minute."""
    conn.send(0)
    time.sleep(60)  # ended by the test (a kill), else the test fails (and waits for it)
