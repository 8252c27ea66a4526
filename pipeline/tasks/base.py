"""What every task provides to the eval loop: request expansion. Its scorer and metrics are declared in its
module (``TaskDef``, ``pipeline.tasks.registry``), from the parsers and metrics of ``pipeline.scoring``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pipeline.config import ChatMode, Demonstrations, Variant
from pipeline.request import Request

AppliedTruncation = Literal["v3", "letters"]
"""``v3``: the request asks the server to keep the end of the whole prompt (``truncate_prompt_tokens``);
``letters``: the task cuts each letter itself (``pipeline.evaluation.truncation``)."""


class TokenCounter(Protocol):
    """Counts and truncates text in the served model's tokens (server ``/tokenize``, local, or estimate)."""

    @property
    def exact(self) -> bool: ...

    async def count(self, text: str) -> int: ...

    async def truncate(self, text: str, max_tokens: int, *, keep: Literal["start", "end"]) -> str: ...


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What request expansion needs to know about the model and the run."""

    chat_mode: ChatMode
    max_model_len: int
    counter: TokenCounter
    variant: Variant = "paper"
    limit: int | None = None
    demonstrations: Demonstrations = "v3"
    truncation: AppliedTruncation = "letters"


class Task(Protocol):
    """A task of the study. ``name`` is the CLI name (``mednli``, ``longhealth``...)."""

    name: str

    def data_path(self, data_dir: Path) -> Path:
        """The dataset file this task reads, under ``data_dir`` (``<task>/<original file name>``)."""
        ...

    def expected_count(self, data_dir: Path, limit: int | None) -> int:
        """How many requests ``requests`` will yield (for progress totals), without rendering them."""
        ...

    def requests(self, data_dir: Path, ctx: RenderContext) -> AsyncIterator[Request]:
        """Yield the task's requests lazily, ordered so that shared prefixes are adjacent."""
        ...


class DatasetTask(Task, Protocol):
    """A task read from a dataset file (every registered task; the eval loop's tests use bare ``Task``s)."""

    def rows(self, data_dir: Path) -> int:
        """How many rows the dataset has (``medsweep data check``); DataError if it does not load."""
        ...
