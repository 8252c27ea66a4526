"""The order an eval sends its requests in: longest prompts first, so that the run ends on short ones.

A run's tail (nothing left to send, the last requests draining with the server's batch below its limit:
``tail_s`` of a sweep's timeline) lasts about as long as its slowest last requests. Sent last, a LongHealth
or discharge-letter prompt of thousands of tokens makes that tail long; sent first, it overlaps the rest.
So the requests still to send (resume skips the stored ones before this; the keys do not depend on the
order) are sent in descending prompt length, by the token estimate (``tokens.estimate_tokens``, the
prompt's characters / ``CHARS_PER_TOKEN``: no tokenizer round trip). Equal lengths keep the tasks' order
(shared prefixes adjacent).

The requests are sorted in windows, so that sending starts at once and memory stays bounded whatever the
run's size: the first ``FIRST_WINDOW`` requests, then windows ``GROWTH`` times the one before, up to
``WINDOW_REQUESTS`` requests or ``WINDOW_CHARS`` prompt characters, each sorted; the next window is rendered
while the current one is sent. The first is small because the server idles until it is rendered (a
LongHealth request's documents are counted by the server's tokenizer, a round trip each), and only the
last window makes the tail.
The order depends on the requests alone, never on timing. The last window, which makes the tail, is always
sorted.

``send_order`` is the one function that decides the order: the eval's producer and ``bench/replay.py``
(whose bare loop must send what medsweep sends, in its order) both call it. ``run.send_order = "data"``
(``--send-order data``) sends in the tasks' own order instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import TypeVar

from pipeline.config import SendOrder
from pipeline.evaluation.tokens import estimate_tokens
from pipeline.request import Request

FIRST_WINDOW = 4  # small: the first requests go out after this many are rendered
GROWTH = 4
WINDOW_REQUESTS = 4096
WINDOW_CHARS = 32_000_000  # about 32 MB of prompt text held at once

T = TypeVar("T")


def prompt_chars(request: Request) -> int:
    """The characters of the prompt (every message's content, or the completion prompt)."""
    if request.messages is not None:
        return sum(len(str(m.get("content") or "")) for m in request.messages)
    return len(request.prompt or "")


def prompt_size(request: Request) -> int:
    """The prompt's length in estimated tokens."""
    return estimate_tokens(prompt_chars(request))


async def send_order(
    items: AsyncIterable[T], order: SendOrder, request_of: Callable[[T], Request]
) -> AsyncGenerator[T, None]:
    """``items`` in the order they are to be sent (``request_of`` gives each one's request)."""
    source = aiter(items)
    if order == "data":
        async for item in source:
            yield item
        return

    async def window(most: int) -> list[T]:
        """The next ``most`` items (fewer at the end, or past WINDOW_CHARS), longest prompt first; equal
        lengths in their order."""
        taken: list[tuple[int, int, T]] = []
        chars = 0
        async for item in source:
            size = prompt_chars(request_of(item))
            taken.append((-estimate_tokens(size), len(taken), item))
            chars += size
            if len(taken) >= most or chars >= WINDOW_CHARS:
                break
        return [item for _, _, item in sorted(taken, key=lambda entry: (entry[0], entry[1]))]

    size = FIRST_WINDOW
    ahead = asyncio.ensure_future(window(size))
    try:
        while batch := await ahead:
            size = min(size * GROWTH, WINDOW_REQUESTS)
            ahead = asyncio.ensure_future(window(size))  # rendered while this one is sent
            for item in batch:
                yield item
    finally:
        ahead.cancel()
        await asyncio.gather(ahead, return_exceptions=True)
