"""Run configuration: pydantic models read from a TOML file, overridden by environment and flags.

Precedence, lowest first: defaults < TOML file < environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``) <
command-line flags. Unknown keys and bad values are errors that name the field.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pipeline.errors import ConfigError
from pipeline.paths import RESULTS_DIR, default_data_dir
from pipeline.request import Sampling, Splitter
from pipeline.request import Variant as Variant  # re-exported: a run setting, defined beside the request

ChatMode = Literal["chat", "chat_nosystem", "base"]
"""How a prompt is rendered: chat with a system role, chat with the system text merged into the first
user turn, or one plain-text completion prompt (base models)."""


Demonstrations = Literal["v3", "shuffled"]
"""Which rows are the few-shot demonstrations: ``v3`` as the code behind the published numbers chose them
per task (the prompt file's ``shuffle``); ``shuffled``: every task shuffled with its seed first (HEAD)."""

SendOrder = Literal["longest_first", "data"]
"""The order an eval sends its requests in: ``longest_first`` (default) by descending estimated prompt
length, so that the run ends on short requests and its tail is short; ``data``: the tasks' own order
(``pipeline.evaluation.send_order``). Results and their keys do not depend on it."""

Truncation = Literal["auto", "v3", "letters"]
"""How an over-long prompt is fitted to the context: ``v3`` sends ``truncate_prompt_tokens`` (the server keeps
the end of the whole prompt, as TGI's ``truncate`` did in v3); ``letters`` cuts each letter to an equal share
of the budget and keeps the system prompt; ``auto`` is ``v3`` on vLLM endpoints, else ``letters``
(``pipeline.evaluation.truncation``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointConfig(_Strict):
    """Where requests go. Several base URLs are replicas of one model, balanced by the client."""

    base_urls: tuple[str, ...] = ()
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)

    @field_validator("base_urls")
    @classmethod
    def _normalise(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalise_base_url(u) for u in urls)


class ModelConfig(_Strict):
    """Which model answers. ``name`` is a registry name (servers/) or the served model id."""

    name: str = ""
    served_name: str = ""
    revision: str = ""
    chat_mode: ChatMode = "chat"
    max_model_len: int | None = Field(default=None, gt=0)

    @property
    def identity(self) -> str:
        """What the content key hashes: the model, never the URL it is served at."""
        base = self.name or self.served_name
        return f"{base}@{self.revision}" if self.revision else base


class SamplingConfig(_Strict):
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 1234
    stop: tuple[str, ...] = ()

    def to_sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=self.stop)


class ClientConfig(_Strict):
    concurrency: int = Field(default=64, ge=1, le=4096)
    rate: float | None = Field(default=None, gt=0, description="requests per second cap")
    timeout: float = Field(default=600.0, gt=0, description="seconds for one attempt")
    max_attempts: int = Field(default=8, ge=1)
    max_retry_time: float = Field(default=1800.0, gt=0, description="seconds across all attempts")
    backoff_base: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    backpressure: bool = True
    max_waiting: int = Field(default=16, ge=0, description="target vllm:num_requests_waiting")


class RunConfig(_Strict):
    tasks: tuple[str, ...] = ()
    data_dir: Path = Field(default_factory=default_data_dir)
    out: Path = RESULTS_DIR
    limit: int | None = Field(default=None, ge=1)
    variant: Variant = "paper"
    demonstrations: Demonstrations = "v3"
    truncation: Truncation = "auto"
    # How replies the server did not split are cut into trace and answer: over the registry's choice
    # (default think-tags; docs/reasoning.md).
    reasoning_split: Splitter | None = None
    recheck: int = Field(default=0, ge=0, description="committed items re-sent one at a time after the run")
    send_order: SendOrder = "longest_first"
    # False: generate only and leave scoring to `score_stored` (the sweep scores after the server is
    # stopped, so the GPUs are not held through CPU-only scoring; docs/sweeps.md, docs/slurm.md).
    score: bool = True


class EvalConfig(_Strict):
    endpoint: EndpointConfig = EndpointConfig()
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()
    client: ClientConfig = ClientConfig()
    run: RunConfig = RunConfig()

    def public_dict(self) -> dict[str, Any]:
        """What may be written to disk: no API key, no URLs (they can carry credentials)."""
        data = self.model_dump(mode="json", exclude={"endpoint"})
        data["endpoint"] = {"replicas": len(self.endpoint.base_urls)}
        return data


def normalise_base_url(url: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all mean ``http://h:8000/v1``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"base URL {url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)"
        )
    return url if url.endswith("/v1") else f"{url}/v1"


# The user:password@ part of any URL in a text (RFC 3986 userinfo: no "/", "@" or whitespace in it).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def without_credentials(text: str) -> str:
    """``text`` with every URL's credentials (``https://user:token@host``) replaced by ``***``: what may be
    printed or written. Requests still use the URL as given."""
    return _USERINFO.sub(r"\1***@", text)


def server_root(base_url: str) -> str:
    """``http://h:p/v1/`` -> ``http://h:p``: vLLM serves /health, /tokenize, /metrics at the root."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def read_config_file(path: Path) -> dict[str, dict[str, Any]]:
    """A TOML config file by section; a missing file, bad TOML or a bare top-level key is a ConfigError."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    sections: dict[str, dict[str, Any]] = {}
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        sections[section] = values
    return sections


def load_config(
    path: Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
    *,
    sections: dict[str, dict[str, Any]] | None = None,
) -> EvalConfig:
    """Build the configuration: TOML file, then environment, then ``overrides`` (flags, by section).

    ``sections`` is the file's content when the caller has already read ``path`` with `read_config_file`.
    """
    env = os.environ if environ is None else environ
    if sections is None:
        sections = read_config_file(path) if path is not None else {}
    data = {section: dict(values) for section, values in sections.items()}
    endpoint = data.setdefault("endpoint", {})
    if env.get("OPENAI_BASE_URL"):
        endpoint["base_urls"] = [env["OPENAI_BASE_URL"]]
    if env.get("OPENAI_API_KEY"):
        endpoint["api_key"] = env["OPENAI_API_KEY"]
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    where = f"{path}: " if path else ""
    if first["type"] == "extra_forbidden":
        return f"{where}unknown field {field!r}: remove it or check its spelling (see docs/eval.md)"
    given = first.get("input")
    shown = "" if isinstance(given, dict) or "api_key" in field else f" (got {given!r})"
    return f"{where}field {field!r}: {first['msg']}{shown}"
