"""The real ``medsweep`` CLI, reporting its peak memory by phase of the eval (test instrumentation).

``python tests/support/rss_eval.py FILE ARGS...`` runs ``medsweep ARGS...`` in this process and writes to
FILE, as JSON, the process's peak RSS in MiB (``ru_maxrss``, which only grows) at two moments: when scoring
starts (``sending``: the peak of everything before, loading the data and sending every request) and when the
command has printed its summary and is about to exit (``end``). Their difference is what scoring and the
summary added to the peak. Memory, not time: the figures do not depend on the machine's speed. Nothing of
the eval is replaced: the wrapped function runs unchanged.
"""

from __future__ import annotations

import functools
import json
import resource
import sys
from pathlib import Path
from typing import Any

import pipeline.evaluation.evaluate
from pipeline.cli import main


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _record_before_scoring(peaks: dict[str, float]) -> None:
    original = pipeline.evaluation.evaluate.score_tasks

    @functools.wraps(original)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        peaks["sending"] = peak_rss_mib()
        return original(*args, **kwargs)

    pipeline.evaluation.evaluate.score_tasks = recorded


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: rss_eval.py FILE MEDSWEEP-ARGS...")
    target = Path(sys.argv.pop(1))  # the eval's resume line reads sys.argv: leave only the CLI's arguments
    peaks: dict[str, float] = {}
    _record_before_scoring(peaks)
    code = main(sys.argv[1:])
    peaks["end"] = peak_rss_mib()
    target.write_text(json.dumps(peaks))
    sys.exit(code)
