"""Client CPU per request of medsweep's full eval path, beside a plain openai-SDK loop, in one run.

The server (tests/support/fakeserver.py) runs in its own process so that the client's CPU time
(``time.process_time`` of this process) is what is measured. Cases:

1. instant server, N chat requests at concurrency C: medsweep (client + pydantic validation + SQLite store +
   progress) vs ``AsyncOpenAI`` with a semaphore; prints ms of client CPU per request and the ratio;
2. a server that answers after 50 ms: wall time of N requests at concurrency 64 against the ideal
   ``N / 64 × 50 ms``, for medsweep and a bare aiohttp loop; then the same against a minimal asyncio server
   answering canned bytes, beside a raw asyncio-protocol client: the pair with the least work Python can
   do, which is this machine's floor for the case;
3. ``--rss N``: peak RSS of a medsweep run of N requests (run in a child process).

Usage: ``python bench/client_overhead.py [--requests 2000] [--concurrency 64] [--rss 100000]``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.evaluation.client import Client  # noqa: E402
from pipeline.evaluation.progress import Progress  # noqa: E402
from pipeline.evaluation.scheduler import EvalRun, EvalTarget  # noqa: E402
from pipeline.evaluation.tokens import EstimateCounter  # noqa: E402
from pipeline.request import Request  # noqa: E402
from pipeline.store.database import Store  # noqa: E402
from pipeline.tasks.base import RenderContext  # noqa: E402
from tests.support.servers import fake_server  # noqa: E402

_PROMPT = "Summarise this patient inquiry as one concise question. " * 8


class _SyntheticTask:
    """N distinct chat prompts of a realistic size (~500 characters); no dataset needed."""

    level = 1

    def __init__(self, n: int) -> None:
        self.n = n
        self.name = "bench"

    def data_path(self, data_dir: Path) -> Path:
        return data_dir

    def expected_count(self, data_dir: Path, limit: int | None) -> int:
        return self.n

    async def requests(self, data_dir: Path, ctx: RenderContext) -> AsyncIterator[Request]:
        system = {"role": "system", "content": "You are a highly skilled assistant."}
        for i in range(self.n):
            yield Request(
                task="bench",
                item_id=str(i),
                kind="chat",
                max_tokens=32,
                reference="Who makes cetirizine?",
                messages=(system, {"role": "user", "content": f"{_PROMPT} #{i}"}),
                prefix_group="bench",
            )


async def _medsweep(base_url: str, n: int, concurrency: int, out: Path) -> tuple[float, float]:
    config = load_config(
        None,
        {
            "endpoint": {"base_urls": [base_url]},
            "model": {"name": "fake-model"},
            "client": {"concurrency": concurrency, "backpressure": False},
            "run": {"out": out, "data_dir": out},
        },
        environ={},
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with Client(config.client, config.endpoint.base_urls) as client:
        store = Store.open(out)
        progress = Progress(["bench"], console=Console(file=io.StringIO()), log_every=1e9)
        target = EvalTarget("fake-model", "fake-model", "chat", 4096)
        run = EvalRun(config, target, [_SyntheticTask(n)], client, store, EstimateCounter(), progress)
        result = await run.run()
        store.close()
    assert result.sent == n, result
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def _openai_loop(base_url: str, n: int, concurrency: int) -> tuple[float, float]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.chat.completions.create(
                model="fake-model",
                messages=[
                    {"role": "system", "content": "You are a highly skilled assistant."},
                    {"role": "user", "content": f"{_PROMPT} #{i}"},
                ],
                max_tokens=32,
                temperature=0.0,
            )

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await client.close()
    return cpu, wall


def _bare_body(i: int) -> bytes:
    """The JSON body the two bare loops send: what medsweep sends, without its system message."""
    message = {"role": "user", "content": f"{_PROMPT} #{i}"}
    return json.dumps({"model": "fake-model", "messages": [message], "max_tokens": 32}).encode()


async def _raw_aiohttp(base_url: str, n: int, concurrency: int) -> float:
    """A bare aiohttp loop with no validation, store or progress (wall seconds)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            body = _bare_body(i)
            async with sem, session.post(f"{base_url}/chat/completions", data=body) as resp:
                await resp.read()

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start


_CANNED_BODY = json.dumps(
    {
        "id": "cmpl-canned",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Who?"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 2},
    }
).encode()
_CANNED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(_CANNED_BODY)
    + _CANNED_BODY
)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class _CannedServer(asyncio.Protocol):
    """Answers every request on the connection with the same bytes after ``delay`` seconds."""

    delay = 0.05

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            size = end + 4 + _content_length(bytes(self.buffer[:end]))
            if len(self.buffer) < size:
                return
            del self.buffer[:size]
            asyncio.get_running_loop().call_later(self.delay, self.transport.write, _CANNED_RESPONSE)


def _serve_canned(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_CannedServer, "127.0.0.1", port)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, Content-Length bodies only."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = bytearray()
        self.answer: asyncio.Future[bytes] | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        size = end + 4 + _content_length(bytes(self.buffer[:end]))
        if len(self.buffer) >= size and self.answer is not None:
            body = bytes(self.buffer[end + 4 : size])
            del self.buffer[:size]
            self.answer.set_result(body)

    def post(self, data: bytes) -> asyncio.Future[bytes]:
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.answer


async def _raw_protocol(port: int, n: int, concurrency: int) -> float:
    """The floor: pre-formatted requests written to a socket, answers sliced by Content-Length (wall s)."""
    loop = asyncio.get_running_loop()
    idle: list[_RawConnection] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        body = _bare_body(i)
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        async with sem:
            conn = (
                idle.pop() if idle else (await loop.create_connection(_RawConnection, "127.0.0.1", port))[1]
            )
            await conn.post(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            idle.append(conn)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - start
    for conn in idle:
        conn.transport.close()
    return wall


def _canned_server() -> tuple[subprocess.Popen[str], int]:
    from tests.support.ports import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--canned-server", str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, port


def _rss_child(n: int, concurrency: int) -> None:
    with fake_server() as server, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_medsweep(server.base_url, n, concurrency, Path(tmp)))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"requests": n, "peak_rss_mb": peak_kb / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument(
        "--rss", type=int, default=0, help="also measure peak RSS of a run of this many requests"
    )
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--canned-server", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.canned_server:
        _serve_canned(args.canned_server)
        return
    if args.rss_child:
        _rss_child(args.rss_child, args.concurrency)
        return

    n, c = args.requests, args.concurrency
    ours: list[float] = []
    theirs: list[float] = []
    with fake_server() as server:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                ours.append(asyncio.run(_medsweep(server.base_url, n, c, Path(tmp)))[0])
            theirs.append(asyncio.run(_openai_loop(server.base_url, n, c))[0])
    ms_ours, ms_theirs = min(ours) / n * 1e3, min(theirs) / n * 1e3
    print(
        f"instant server, {n} chat requests, concurrency {c}, client CPU per request (best of {args.rounds}):"
    )
    print(f"  medsweep full eval path : {ms_ours:.3f} ms")
    print(f"  openai SDK loop         : {ms_theirs:.3f} ms")
    print(f"  ratio medsweep / openai : {ms_ours / ms_theirs:.3f}")

    with fake_server("--delay", "0.05") as server, tempfile.TemporaryDirectory() as tmp:
        _, wall = asyncio.run(_medsweep(server.base_url, n, 64, Path(tmp)))
        floor = asyncio.run(_raw_aiohttp(server.base_url, n, 64))
    ideal = n / 64 * 0.05
    print(f"server answering after 50 ms, {n} requests at concurrency 64 (ideal {ideal:.2f} s):")
    print(
        f"  fake server   : medsweep {wall:.2f} s ({wall / ideal:.2f}x), "
        f"bare aiohttp {floor:.2f} s ({floor / ideal:.2f}x)"
    )
    proc, port = _canned_server()
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        with tempfile.TemporaryDirectory() as tmp:
            _, wall = asyncio.run(_medsweep(base_url, n, 64, Path(tmp)))
        floor = asyncio.run(_raw_aiohttp(base_url, n, 64))
        raw = asyncio.run(_raw_protocol(port, n, 64))
    finally:
        proc.kill()
        proc.wait()
    print(
        f"  canned bytes  : medsweep {wall:.2f} s ({wall / ideal:.2f}x), bare aiohttp {floor:.2f} s "
        f"({floor / ideal:.2f}x), raw asyncio protocol {raw:.2f} s ({raw / ideal:.2f}x, the machine's floor)"
    )

    if args.rss:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(args.rss), "--concurrency", str(c)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{data['requests']} requests: peak RSS {data['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
