"""The sweep's eval process with its scoring held at a gate (test instrumentation).

A test puts ``eval_process`` below in place of ``pipeline.sweep.runner.eval_process`` and names a folder in
``$MEDSWEEP_TEST_SCORING_GATE``. When an eval reaches scoring, it writes ``held.<pid>`` there (named by its
pid; inside, the model identity and on a second line the GPUs scoring sees, ``CUDA_VISIBLE_DEVICES``), then
waits until the file ``open`` exists there. So a test acts while scoring is provably in progress (the
generation is over, the scores not written), on any machine, however fast or slow: no sleeping, no racing.
Nothing of the eval is replaced: scoring runs unchanged once the gate opens.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

GATE_ENV = "MEDSWEEP_TEST_SCORING_GATE"


def eval_process(config: Any, provenance: Any, log_path: str, scoring_gpus: str, conn: Connection) -> None:
    import pipeline.evaluation.evaluate as evaluate
    from pipeline.sweep import runner

    gate = Path(os.environ[GATE_ENV])
    original = evaluate.score_tasks

    def held(*args: Any, **kwargs: Any) -> Any:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
        (gate / f"held.{os.getpid()}").write_text(f"{args[1]}\n{visible}")
        while not (gate / "open").exists():
            time.sleep(0.05)
        return original(*args, **kwargs)

    evaluate.score_tasks = held  # type: ignore[assignment]
    runner.eval_process(config, provenance, log_path, scoring_gpus, conn)
