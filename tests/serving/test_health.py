"""The readiness wait (pipeline.endpoint.Endpoint.wait_healthy) against a real HTTP server on 127.0.0.1 that
becomes ready late (503 first)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.config import server_root
from pipeline.endpoint import Endpoint
from pipeline.errors import EndpointError
from tests.support.ready_later import ReadyLaterServer


def wait_healthy(
    url: str,
    timeout: float,
    api_key: str | None = None,
    served_model: str | None = None,
    alive: Callable[[], str | None] | None = None,
    poll_interval: float = 1.0,
) -> dict[str, Any]:
    return Endpoint(url, api_key).wait_healthy(timeout, served_model, alive, poll_interval)


@pytest.fixture
def late_server() -> Iterator[ReadyLaterServer]:
    with ReadyLaterServer(not_ready=3, model="smollm") as server:
        yield server


def test_waits_through_503_then_returns_models(late_server: ReadyLaterServer) -> None:
    body = wait_healthy(late_server.url + "/v1", timeout=30, served_model="smollm", poll_interval=0.05)
    assert [m["id"] for m in body["data"]] == ["smollm"]
    assert late_server.health_calls == 4  # three 503s, then the 200


def test_times_out_naming_last_status() -> None:
    with ReadyLaterServer(not_ready=10**9) as server:
        # The deadline leaves room for 40 polls: two at least, on a slow machine too.
        with pytest.raises(EndpointError, match=r"not ready after 2 s \(last: /health HTTP 503\)"):
            wait_healthy(server.url, timeout=2.0, poll_interval=0.05)
        assert server.health_calls >= 2


def test_wrong_model_is_not_ready() -> None:
    with (
        ReadyLaterServer(not_ready=0, model="other") as server,
        pytest.raises(EndpointError, match=r"lists \['other'\], not 'smollm'"),
    ):
        wait_healthy(server.url, timeout=0.2, served_model="smollm", poll_interval=0.05)


def test_exited_process_stops_the_wait_at_once() -> None:
    with ReadyLaterServer(not_ready=10**9) as server:
        with pytest.raises(EndpointError, match="exited before it was ready: process exited with status 1"):
            wait_healthy(
                server.url, timeout=60, alive=lambda: "process exited with status 1", poll_interval=0.05
            )
        assert server.health_calls == 1


def test_api_key_is_sent_and_a_wrong_one_is_reported() -> None:
    with ReadyLaterServer(not_ready=0, api_key="k-123") as server:
        wait_healthy(server.url, timeout=5, api_key="k-123", poll_interval=0.05)
        assert server.auth_headers[-1] == "Bearer k-123"
        with pytest.raises(EndpointError, match="HTTP 401: the API key is missing or wrong"):
            wait_healthy(server.url, timeout=5, api_key="wrong", poll_interval=0.05)


def test_connection_refused_counts_as_not_ready() -> None:
    with ReadyLaterServer() as server:
        port = server.port
    with pytest.raises(EndpointError, match="ConnectError"):
        wait_healthy(f"http://127.0.0.1:{port}", timeout=0.2, poll_interval=0.05)


@pytest.mark.parametrize(
    ("given", "root"),
    [("http://h:1/v1", "http://h:1"), ("http://h:1/v1/", "http://h:1"), ("http://h:1", "http://h:1")],
)
def test_server_root(given: str, root: str) -> None:
    assert server_root(given) == root
