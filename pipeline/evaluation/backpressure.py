"""Read a vLLM server's queue depth from its Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import aiohttp


async def read_queue_depth(session: aiohttp.ClientSession, metrics_url: str) -> int | None:
    """Sum of ``vllm:num_requests_waiting`` over engines, or None when the endpoint has no such metric."""
    try:
        async with session.get(metrics_url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return None
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    return parse_waiting(text)


def parse_waiting(text: str) -> int | None:
    total: float | None = None
    for line in text.splitlines():
        if line.startswith("vllm:num_requests_waiting") and not line.startswith("vllm:num_requests_waiting_"):
            try:
                value = float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                continue
            total = (total or 0.0) + value
    return None if total is None else int(total)


async def is_vllm(session: aiohttp.ClientSession, metrics_url: str) -> bool:
    return await read_queue_depth(session, metrics_url) is not None
