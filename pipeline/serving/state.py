"""The serve state file (``.medsweep/serve.json``, mode 0600): the ``RunningServer`` `medsweep serve`
started (pipeline.serving.running), as JSON.

`medsweep eval` reads it to find the endpoint; `medsweep stop` reads it to stop the server. It never holds a
key or token: only the *name* of the environment variable that holds the API key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import ConfigError
from pipeline.files import private_dir, write_private
from pipeline.serving.engines import ENGINE_NAMES
from pipeline.serving.running import RunningServer

STATE_DIR_ENV = "MEDSWEEP_STATE_DIR"
STATE_FILE = "serve.json"


def state_dir() -> Path:
    """``$MEDSWEEP_STATE_DIR`` or ``./.medsweep``."""
    return Path(os.environ.get(STATE_DIR_ENV) or ".medsweep")


def state_path(path: Path | None = None) -> Path:
    return path if path is not None else state_dir() / STATE_FILE


def read_state(path: Path | None = None) -> RunningServer | None:
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
        server = RunningServer.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ConfigError(f"{p}: not a valid serve state file ({exc.__class__.__name__}); delete it") from exc
    if server.engine not in ENGINE_NAMES:
        raise ConfigError(
            f"{p}: not a valid serve state file (unknown engine {server.engine!r}; medsweep knows "
            f"{', '.join(ENGINE_NAMES)}); delete it"
        )
    return server


def write_state(state: RunningServer, path: Path | None = None) -> Path:
    """Write atomically with mode 0600 in a 0700 directory."""
    p = state_path(path)
    private_dir(p.parent)
    return write_private(p, state.model_dump_json(indent=2) + "\n", atomic=True)


def clear_state(path: Path | None = None) -> None:
    state_path(path).unlink(missing_ok=True)
