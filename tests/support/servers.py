"""Start real HTTP servers on 127.0.0.1 for tests: our fault-injecting fake server, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests.support.paths import REPO_ROOT as REPO
from tests.support.ports import free_port

FAKESERVER = Path(__file__).with_name("fakeserver.py")


@dataclass
class ServerControl:
    """The test controls of a fake server listening on ``port`` (started here or elsewhere, e.g. in a job)."""

    port: int

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.root}/_stats", timeout=10).json()
        return data

    def release(self, n: int | None = None) -> dict[str, Any]:
        """Let ``n`` more held requests through (``None``: stop holding, let every request through)."""
        params = {} if n is None else {"n": str(n)}
        data: dict[str, Any] = httpx.post(f"{self.root}/_release", params=params, timeout=10).json()
        return data

    def hold(self) -> None:
        """Hold every request from now on, with no permits left over."""
        httpx.post(f"{self.root}/_hold", timeout=10).raise_for_status()

    def wait_held(self, n: int, timeout: float = 120.0, *, answered: int = 0) -> dict[str, Any]:
        """Block until ``n`` requests are held at the server and it has given ``answered`` answers in all (a
        long poll: it returns once they are)."""
        params = {"held": n, "answered": answered, "timeout": timeout}
        resp = httpx.get(f"{self.root}/_wait", params=params, timeout=timeout + 10)
        data: dict[str, Any] = resp.json()
        if resp.status_code != 200:
            raise AssertionError(
                f"never {n} requests held with {answered} answered within {timeout:g} s: {data}"
            )
        return data

    def requests(self) -> list[dict[str, Any]]:
        """The last request bodies the server received (oldest first)."""
        data: list[dict[str, Any]] = httpx.get(f"{self.root}/_requests", timeout=10).json()
        return data


@dataclass
class RunningServer(ServerControl):
    process: subprocess.Popen[bytes]
    args: list[str]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def restart(self, wait: bool = True) -> None:
        self.process = _spawn(self.args)
        if wait:
            wait_ready(self.root, process=self.process)


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(FAKESERVER), *args], env=env, stdin=subprocess.DEVNULL)


def wait_ready(root: str, timeout: float = 120.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until the server at ``root`` answers ``/health``. The deadline is generous (a loaded machine
    starts a Python process slowly); a ``process`` that exits ends the wait at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"fake server at {root} exited with status {process.returncode} before it was ready"
            )
        try:
            if httpx.get(f"{root}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"fake server at {root} did not start within {timeout:g} s")


@contextmanager
def fake_server(*extra: str, port: int | None = None) -> Iterator[RunningServer]:
    port = port or free_port()
    args = ["--port", str(port), *extra]
    server = RunningServer(port, _spawn(args), args)
    try:
        wait_ready(server.root, process=server.process)
        yield server
    finally:
        server.process.kill()
        server.process.wait()


@asynccontextmanager
async def serving_app(app: web.Application) -> AsyncIterator[str]:
    """``app`` served in this process on a free 127.0.0.1 port, for a test that records what a client sends;
    yields its root URL (no path) and stops it after."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
