"""Prefix-aware ordering on the real CPU vLLM server: prefix-cache hit rate and time, ordered vs shuffled.

The tasks yield requests so that prompts sharing a long prefix (system prompt + few-shot block; a LongHealth
patient's documents) are adjacent. This sends the same requests twice — in that order, and shuffled — with the
prefix cache reset before each pass (``POST /reset_prefix_cache``, which needs ``VLLM_SERVER_DEV_MODE=1``),
and reads ``vllm:prefix_cache_{queries,hits}_total`` from ``/metrics`` around each pass.

Usage (needs `make setup-server`): ``python bench/prefix_cache.py [--tasks longhealth,meqsum] [--limit 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import ClientConfig  # noqa: E402
from pipeline.endpoint import Endpoint  # noqa: E402
from pipeline.evaluation.client import Client  # noqa: E402
from pipeline.evaluation.tokens import make_counter  # noqa: E402
from pipeline.paths import default_data_dir  # noqa: E402
from pipeline.request import Request, request_body  # noqa: E402
from pipeline.tasks import get_task  # noqa: E402
from pipeline.tasks.base import RenderContext  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

MODEL = "smollm2-135m-instruct"


def _counters(text: str) -> tuple[float, float]:
    queries = hits = 0.0
    for line in text.splitlines():
        if line.startswith("vllm:prefix_cache_queries_total"):
            queries += float(line.rsplit(" ", 1)[1])
        elif line.startswith("vllm:prefix_cache_hits_total"):
            hits += float(line.rsplit(" ", 1)[1])
    return queries, hits


async def _pass(client: Client, root: str, requests: list[Request], concurrency: int) -> tuple[float, float]:
    session = client.session
    async with session.post(f"{root}/reset_prefix_cache") as resp:
        if resp.status != 200:
            raise SystemExit(
                f"POST /reset_prefix_cache answered {resp.status}: start vLLM with VLLM_SERVER_DEV_MODE=1"
            )
    async with session.get(f"{root}/metrics") as resp:
        q0, h0 = _counters(await resp.text())
    sem = asyncio.Semaphore(concurrency)
    sampling = {"temperature": 0.0, "top_p": 1.0, "seed": 1234}

    async def one(request: Request) -> None:
        async with sem:
            chat = request.kind == "chat"
            body = request_body(request, MODEL, sampling)
            outcome = await client.send("chat/completions" if chat else "completions", body, chat=chat)
            assert outcome.ok, outcome.error_message

    start = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    elapsed = time.perf_counter() - start
    async with session.get(f"{root}/metrics") as resp:
        q1, h1 = _counters(await resp.text())
    return (h1 - h0) / max(q1 - q0, 1.0), elapsed


async def _run(root: str, tasks: list[str], limit: int, concurrency: int) -> None:
    async with (
        Client(ClientConfig(concurrency=concurrency), (f"{root}/v1",)) as client,
        Endpoint(root) as endpoint,
    ):
        counter = await make_counter(endpoint, MODEL)
        ctx = RenderContext(chat_mode="chat", max_model_len=2048, counter=counter, limit=limit)
        ordered: list[Request] = []
        for task in tasks:
            ordered += [r async for r in get_task(task).requests(default_data_dir(), ctx)]
        shuffled = list(ordered)
        random.Random(0).shuffle(shuffled)
        rate_o, time_o = await _pass(client, root, ordered, concurrency)
        rate_s, time_s = await _pass(client, root, shuffled, concurrency)
    print(f"{len(ordered)} requests ({', '.join(tasks)}, limit {limit}), concurrency {concurrency}:")
    print(f"  prefix-aware order : hit rate {rate_o:.1%}, {time_o:.1f} s")
    print(f"  shuffled order     : hit rate {rate_s:.1%}, {time_s:.1f} s")
    print(f"  time shuffled / ordered: {time_s / time_o:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="longhealth,meqsum")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "MEDSWEEP_STATE_DIR": state, "VLLM_SERVER_DEV_MODE": "1"}
        medsweep = [sys.executable, "-m", "pipeline"]
        subprocess.run(
            [*medsweep, "serve", "--engine", "cpu", "--port", str(port)], env=env, check=True, cwd=REPO
        )
        try:
            asyncio.run(_run(f"http://127.0.0.1:{port}", args.tasks.split(","), args.limit, args.concurrency))
        finally:
            subprocess.run([*medsweep, "stop"], env=env, check=False, cwd=REPO)


if __name__ == "__main__":
    main()
