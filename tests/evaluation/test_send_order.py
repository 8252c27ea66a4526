"""The order an eval sends its requests in (pipeline/evaluation/send_order.py): longest prompts first, in
windows whose order depends on the requests alone; the tasks' own order with ``--send-order data``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.evaluation import send_order as order_module
from pipeline.evaluation.send_order import prompt_size, send_order
from pipeline.request import Request
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.servers import fake_server

TASKS = "meqsum,longhealth,mednli"


def _request(item_id: str, chars: int) -> Request:
    return Request(task="t", item_id=item_id, kind="chat", max_tokens=8, reference=None,
                   messages=({"role": "user", "content": "x" * chars},))  # fmt: skip


async def _ordered(sizes: list[int], order: str = "longest_first") -> list[str]:
    async def items() -> AsyncIterator[Request]:
        for i, size in enumerate(sizes):
            yield _request(str(i), size)

    return [r.item_id async for r in send_order(items(), order, lambda r: r)]  # type: ignore[arg-type]


def test_longest_first_within_windows_ties_in_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order_module, "FIRST_WINDOW", 2)
    monkeypatch.setattr(order_module, "WINDOW_REQUESTS", 3)
    # Windows [0, 1] [2, 3, 4] [5, 6]; 3 and 4 tie (the same estimate): they keep their order.
    sent = asyncio.run(_ordered([3, 30, 9, 300, 300, 6, 60]))
    assert sent == ["1", "0", "3", "4", "2", "6", "5"]
    assert asyncio.run(_ordered([3, 30, 9], "data")) == ["0", "1", "2"]


def test_a_window_closes_at_its_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order_module, "FIRST_WINDOW", 100)
    monkeypatch.setattr(order_module, "WINDOW_CHARS", 50)
    assert asyncio.run(_ordered([10, 40, 5, 20])) == ["1", "0", "3", "2"]  # [10, 40] reach 50 chars


def _sent(log: Path) -> list[tuple[str, int]]:
    """(the first words of the user turn, the prompt's estimated tokens) of each body the server received,
    in order."""
    bodies = [json.loads(line) for line in log.read_text().splitlines()]
    out = []
    for body in bodies:
        request = Request(task="", item_id="", kind="chat", max_tokens=1, reference=None,
                          messages=tuple(body["messages"]))  # fmt: skip
        out.append((body["messages"][-1]["content"][:40], prompt_size(request)))
    return out


def _windows(count: int) -> list[tuple[int, int]]:
    """The (start, end) of each window of a run of ``count`` requests (the demo's prompts are short: no
    window closes at its characters)."""
    bounds, start, size = [], 0, order_module.FIRST_WINDOW
    while start < count:
        bounds.append((start, min(start + size, count)))
        start, size = start + size, min(size * order_module.GROWTH, order_module.WINDOW_REQUESTS)
    return bounds


def _eval(server_url: str, out: Path, *extra: str) -> None:
    args = ["eval", "--base-url", server_url, "--model", "fake-model", "--data-dir", str(DEMO),
            "--out", str(out), "--task", TASKS, "--concurrency", "1", *extra]  # fmt: skip
    assert main(args) == 0


def test_requests_reach_the_server_longest_first_and_in_data_order_when_asked(tmp_path: Path) -> None:
    """One request at a time, so the server receives them in the order they are sent: by default in
    descending prompt length within each window; with --send-order data in the tasks' order, which is not
    that; a resumed run sends only what is missing, longest first."""
    longest, data = tmp_path / "longest.jsonl", tmp_path / "data.jsonl"
    with fake_server("--max-model-len", "8192", "--request-log", str(longest)) as server:
        _eval(server.base_url, tmp_path / "a")
    with fake_server("--max-model-len", "8192", "--request-log", str(data)) as server:
        _eval(server.base_url, tmp_path / "b", "--send-order", "data")
    by_default, in_data_order = _sent(longest), _sent(data)
    assert sorted(by_default) == sorted(in_data_order) and len(by_default) > order_module.FIRST_WINDOW
    sizes = [n for _, n in by_default]
    windows = _windows(len(sizes))
    assert len(windows) > 1
    assert all(sizes[a:b] == sorted(sizes[a:b], reverse=True) for a, b in windows)
    assert [n for _, n in in_data_order] != sizes  # the data order is another one: the test can fail

    resumed = tmp_path / "resumed.jsonl"
    with fake_server("--max-model-len", "8192", "--request-log", str(resumed)) as server:
        _eval(server.base_url, tmp_path / "c", "--limit", "1")
        first = len(_sent(resumed))
        _eval(server.base_url, tmp_path / "c")
    rest = [n for _, n in _sent(resumed)[first:]]
    assert len(rest) == len(sizes) - first
    assert all(rest[a:b] == sorted(rest[a:b], reverse=True) for a, b in _windows(len(rest)))
