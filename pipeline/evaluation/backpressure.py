"""Read a vLLM server's load (waiting, running requests, KV-cache usage) from its Prometheus ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

# The gauges vLLM 0.32 (V1 engine) exports, one series per engine. ``kv_cache_usage_perc`` is a fraction in
# [0, 1] despite its name; ``gpu_cache_usage_perc`` is its older name (vLLM before 0.10), read as a fallback.
WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


@dataclass(frozen=True)
class ServerLoad:
    """One reading of the server: requests queued, requests in its running batch, KV cache in use (0-1).

    ``running`` and ``kv_usage`` are None when the server does not export them."""

    waiting: int
    running: int | None = None
    kv_usage: float | None = None


async def read_load(session: aiohttp.ClientSession, metrics_url: str) -> ServerLoad | None:
    """The server's load now, or None when the endpoint does not answer or has no waiting queue."""
    try:
        async with session.get(metrics_url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return None
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    return parse_load(text)


def _series(text: str, name: str) -> list[float]:
    """The values of every series of gauge ``name`` (any labels; not ``name_suffix`` gauges)."""
    values = []
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            try:
                values.append(float(line.rsplit(" ", 1)[1]))
            except (IndexError, ValueError):
                continue
    return values


def parse_load(text: str) -> ServerLoad | None:
    """Waiting and running summed over engines; KV usage: the fullest engine's (the one that preempts)."""
    waiting = _series(text, WAITING)
    if not waiting:
        return None
    running = _series(text, RUNNING)
    kv = next((values for name in KV_USAGE if (values := _series(text, name))), [])
    return ServerLoad(
        waiting=int(sum(waiting)),
        running=int(sum(running)) if running else None,
        kv_usage=max(kv) if kv else None,
    )


def parse_waiting(text: str) -> int | None:
    """Sum of ``vllm:num_requests_waiting`` over engines, or None when the text has no such metric."""
    load = parse_load(text)
    return None if load is None else load.waiting


async def is_vllm(session: aiohttp.ClientSession, metrics_url: str) -> bool:
    return await read_load(session, metrics_url) is not None
