"""Wait until a vLLM server answers: ``/health`` 200, then ``/v1/models`` 200 (listing the served model)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from pipeline.config import server_root, without_credentials
from pipeline.errors import EndpointError


def wait_healthy(
    base_url: str,
    timeout: float,
    api_key: str | None = None,
    served_model: str | None = None,
    alive: Callable[[], str | None] | None = None,
    poll_interval: float = 1.0,
    request_timeout: float = 5.0,
) -> dict[str, Any]:
    """Poll until the server is ready and return the ``/v1/models`` body.

    ``alive`` is called between polls; when it returns a reason (the process or container exited), waiting
    stops at once with EndpointError. Timeout also raises EndpointError naming the last thing seen. With
    ``timeout=0`` it is a single probe (the sweep's watchdog), each HTTP call bounded by ``request_timeout``.
    """
    root = server_root(base_url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=httpx.Timeout(request_timeout), headers=headers) as client:
        while True:
            body = _probe(client, root, served_model)
            if isinstance(body, dict):
                return body
            last = body
            if alive is not None and (reason := alive()) is not None:
                raise EndpointError(
                    f"server at {without_credentials(root)} exited before it was ready: {reason}"
                )
            if time.monotonic() >= deadline:
                raise EndpointError(
                    f"server at {without_credentials(root)} not ready after {timeout:.0f} s (last: {last})"
                )
            time.sleep(poll_interval)


def _probe(client: httpx.Client, root: str, served_model: str | None) -> dict[str, Any] | str:
    """The models body when ready, else a short description of what was seen."""
    try:
        health = client.get(f"{root}/health")
        if health.status_code != 200:
            return f"/health HTTP {health.status_code}"
        models = client.get(f"{root}/v1/models")
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}"
    if models.status_code in (401, 403):
        raise EndpointError(
            f"{without_credentials(root)}/v1/models: HTTP {models.status_code}: "
            "the API key is missing or wrong"
        )
    if models.status_code != 200:
        return f"/v1/models HTTP {models.status_code}"
    try:
        body: dict[str, Any] = models.json()
        ids = [m["id"] for m in body["data"]]
    except (ValueError, KeyError, TypeError):
        return "/v1/models: unexpected body"
    if served_model is not None and served_model not in ids:
        return f"/v1/models lists {ids}, not {served_model!r}"
    return body
