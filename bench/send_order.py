"""The tail of an eval with its requests sent longest first and in the tasks' order (issue #23, item 3).

Real: ``medsweep eval`` (``run_evaluation``: rendering, the send order, client, store, scoring). Simulated:
the server is our fake OpenAI server (tests/support/fakeserver.py) answering each request after a latency
from the cost model (pipeline/sweep/costs.toml, the up-to-10B class) at a full batch of ``concurrency``:
``concurrency`` x (the request's own prompt tokens / the prefill rate + its task's answer tokens / the
decode rate), divided by the acceleration A. The prompt part is the request's own (the fake counts len / 4),
so the latency follows what the sort sorts by; the answer part is the task's (cost model). The data are the
SYNTHETIC demo_data/ (every task with demo data by default; their prompts are 235-760 estimated tokens, far
shorter and closer together than the real tasks'). Each round runs both orders on a fresh store and prints,
per order, the generation (first request sent to last answer stored) and its tail (from the first worker
out of work to the last answer: the run's marks, as a sweep's timeline reads them), in simulated seconds.

Run: .venv/bin/python bench/send_order.py [--concurrency 8] [--rounds 2] [--accel A] [--tasks T1,T2,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.evaluation.evaluate import run_evaluation, select_tasks  # noqa: E402
from pipeline.sweep.estimate import load_costs  # noqa: E402
from tests.support.servers import fake_server  # noqa: E402

DEMO = REPO / "demo_data"
ORDERS = ("data", "longest_first")


def latencies(concurrency: int, accel: float) -> tuple[list[tuple[str, float]], float]:
    """(the task's marker phrase, its answer's seconds) for every task, and the seconds per prompt token, in
    a batch of ``concurrency``."""
    costs = load_costs()
    server = costs.server_for(8.0)
    answers = [(t.bench_marker, concurrency * t.output_tokens / server.decode_tps / accel)
               for t in costs.task.values()]  # fmt: skip
    return answers, concurrency / server.prefill_tps / accel


def one_run(
    base_url: str, out: Path, tasks: list[str], concurrency: int, order: str
) -> tuple[float, float, float]:
    """(first request, generation, tail) seconds of one eval of ``tasks`` on the demo data, sent in
    ``order``; the first: from the eval's start (endpoint checks, rendering the first window)."""
    config = load_config(
        None,
        {"endpoint": {"base_urls": [base_url]}, "model": {"name": "fake-model"},
         "client": {"concurrency": concurrency, "backpressure": False},
         "run": {"tasks": tasks, "data_dir": DEMO, "out": out, "send_order": order}},
        environ={},
    )  # fmt: skip
    began = time.time()
    run = run_evaluation(config, console=Console(quiet=True)).run
    assert run.first_sent_at is not None and run.tail_at is not None
    return run.first_sent_at - began, run.generated_at - run.first_sent_at, run.generated_at - run.tail_at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--accel", type=float, default=4.0, help="simulated seconds per real second")
    parser.add_argument("--tasks", default="", help="comma-separated, in the data order (default: all)")
    args = parser.parse_args(argv)
    tasks, _ = select_tasks([t for t in args.tasks.split(",") if t], DEMO)
    print(f"tasks: {', '.join(tasks)} (demo_data, SYNTHETIC); concurrency {args.concurrency}; "
          f"acceleration {args.accel:g}x; simulated seconds")  # fmt: skip
    sums = {order: [0.0, 0.0, 0.0] for order in ORDERS}
    with tempfile.TemporaryDirectory(prefix="send-order-") as tmp:
        table = Path(tmp) / "latency.json"
        answers, per_token = latencies(args.concurrency, args.accel)
        table.write_text(json.dumps(answers))
        with fake_server("--max-model-len", "100000", "--latency-map", str(table),
                         "--seconds-per-prompt-token", str(per_token)) as server:  # fmt: skip
            for r in range(args.rounds):
                for order in ORDERS if r % 2 == 0 else ORDERS[::-1]:  # alternate which runs first
                    out = Path(tmp) / f"{order}-{r}"
                    first, generation, tail = one_run(server.base_url, out, tasks, args.concurrency, order)
                    sums[order][0] += generation * args.accel
                    sums[order][1] += tail * args.accel
                    sums[order][2] += first  # real seconds: the eval's own work
                    print(f"round {r + 1}, {order}: first request after {first:.2f} s (real), generation "
                          f"{generation * args.accel:.1f} s, tail {tail * args.accel:.1f} s")  # fmt: skip
    for order in ORDERS:
        generation, tail, first = (x / args.rounds for x in sums[order])
        print(f"mean {order}: first request after {first:.2f} s (real), generation {generation:.1f} s, "
              f"tail {tail:.1f} s")  # fmt: skip
    gain = 1 - (sums["longest_first"][0] / sums["data"][0])
    print(f"generation_saved={gain:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
