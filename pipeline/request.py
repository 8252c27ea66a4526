"""One prompt to send, its sampling parameters, and the content key that identifies its result."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

EndpointKind = Literal["chat", "completion"]
Variant = Literal["paper", "structured", "loglik"]
"""``paper`` sends the paper's prompts; ``structured`` adds the answer's JSON schema as
``response_format`` for closed-answer tasks; ``loglik`` generates nothing: it scores each answer option of
the choice tasks by its log-probability after the paper's prompt (``pipeline.evaluation.loglik``). The
variants are never mixed in one score. Here, not in pipeline.config, so that `eval --help` lists them
without pydantic."""
# How a reasoning model's reply is split into its trace and its answer (pipeline.evaluation.reasoning_split
# does it). Here, beside the request, because the run config, the model registry and the CLI name it too.
Splitter = Literal["none", "think-tags", "markdown-headings"]
SPLITTERS: tuple[Splitter, ...] = ("none", "think-tags", "markdown-headings")
DEFAULT_SPLITTER: Splitter = "think-tags"  # every model, registry or not: a reply opening <think> is split


def merge_stops(first: Sequence[str], more: Sequence[str]) -> list[str]:
    """``first``, then the strings of ``more`` it lacks: stop lists add up (config, model, task), in order."""
    return [*first, *(s for s in more if s not in first)]


@dataclass(frozen=True, slots=True)
class Sampling:
    """Decoding parameters sent with every request. Defaults are greedy and seeded."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 1234
    stop: tuple[str, ...] = ()

    def as_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}
        if self.stop:
            body["stop"] = list(self.stop)
        return body


@dataclass(frozen=True, slots=True)
class Request:
    """A rendered prompt of one task item (and repeat), ready to send.

    ``messages`` is set for chat endpoints, ``prompt`` for completion endpoints. ``reference`` is the
    gold answer as the task's scorer expects it (JSON-serialisable). ``prefix_group`` names the long
    prefix the prompt shares with others (few-shot block, a patient's documents) so that requests of
    one group can be sent together and hit vLLM's prefix cache.
    """

    task: str
    item_id: str
    kind: EndpointKind
    max_tokens: int
    reference: Any
    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    subtask: str = ""
    repeat: int = 0
    response_format: dict[str, Any] | None = None
    prefix_group: str = ""
    extra_body: dict[str, Any] = field(default_factory=dict)
    # --variant loglik: the answer options, (label, continuation as the answer format writes it), in order;
    # empty for generated answers.
    choices: tuple[tuple[str, str], ...] = ()

    def prompt_payload(self) -> Any:
        return list(self.messages) if self.messages is not None else self.prompt

    def prompt_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.prompt_payload(), option=orjson.OPT_SORT_KEYS)).hexdigest()


def content_key(
    model_identity: str, request: Request, sampling: Sampling, options: Mapping[str, str] | None = None
) -> str:
    """sha256 over what determines the answer: never the URL, port or API key.

    The item's coordinates are part of the key so that two dataset rows with the same text (MeQSum has
    some) stay two results. ``options`` are the run's prompt choices (demonstrations, truncation).
    """
    material = {
        "model": model_identity,
        "item": (request.task, request.subtask, request.item_id, request.repeat),
        "kind": request.kind,
        "prompt": request.prompt_payload(),
        "max_tokens": request.max_tokens,
        "sampling": sampling.as_body(),
        "response_format": request.response_format,
        "extra": request.extra_body,
    }
    if request.choices:  # a scored-options result is never a generated one (and never keyed like one)
        material["choices"] = [list(choice) for choice in request.choices]
    if options:
        material["options"] = dict(options)
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def request_body(request: Request, served_model: str, sampling_body: Mapping[str, Any]) -> bytes:
    """The JSON body of ``request`` for the OpenAI-compatible endpoint serving it as ``served_model``.

    ``sampling_body`` is ``Sampling.as_body()`` (computed once per run, not per request). A task's extra
    fields go in last; its stop strings add to the sampling ones instead of replacing them.
    """
    body: dict[str, Any] = {"model": served_model, "max_tokens": request.max_tokens, **sampling_body}
    if request.messages is not None:
        body["messages"] = request.messages
    else:
        body["prompt"] = request.prompt
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.extra_body:
        extra = dict(request.extra_body)
        if "stop" in extra and "stop" in body:
            extra["stop"] = merge_stops(body["stop"], extra["stop"])
        body.update(extra)
    return orjson.dumps(body)
