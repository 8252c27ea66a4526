"""Backpressure: with vLLM's queue growing, the eval loop lowers its in-flight limit; parsing of /metrics.

The eval loop reads /metrics once a second; the tests never race that. The server holds the requests
(``--hold``) until the eval loop has provably reacted (its limit fell), then lets them through.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pipeline.endpoint import parse_waiting
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
    assert run.lowest_limit < 48


async def test_a_queue_that_never_drains_still_lets_the_run_finish(tmp_path: Path) -> None:
    # The limit falls to 1 and stays there; workers parked above it must not hold requests.
    with fake_server("--hold", "--extra-waiting", "100") as server:
        config = eval_config([server.base_url], tmp_path, concurrency=8, max_waiting=4)
        runs: list[object] = []
        running = asyncio.create_task(run_eval(config, CountingTask(300), queue_from=server.root, runs=runs))
        await asyncio.to_thread(server.wait_held, 8)
        await until(lambda: _run_of(runs).limit == 1, "the limit fell to 1")
        await asyncio.to_thread(server.release)
        # Only a deadlock (parked workers holding requests) keeps the run from ending: a guard, not a speed.
        result = await asyncio.wait_for(running, timeout=300)
    run = _run_of(runs)
    assert run.lowest_limit == 1
    assert result.sent == 300


async def test_no_metrics_means_no_throttling(tmp_path: Path) -> None:
    with fake_server("--delay", "0.05") as server:
        config = eval_config([server.base_url], tmp_path, concurrency=16)
        runs: list[object] = []
        await run_eval(config, CountingTask(64), runs=runs)
    run = _run_of(runs)
    assert run.limit == 16 and run.progress.queue_depth is None
