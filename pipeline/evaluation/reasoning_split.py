"""Split a reasoning model's reply into its trace and its final answer (pure: no I/O, no state).

A server started with a reasoning parser does the split itself (``message.reasoning``, formerly
``reasoning_content``); without one the trace arrives at the start of the reply text, in one of two shapes:

- ``think-tags``: ``<think>trace</think>answer``. A reply that opens the tag and never closes it is all
  trace (the token budget ran out inside it). A reply whose prompt opened the tag (DeepSeek-R1's template)
  arrives as ``trace</think>answer``: split at the closing tag too.
- ``markdown-headings``: HuatuoGPT-o1 writes ``## Thinking`` ... ``## Final Response`` ...; a reply with
  the first heading and not the second is all trace.

``none`` keeps the reply as the answer. docs/reasoning.md describes what counts as no answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.request import DEFAULT_SPLITTER as DEFAULT_SPLITTER  # re-exported: the splitter's vocabulary
from pipeline.request import SPLITTERS as SPLITTERS
from pipeline.request import Splitter as Splitter

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINKING_HEADING, ANSWER_HEADING = "## Thinking", "## Final Response"


@dataclass(frozen=True, slots=True)
class Reply:
    """``answer`` is what is parsed and scored; ``reasoning`` the trace, ``None`` when there was none."""

    answer: str
    reasoning: str | None


def split_reply(text: str, splitter: Splitter = DEFAULT_SPLITTER) -> Reply:
    """The trace and the answer of a reply ``text`` that the server did not split."""
    if splitter == "think-tags":
        return _split_tags(text)
    if splitter == "markdown-headings":
        return _split_headings(text)
    return Reply(text, None)


def from_server(content: str | None, reasoning: str | None, splitter: Splitter = DEFAULT_SPLITTER) -> Reply:
    """A reply as the server sent it: its own trace field (``reasoning`` or ``reasoning_content``) wins;
    without one, ``content`` is split by ``splitter``."""
    if reasoning is not None:
        return Reply(content or "", reasoning)
    return split_reply(content or "", splitter)


def is_no_answer(reply: Reply, finish_reason: str | None) -> bool:
    """The token budget ran out inside the trace: a trace, no answer, and the reply stopped for length."""
    return reply.reasoning is not None and not reply.answer.strip() and finish_reason == "length"


def _split_tags(text: str) -> Reply:
    body = text.lstrip()
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN) :]
        trace, closed, answer = body.partition(THINK_CLOSE)
        return Reply(answer.strip() if closed else "", trace.strip())
    trace, closed, answer = text.partition(THINK_CLOSE)
    if closed:  # the prompt opened the tag: the reply starts inside the trace
        return Reply(answer.strip(), trace.strip())
    return Reply(text, None)


def _split_headings(text: str) -> Reply:
    body = text.lstrip()
    if body.startswith(THINK_OPEN):  # any model's reply that opens the tag is split at it
        return _split_tags(text)
    if not body.startswith(THINKING_HEADING):
        return Reply(text, None)
    body = body[len(THINKING_HEADING) :]
    trace, closed, answer = body.partition(ANSWER_HEADING)
    return Reply(answer.strip() if closed else "", trace.strip())
