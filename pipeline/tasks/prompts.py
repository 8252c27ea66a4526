"""The prompt files (``prompts/<task>.toml``): texts, few-shot settings, budgets and answer schemas."""

from __future__ import annotations

import hashlib
import os
import string
import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError
from pipeline.paths import PROMPTS_DIR


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """Where a task's dataset comes from. ``url``/``sha256`` are set for the publicly downloadable ones."""

    file: str
    access: Literal["public", "credentialed"]
    get: str
    url: str = ""
    sha256: str = ""
    license: str = ""


class PromptTexts(_Strict):
    system: str
    user: str
    assistant: str = ""
    prefill: str = ""
    few_shot: int = Field(ge=0)
    # Demonstrations written in the prompt file (``[[prompt.examples]]``: the template fields of one row
    # each), sent before the ``few_shot`` ones taken from the data; none of the CLUE tasks has any.
    examples: tuple[dict[str, str], ...] = ()
    shuffle: bool = False
    shuffle_seed: int = 1
    max_new_tokens: int = Field(gt=0)
    stop: tuple[str, ...] = ()
    truncate_fields: tuple[str, ...] = ()
    # v3's whole-prompt truncation keeps the last min(max_model_len - truncate_reserve, truncate_cap) tokens;
    # the reserve defaults to max_new_tokens (what every v3 script but MedNLI's subtracted).
    truncate_reserve: int | None = Field(default=None, ge=0)
    truncate_cap: int | None = Field(default=None, gt=0)

    @property
    def v3_reserve(self) -> int:
        return self.max_new_tokens if self.truncate_reserve is None else self.truncate_reserve


class Structured(_Strict):
    name: str
    json_schema: dict[str, Any] = Field(alias="schema")


class LongHealthSettings(_Strict):
    repeats: int = Field(gt=0)
    document_separator: str
    option_f: str
    distractors: int = Field(ge=0)
    task1_max_len: int = Field(gt=0)
    task23_max_len: int = Field(ge=0)
    head_task23_max_len: int = 0
    gold_match: Literal["first", "last"]
    head_gold_match: Literal["first", "last"] = "first"
    nosystem_join: str
    base_join: str
    truncate_subtasks: tuple[str, ...] = ()


class Loglik(_Strict):
    """The answer options ``--variant loglik`` scores, written as the paper's answer format writes them.

    Few-shot tasks: each of ``values`` put into the assistant template's ``field`` (MedNLI's labels into
    ``{gold_label}``). LongHealth: ``answer`` formatted with an option's ``label`` and ``text``."""

    field: str = ""
    values: tuple[str, ...] = ()
    answer: str = ""


class TaskPrompts(_Strict):
    source: dict[str, str]
    data: DataSource
    prompt: PromptTexts
    head: dict[str, Any] = Field(default_factory=dict)
    structured: Structured | None = None
    longhealth: LongHealthSettings | None = None
    loglik: Loglik | None = None


class Budget(_Strict):
    """Token reserve for the chat template around the message texts (prompts/budget.toml)."""

    template_base_tokens: int = Field(ge=0)
    per_message_tokens: int = Field(ge=0)

    def reserve(self, n_messages: int) -> int:
        return self.template_base_tokens + self.per_message_tokens * n_messages


def prompts_dir() -> Path:
    """The shipped ``prompts/``, or ``$MEDSWEEP_PROMPTS_DIR`` (e.g. an edited copy)."""
    override = os.environ.get("MEDSWEEP_PROMPTS_DIR")
    return Path(override) if override else PROMPTS_DIR


def prompt_path(task: str) -> Path:
    return prompts_dir() / f"{task}.toml"


def prompt_sha256(task: str) -> str:
    """The hash of the prompt file, for ``runs.config_json.prompts_sha256``."""
    return hashlib.sha256(prompt_path(task).read_bytes()).hexdigest()


def prompt_hashes(tasks: Sequence[str]) -> dict[str, str]:
    """sha256 of each task's prompt file: runs made with different prompts are never paired."""
    # A task without a prompt file (one defined in code, as in the eval loop's tests) hashes to "".
    return {name: prompt_sha256(name) if prompt_path(name).exists() else "" for name in tasks}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing: restore it from the repository (prompts/)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def _validation_message(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{path}: field '{where}': {first['msg']}"


@cache
def _load_cached(path: Path) -> TaskPrompts:
    try:
        spec = TaskPrompts.model_validate(_read_toml(path))
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc) + "; fix the prompt file") from None
    for name in ("system", "user", "assistant", "prefill"):
        _check_template(path, name, getattr(spec.prompt, name))
    return spec


def load_prompts(task: str) -> TaskPrompts:
    return _load_cached(prompt_path(task))


@cache
def _load_budget(path: Path) -> Budget:
    try:
        return Budget.model_validate(_read_toml(path))
    except ValidationError as exc:
        raise ConfigError(_validation_message(path, exc) + "; fix the budget file") from None


def load_budget() -> Budget:
    return _load_budget(prompts_dir() / "budget.toml")


def template_fields(template: str) -> set[str]:
    """The ``{name}`` fields a str.format template uses (``{{``/``}}`` are literal braces)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _check_template(path: Path, name: str, template: str) -> None:
    try:
        fields = template_fields(template)
    except ValueError as exc:
        raise ConfigError(
            f"{path}: prompt.{name} is not a valid str.format template ({exc}); "
            "write literal braces as {{ }}"
        ) from None
    bad = [f for f in fields if not f.isidentifier()]
    if bad:
        raise ConfigError(f"{path}: prompt.{name} has fields {bad} that are not plain names; use {{field}}")


def response_format(structured: Structured, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAI ``response_format`` that constrains the answer to ``structured``'s JSON schema."""
    return {
        "type": "json_schema",
        "json_schema": {"name": structured.name, "schema": schema or structured.json_schema, "strict": True},
    }
