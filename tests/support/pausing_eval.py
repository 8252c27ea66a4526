"""The real ``medsweep`` CLI, paused at one phase of the eval after the requests (test instrumentation).

``python tests/support/pausing_eval.py PHASE ARGS...`` runs ``medsweep ARGS...`` in this process; when the
eval reaches PHASE (``score_tasks``: scoring starts; ``print_summary``: the summary is about to be printed)
it prints ``paused at PHASE`` on stdout, then waits for a line on stdin before going on. A test sends its
signal while the process waits there, so the signal arrives in that phase on any machine, however fast or
slow: no sleeping, no racing a phase that lasts milliseconds. Nothing of the eval is replaced: the wrapped
function runs unchanged once the test lets it continue.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import pipeline.evaluation.evaluate
from pipeline.cli import main

PHASES = ("score_tasks", "print_summary")


def _pause_before(phase: str) -> None:
    original = getattr(pipeline.evaluation.evaluate, phase)

    @functools.wraps(original)
    def paused(*args: Any, **kwargs: Any) -> Any:
        print(f"paused at {phase}", flush=True)
        sys.stdin.readline()
        return original(*args, **kwargs)

    setattr(pipeline.evaluation.evaluate, phase, paused)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in PHASES:
        sys.exit(f"usage: pausing_eval.py {{{','.join(PHASES)}}} MEDSWEEP-ARGS...")
    _pause_before(sys.argv.pop(1))  # the eval's resume line reads sys.argv: leave only the CLI's arguments
    sys.exit(main(sys.argv[1:]))
