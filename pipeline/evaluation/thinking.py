"""What a run asks of a reasoning model and how it reads the replies: the registry's ``reasoning`` table
(pipeline.models.registry.Reasoning) and ``--reasoning-split``, resolved once per run (docs/reasoning.md).

Requests: ``max_tokens`` = the thinking budget + the task's answer tokens (at least the registry's
``answer_tokens``); ``thinking_token_budget`` only where the server runs a reasoning parser (vLLM rejects it
otherwise); the chat template's switch in ``chat_template_kwargs``. All of it is in the request, so in its
content key and in ``results.request_json``; ``as_config`` goes into the run's recorded config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pipeline.evaluation.reasoning_split import DEFAULT_SPLITTER, Splitter
from pipeline.models.registry import Reasoning
from pipeline.request import Request


@dataclass(frozen=True, slots=True)
class Thinking:
    split: Splitter = DEFAULT_SPLITTER  # the client's splitter for replies the server did not split
    budget: int | None = None  # thinking tokens; None: not a reasoning model of the registry
    answer_tokens: int | None = None
    parser: str | None = None  # the server's vLLM reasoning parser
    template_kwargs: tuple[tuple[str, str | bool | int], ...] = ()

    @classmethod
    def resolve(cls, reasoning: Reasoning | None, override: Splitter | None = None) -> Thinking:
        """The registry entry's table (``None``: no table) with ``--reasoning-split`` over its splitter."""
        if reasoning is None:
            return cls(split=override or DEFAULT_SPLITTER)
        split = override or reasoning.split or DEFAULT_SPLITTER
        return cls(
            split=split, budget=reasoning.thinking_budget, answer_tokens=reasoning.answer_tokens,
            parser=reasoning.parser, template_kwargs=tuple(sorted(reasoning.chat_template_kwargs.items())),
        )  # fmt: skip

    def apply(self, request: Request) -> Request:
        """``request`` with the trace's budget and the template switch added."""
        if self.budget is None and not self.template_kwargs:
            return request
        extra = dict(request.extra_body)
        max_tokens = request.max_tokens
        if self.budget is not None:
            max_tokens = self.budget + max(request.max_tokens, self.answer_tokens or 0)
            if self.parser is not None:
                extra["thinking_token_budget"] = self.budget
        if self.template_kwargs and request.kind == "chat":
            extra["chat_template_kwargs"] = {
                **extra.get("chat_template_kwargs", {}),
                **dict(self.template_kwargs),
            }
        return dataclasses.replace(request, max_tokens=max_tokens, extra_body=extra)

    def prompt_room(self, max_model_len: int) -> int:
        """The context the prompt and the task's answer may use: the trace's budget is kept free."""
        return max_model_len - (self.budget or 0) - (self.answer_tokens or 0)

    def key_options(self) -> dict[str, str]:
        """Part of the content key when not the default: another splitter stores other answers."""
        return {} if self.split == DEFAULT_SPLITTER else {"reasoning_split": self.split}

    def as_config(self) -> dict[str, Any]:
        return {
            "split": self.split, "thinking_budget": self.budget, "answer_tokens": self.answer_tokens,
            "parser": self.parser, "chat_template_kwargs": dict(self.template_kwargs),
        }  # fmt: skip


NOT_THINKING = Thinking()  # a model without a reasoning table: only the default splitter applies
