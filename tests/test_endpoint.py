"""The endpoint object (pipeline.endpoint): vLLM's extras over one HTTP client configuration."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from pipeline.endpoint import Endpoint, TokenizeError
from pipeline.failures import FailureClass
from tests.support.servers import fake_server, serving_app

SEEN = web.AppKey("seen", list)


async def test_list_models_reports_max_model_len() -> None:
    with fake_server("--max-model-len", "1234", "--model", "m1") as server:
        async with Endpoint(server.base_url) as endpoint:
            served = await endpoint.list_models()
    assert [(m.id, m.max_model_len) for m in served] == [("m1", 1234)]


async def _answer(request: web.Request) -> web.Response:
    request.app[SEEN].append((request.method, request.path, request.headers.get("Authorization")))
    if request.path == "/metrics":
        return web.Response(text='vllm:num_requests_waiting{engine="0"} 5.0\n')
    bodies = {
        "/version": {"version": "0.32.0"},
        "/v1/models": {"object": "list", "data": [{"id": "m", "max_model_len": 2048, "root": "/m"}]},
        "/tokenize": {"tokens": [1, 2]},
        "/detokenize": {"prompt": "a b"},
        "/health": {},
    }
    return web.Response(text=json.dumps(bodies[request.path]), content_type="application/json")


@pytest.fixture
async def recording() -> AsyncIterator[tuple[str, web.Application]]:
    app = web.Application()
    app[SEEN] = []
    for path in ("/version", "/v1/models", "/metrics", "/health"):
        app.router.add_get(path, _answer)
    for path in ("/tokenize", "/detokenize"):
        app.router.add_post(path, _answer)
    async with serving_app(app) as url:
        yield url, app


async def test_every_extra_goes_through_one_configuration(recording: tuple[str, web.Application]) -> None:
    root, app = recording
    async with Endpoint(f"{root}/v1", "k-1") as endpoint:
        assert endpoint.root == root
        assert [m.id for m in await endpoint.list_models()] == ["m"]
        assert await endpoint.version() == "0.32.0"
        assert await endpoint.queue_depth() == 5
        assert await endpoint.tokenize("m", "a b") == [1, 2]
        assert await endpoint.detokenize("m", [1, 2]) == "a b"
    # The readiness wait is synchronous (a CLI command, a watchdog thread): off this loop, which serves.
    ready = await asyncio.to_thread(endpoint.wait_healthy, 5, "m", None, 0.05)
    assert ready["data"][0]["id"] == "m"
    seen = app[SEEN]
    assert [(method, path) for method, path, _ in seen] == [
        ("GET", "/v1/models"), ("GET", "/version"), ("GET", "/metrics"), ("POST", "/tokenize"),
        ("POST", "/detokenize"), ("GET", "/health"), ("GET", "/v1/models"),
    ]  # fmt: skip
    assert {auth for _, _, auth in seen} == {"Bearer k-1"}


async def test_an_unreachable_server_has_no_queue_depth_version_or_models() -> None:
    with fake_server() as server:
        root = server.root
    async with Endpoint(root) as endpoint:
        assert await endpoint.queue_depth() is None
        assert await endpoint.version() is None
        assert await endpoint.model_entries() == []


TOKENIZE_BODIES = web.AppKey("tokenize_bodies", list)


async def _tokenize_as_asked(request: web.Request) -> web.Response:
    """``/tokenize`` answering what the prompt asks for: ``status N``, ``no tokens``, else token ids."""
    body = await request.json()
    request.app[TOKENIZE_BODIES].append(body)
    prompt = body.get("prompt", "")
    if prompt.startswith("status "):
        return web.Response(status=int(prompt.split()[1]), text="refused")
    if prompt == "no tokens":
        return web.json_response({"count": 0})
    return web.json_response({"tokens": [7, 8, 9]})


async def test_tokenize_failures_are_classed_as_a_requests_would_be() -> None:
    """``--variant loglik`` stores an item whose prompt could not be tokenized as failed with the class a
    request's failure would get (its rerun retries the transient ones): pipeline.endpoint classes them."""
    app = web.Application()
    app[TOKENIZE_BODIES] = []
    app.router.add_post("/tokenize", _tokenize_as_asked)
    async with serving_app(app) as url, Endpoint(f"{url}/v1", "k-1") as endpoint:
        assert await endpoint.tokenize("m", "a base prompt", special_tokens=True) == [7, 8, 9]
        messages = [{"role": "user", "content": "hi"}]
        assert await endpoint.tokenize_chat(
            "m", messages, continue_final_message=True, add_generation_prompt=False,
            template_kwargs={"enable_thinking": False},
        ) == [7, 8, 9]  # fmt: skip
        classes = {}
        for prompt in ("status 500", "status 400", "status 401", "status 429", "no tokens"):
            with pytest.raises(TokenizeError) as caught:
                await endpoint.tokenize("m", prompt)
            classes[prompt] = caught.value.error_class
    assert classes == {
        "status 500": FailureClass.SERVER_ERROR,
        "status 400": FailureClass.BAD_REQUEST,
        "status 401": FailureClass.AUTH,  # a rejected key: fix it, rerunning alone will not help
        "status 429": FailureClass.RATE_LIMITED,
        "no tokens": FailureClass.INVALID_RESPONSE,
    }
    sent = app[TOKENIZE_BODIES]
    assert sent[0] == {"model": "m", "prompt": "a base prompt", "add_special_tokens": True}
    assert sent[1] == {
        "model": "m", "messages": messages, "add_generation_prompt": False, "continue_final_message": True,
        "add_special_tokens": False, "chat_template_kwargs": {"enable_thinking": False},
    }  # fmt: skip
    assert sent[2]["add_special_tokens"] is False  # a piece of a prompt: no BOS
    async with Endpoint(url) as endpoint:  # the server is gone
        with pytest.raises(TokenizeError) as caught:
            await endpoint.tokenize("m", "a")
    assert caught.value.error_class is FailureClass.CONNECTION
