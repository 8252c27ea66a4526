"""Turn prompt texts into what an endpoint takes, in the three ways the v3 code did.

- ``chat``: system, (user, assistant) x k demonstrations, user query, as messages.
- ``chat_nosystem``: the same, with the system text merged into the first user turn as
  ``f"{sys}\\n\\n{user}"``.
- ``base``: one completion prompt, ``f"{sys}\\n\\n{user}\\n\\n{assistant}"``, then
  ``f"\\n\\n{user}\\n\\n{assistant}"`` per further demonstration, then ``f"\\n\\n{user}\\n\\n"``.

A ``prefill`` (v3 appended the assistant prefix, e.g. ``"ICD-10 Codes: "``, after the generation prompt) ends
a completion prompt, or is sent as a final assistant message that vLLM continues
(``continue_final_message``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import ChatMode
from pipeline.request import EndpointKind

_CONTINUE = {"add_generation_prompt": False, "continue_final_message": True}


@dataclass(frozen=True, slots=True)
class Rendered:
    kind: EndpointKind
    messages: tuple[dict[str, str], ...] | None = None
    prompt: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

    def texts(self) -> list[str]:
        """The text pieces the model reads (without any chat template), for token budgets."""
        if self.messages is not None:
            return [m["content"] for m in self.messages]
        return [self.prompt or ""]

    @property
    def n_messages(self) -> int:
        return len(self.messages) if self.messages is not None else 1


def _message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def render_few_shot(
    mode: ChatMode, system: str, demos: Sequence[tuple[str, str]], query: str, prefill: str = ""
) -> Rendered:
    """Render ``demos`` (user, assistant) pairs and the ``query`` user text in ``mode``."""
    if mode == "base":
        parts: list[str] = []
        for index, (user, assistant) in enumerate(demos):
            parts.append(f"{system}\n\n{user}\n\n{assistant}" if index == 0 else f"\n\n{user}\n\n{assistant}")
        parts.append(f"\n\n{query}\n\n" if demos else f"{system}\n\n{query}\n\n")
        return Rendered(kind="completion", prompt="".join(parts) + prefill)

    turns: list[tuple[str, str]] = [*demos]
    users = [u for u, _ in turns] + [query]
    if mode == "chat_nosystem":
        users[0] = f"{system}\n\n{users[0]}"
        messages: list[dict[str, str]] = []
    else:
        messages = [_message("system", system)]
    for index, (_, assistant) in enumerate(turns):
        messages += [_message("user", users[index]), _message("assistant", assistant)]
    messages.append(_message("user", users[-1]))
    extra: dict[str, Any] = {}
    if prefill:
        messages.append(_message("assistant", prefill))
        extra = dict(_CONTINUE)
    return Rendered(kind="chat", messages=tuple(messages), extra_body=extra)


def render_longhealth(
    mode: ChatMode, system: str, user: str, *, nosystem_join: str, base_join: str
) -> Rendered:
    """LongHealth's own layout: system + user messages, ``system + user`` as one turn, or
    ``system + "\\n\\n\\n" + user`` as a completion prompt (joins from prompts/longhealth.toml)."""
    if mode == "base":
        return Rendered(kind="completion", prompt=f"{system}{base_join}{user}")
    if mode == "chat_nosystem":
        return Rendered(kind="chat", messages=(_message("user", f"{system}{nosystem_join}{user}"),))
    return Rendered(kind="chat", messages=(_message("system", system), _message("user", user)))
