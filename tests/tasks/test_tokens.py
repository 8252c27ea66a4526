"""Token counters: the estimate, vLLM's /tokenize + /detokenize (a local stand-in server), the factory, and
truncation of over-long letters in the few-shot tasks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from pipeline.endpoint import Endpoint
from pipeline.evaluation.tokens import EstimateCounter, ServerCounter, make_counter
from pipeline.tasks import get_task
from pipeline.tasks.base import RenderContext
from pipeline.tasks.budget import water_fill
from pipeline.tasks.prompts import load_budget, load_prompts
from tests.support.servers import serving_app
from tests.support.tokenizer import WordCounter

VOCAB: dict[str, int] = {}
CALLS = web.AppKey("calls", list)


def _tok(word: str) -> int:
    return VOCAB.setdefault(word, len(VOCAB) + 1)


async def _tokenize(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[CALLS].append(body)
    tokens = [_tok(w) for w in body["prompt"].split(" ")]
    return web.json_response({"count": len(tokens), "max_model_len": 2048, "tokens": tokens})


async def _detokenize(request: web.Request) -> web.Response:
    body = await request.json()
    words = {v: k for k, v in VOCAB.items()}
    return web.json_response({"prompt": " ".join(words[t] for t in body["tokens"])})


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, web.Application]]:
    app = web.Application()
    app[CALLS] = []
    app.router.add_post("/tokenize", _tokenize)
    app.router.add_post("/detokenize", _detokenize)
    async with serving_app(app) as url:
        yield f"{url}/v1", app


async def test_estimate_counter() -> None:
    counter = EstimateCounter()
    assert counter.exact is False
    assert await counter.count("a" * 9) == 3 and await counter.count("a" * 10) == 4
    assert await counter.truncate("abcdefghij", 2, keep="end") == "efghij"
    assert await counter.truncate("abcdefghij", 2, keep="start") == "abcdef"
    assert await counter.truncate("abc", 5, keep="end") == "abc"


async def test_server_counter_counts_truncates_and_caches(server: tuple[str, web.Application]) -> None:
    url, app = server
    async with Endpoint(url, "x") as endpoint:
        counter = ServerCounter(endpoint, "m")
        assert counter.exact
        assert await counter.count("one two three four") == 4
        assert await counter.count("one two three four") == 4
        assert len(app[CALLS]) == 1  # cached
        assert app[CALLS][0] == {"model": "m", "prompt": "one two three four", "add_special_tokens": False}
        assert await counter.truncate("one two three four", 2, keep="end") == "three four"
        assert await counter.truncate("one two three four", 3, keep="start") == "one two three"


async def test_make_counter_probes_and_falls_back(server: tuple[str, web.Application]) -> None:
    url, _ = server
    async with Endpoint(url) as a, Endpoint("http://127.0.0.1:9/v1") as b, Endpoint(url + "/nothing") as c:
        assert isinstance(await make_counter(a, "m"), ServerCounter)
        assert isinstance(await make_counter(b, "m"), EstimateCounter)
        assert isinstance(await make_counter(c, "m"), EstimateCounter)


def test_water_fill() -> None:
    assert water_fill([10, 20], 30) is None
    assert water_fill([10, 100, 100], 110) == 50
    assert water_fill([10, 100], 0) == 0


async def test_over_long_letters_keep_their_end(tmp_path: Path) -> None:
    letter = " ".join(f"w{i}" for i in range(3000))
    records = [
        {"note_id": f"n{i}", "discharge_summary": f"{letter} END{i}", "Question": "q?", "Answer": "a"}
        for i in range(3)
    ]
    (tmp_path / "medisumqa").mkdir()
    (tmp_path / "medisumqa" / "MeDiSumQA.json").write_text(json.dumps(records))
    counter = WordCounter()
    ctx = RenderContext(chat_mode="chat", max_model_len=2048, counter=counter)
    requests = [r async for r in get_task("medisumqa").requests(tmp_path, ctx)]
    assert len(requests) == 2
    spec = load_prompts("medisumqa").prompt
    for r in requests:
        assert r.messages is not None
        used = sum([await counter.count(m["content"]) for m in r.messages])
        assert used + spec.max_new_tokens + load_budget().reserve(len(r.messages)) <= 2048
        query = r.messages[-2]["content"]
        assert "END" in query and "w0 " not in query  # the end is kept
        assert query.count(" ") > 500  # both letters share the budget
