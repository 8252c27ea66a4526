"""A minimal task for eval-loop tests: N numbered prompts, no dataset (the six real tasks have their own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from pipeline.config import EvalConfig, load_config
from pipeline.evaluation.scheduler import RunResult
from pipeline.request import Request
from pipeline.tasks.base import RenderContext


class CountingTask:
    """Yields ``n`` chat requests ``question i``; reference is the item index."""

    level = 1

    def __init__(self, n: int, name: str = "counting", max_tokens: int = 8) -> None:
        self.n = n
        self.name = name
        self.max_tokens = max_tokens

    def data_path(self, data_dir: Path) -> Path:
        return data_dir

    def expected_count(self, data_dir: Path, limit: int | None) -> int:
        return min(self.n, limit) if limit else self.n

    async def requests(self, data_dir: Path, ctx: RenderContext) -> AsyncIterator[Request]:
        for i in range(self.expected_count(data_dir, ctx.limit)):
            yield Request(
                task=self.name,
                item_id=f"q{i}",
                kind="chat",
                max_tokens=self.max_tokens,
                reference=i,
                messages=({"role": "user", "content": f"question {i}"},),
                prefix_group=self.name,
            )


# What a test waits for will happen, on any machine; the deadline only ends a test that is broken.
DEADLINE_S = 120.0


async def until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds (it must: no speed is checked); else fail naming ``what``."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened within {deadline_s:g} s: {what}"
        await asyncio.sleep(0.02)


def eval_config(base_urls: list[str], out: Path, **client: object) -> EvalConfig:
    # A timeout far beyond any answer of a loaded machine: tests that want timeouts set a short one.
    defaults: dict[str, object] = {"concurrency": 8, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 60}
    defaults.update(client)
    return load_config(
        None,
        {
            "endpoint": {"base_urls": base_urls},
            "model": {"name": "fake-model"},
            "client": defaults,
            "run": {"out": out, "data_dir": out},
        },
        environ={},
    )


async def run_eval(
    config: EvalConfig,
    task: CountingTask,
    api_key: str | None = None,
    *,
    queue_from: str | None = None,
    runs: list[object] | None = None,
) -> RunResult:
    """Run the real eval loop (client, store, progress) for one task against ``config``'s endpoint; with
    ``queue_from`` (a server root), backpressure reads that server's load."""
    import io

    from rich.console import Console

    from pipeline.endpoint import Endpoint
    from pipeline.evaluation.client import Client
    from pipeline.evaluation.progress import Progress
    from pipeline.evaluation.scheduler import EvalRun, EvalTarget
    from pipeline.evaluation.tokens import EstimateCounter
    from pipeline.store.database import Store

    async with (
        Client(config.client, config.endpoint.base_urls, api_key) as client,
        Endpoint(queue_from or config.endpoint.base_urls[0], api_key) as endpoint,
    ):
        store = Store.open(config.run.out)
        try:
            progress = Progress([task.name], console=Console(file=io.StringIO()))
            target = EvalTarget("fake-model", "fake-model", "chat", 2048)
            server_load = endpoint.load if queue_from else None
            run = EvalRun(
                config, target, [task], client, store, EstimateCounter(), progress, server_load=server_load
            )  # type: ignore[list-item]
            if runs is not None:
                runs.append(run)
            return await run.run()
        finally:
            store.close()
