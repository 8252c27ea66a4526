"""Backpressure: only a saturated server lowers the eval loop's in-flight limit, never below what the server
runs at once (plus ``max_waiting``); parsing of /metrics.

The policy is tested with explicit readings (no timing). The eval loop reads /metrics once a second; the
tests with the fake server never race that: it holds the requests (``--hold``) until the eval loop has
provably reacted (its limit fell), then lets them through. The fake server runs 8 requests and exports no
KV usage.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from rich.console import Console

from pipeline.endpoint import ServerLoad, parse_load, parse_waiting
from pipeline.evaluation.concurrency import ConcurrencyController
from pipeline.evaluation.progress import Progress
from pipeline.evaluation.scheduler import EvalRun
from tests.support.counting import CountingTask, eval_config, run_eval, until
from tests.support.servers import fake_server


def test_parse_waiting_sums_engines_and_ignores_other_series() -> None:
    text = (
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{engine="0",model_name="m"} 3.0\n'
        'vllm:num_requests_waiting{engine="1",model_name="m"} 4.0\n'
        'vllm:num_requests_waiting_by_reason{reason="capacity"} 99.0\n'
        'vllm:num_requests_running{engine="0"} 8.0\n'
    )
    assert parse_waiting(text) == 7
    assert parse_waiting("other_metric 1\n") is None


def test_parse_load_reads_running_and_the_fullest_engines_kv_usage() -> None:
    # The names vLLM 0.32 exports (curl of a CPU vLLM's /metrics), two engines.
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 8.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 6.0\n'
        'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0\n'
        'vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="capacity"} 2.0\n'
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5\n'
    )
    assert parse_load(text) == ServerLoad(waiting=2, running=14, kv_usage=0.5)
    older = "vllm:num_requests_waiting 1\nvllm:gpu_cache_usage_perc 0.95\n"  # vLLM before 0.10
    assert parse_load(older) == ServerLoad(waiting=1, running=None, kv_usage=0.95)


def _controller(cap: int, max_waiting: int = 16) -> ConcurrencyController:
    return ConcurrencyController(cap, max_waiting, Progress(["t"], console=Console(file=io.StringIO())))


def test_a_long_queue_with_room_in_the_kv_cache_is_not_throttled() -> None:
    # The measured case of issue #23: prefills chunked behind each other, KV cache far from full. The old
    # policy cut in-flight on the queue alone and shrank the running batch.
    control = _controller(cap=128)
    for _ in range(20):
        control.observe(ServerLoad(waiting=100, running=28, kv_usage=0.4))
    assert control.limit == 128 and control.lowest_limit == 128


def test_a_saturated_server_is_throttled_down_to_its_running_batch_plus_max_waiting() -> None:
    control = _controller(cap=128, max_waiting=16)
    for _ in range(30):
        control.observe(ServerLoad(waiting=90, running=38, kv_usage=0.97))
    assert control.limit == 38 + 16  # the floor: the batch stays full, a short queue refills it
    assert control.lowest_limit == 54


def test_the_floor_follows_the_largest_batch_seen() -> None:
    control = _controller(cap=128, max_waiting=16)
    for _ in range(30):
        control.observe(ServerLoad(waiting=90, running=20, kv_usage=0.95))
    assert control.limit == 36
    # The server later runs more at once (shorter requests): the limit goes up to the new floor at once.
    control.observe(ServerLoad(waiting=90, running=60, kv_usage=0.95))
    assert control.limit == 76


def test_the_limit_rises_when_the_queue_drains_or_the_kv_cache_has_room() -> None:
    control = _controller(cap=64, max_waiting=16)
    for _ in range(30):
        control.observe(ServerLoad(waiting=90, running=10, kv_usage=0.95))
    assert control.limit == 26
    control.observe(ServerLoad(waiting=90, running=10, kv_usage=0.5))  # preemptions over: room again
    assert control.limit == 26 + 64 // 16
    control.observe(ServerLoad(waiting=3, running=10, kv_usage=0.95))  # queue drained
    assert control.limit == 26 + 2 * (64 // 16)
    control.observe(ServerLoad(waiting=12, running=10, kv_usage=0.85))  # between the thresholds: stay
    assert control.limit == 34


def test_unknown_kv_usage_throttles_on_the_queue_alone_and_unknown_running_floors_at_max_waiting() -> None:
    control = _controller(cap=64, max_waiting=16)
    for _ in range(30):
        control.observe(ServerLoad(waiting=90))
    assert control.limit == 16


def _run_of(runs: list[object]) -> EvalRun:
    run = runs[0]
    assert isinstance(run, EvalRun)
    return run


async def test_queue_depth_lowers_the_in_flight_limit(tmp_path: Path) -> None:
    # The fake server runs 8 requests and counts the rest as waiting, as vLLM's scheduler would.
    with fake_server("--hold") as server:
        config = eval_config([server.base_url], tmp_path, concurrency=48, max_waiting=4)
        runs: list[object] = []
        running = asyncio.create_task(run_eval(config, CountingTask(400), queue_from=server.root, runs=runs))
        await asyncio.to_thread(server.wait_held, 48)  # 40 waiting at the server, 4 allowed
        await until(lambda: _run_of(runs).lowest_limit < 48, "the eval loop lowered its limit")
        await asyncio.to_thread(server.release)
        await running
    run = _run_of(runs)
    assert run.progress.queue_depth is not None
    assert 8 + 4 <= run.lowest_limit < 48  # never below the 8 the server runs plus max_waiting


async def test_a_queue_that_never_drains_still_lets_the_run_finish(tmp_path: Path) -> None:
    # The limit falls to its floor (8 running + 4) and stays there; workers parked above it must not hold
    # requests. (Under the old policy it fell to 1: a server that runs 8 at once was starved to 1.)
    with fake_server("--hold", "--extra-waiting", "100") as server:
        config = eval_config([server.base_url], tmp_path, concurrency=32, max_waiting=4)
        runs: list[object] = []
        running = asyncio.create_task(run_eval(config, CountingTask(300), queue_from=server.root, runs=runs))
        await asyncio.to_thread(server.wait_held, 32)
        await until(lambda: _run_of(runs).limit == 12, "the limit fell to its floor")
        await asyncio.to_thread(server.release)
        # Only a deadlock (parked workers holding requests) keeps the run from ending: a guard, not a speed.
        result = await asyncio.wait_for(running, timeout=300)
    run = _run_of(runs)
    assert run.lowest_limit == 12
    assert result.sent == 300


async def test_no_metrics_means_no_throttling(tmp_path: Path) -> None:
    with fake_server("--delay", "0.05") as server:
        config = eval_config([server.base_url], tmp_path, concurrency=16)
        runs: list[object] = []
        await run_eval(config, CountingTask(64), runs=runs)
    run = _run_of(runs)
    assert run.limit == 16 and run.progress.queue_depth is None
