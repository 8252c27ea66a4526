"""The serve state file (``.medsweep/serve.json``, mode 0600): what `medsweep serve` started and where.

`medsweep eval` reads it to find the endpoint; `medsweep stop` reads it to stop the server. It never holds a
key or token: only the *name* of the environment variable that holds the API key.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import ConfigError
from pipeline.files import private_dir, write_private
from pipeline.models.registry import Device

STATE_DIR_ENV = "MEDSWEEP_STATE_DIR"
STATE_FILE = "serve.json"


class ServeState(BaseModel):
    """One running server. ``url`` is the server root (``/health``, ``/tokenize``, ``/metrics``);
    ``openai_base_url`` is ``url + "/v1"`` for OpenAI-style clients."""

    model_config = ConfigDict(extra="forbid")

    url: str
    openai_base_url: str
    served_model: str
    served_models: list[str] = Field(default_factory=list)  # every name it answers to (LoRA: the base too)
    model: str  # registry name (servers/<model>.toml)
    engine: str  # a name of pipeline.serving.engines.ENGINES
    device: Device = "gpu"
    host: str
    port: int
    container_id: str | None = None
    pid: int | None = None
    boot_id: str | None = None  # with pid_start: who ``pid`` is (pipeline/proc.py); stop checks both
    pid_start: int | None = None
    hf_id: str | None = None
    revision: str | None = None
    image: str | None = None
    image_id: str | None = None  # `docker image inspect` .Id of the image that ran (content address)
    image_digests: list[str] = Field(default_factory=list)  # its registry digests, when it came from one
    offers: dict[str, bool] = Field(default_factory=dict)  # what the endpoint serves (engines.base.Offers)
    gpus: list[int] = Field(default_factory=list)
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    memory_class: int | None = None
    max_model_len: int | None = None
    chat_mode: str | None = None
    stop: list[str] = Field(default_factory=list)
    api_key_env: str | None = None  # name of the variable holding the key; never the key
    log_path: str | None = None
    started_at: float = Field(default_factory=time.time)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        from pipeline.serving.engines import check_engine_name  # the engines import this module's neighbours

        try:
            return check_engine_name(name, "engine")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


def state_dir() -> Path:
    """``$MEDSWEEP_STATE_DIR`` or ``./.medsweep``."""
    return Path(os.environ.get(STATE_DIR_ENV) or ".medsweep")


def state_path(path: Path | None = None) -> Path:
    return path if path is not None else state_dir() / STATE_FILE


def read_state(path: Path | None = None) -> ServeState | None:
    """The recorded server, or None when nothing is being served. A corrupt file is a ConfigError."""
    p = state_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"{p}: cannot read the serve state file ({exc.strerror}); check its permissions"
        ) from exc
    try:
        return ServeState.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ConfigError(f"{p}: not a valid serve state file ({exc.__class__.__name__}); delete it") from exc


def write_state(state: ServeState, path: Path | None = None) -> Path:
    """Write atomically with mode 0600 in a 0700 directory."""
    p = state_path(path)
    private_dir(p.parent)
    return write_private(p, state.model_dump_json(indent=2) + "\n", atomic=True)


def clear_state(path: Path | None = None) -> None:
    state_path(path).unlink(missing_ok=True)
