"""The pinned vLLM OpenAI-server image, read from ``docker/vllm.env`` (one place for the pin)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.paths import DOCKER_DIR

VLLM_ENV_FILE = DOCKER_DIR / "vllm.env"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped (the subset docker's --env-file reads)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {stripped!r}")
        values[key.strip()] = value.strip()
    return values


def pinned_image(path: Path = VLLM_ENV_FILE) -> str:
    """``$VLLM_IMAGE`` if set (an explicit override), else VLLM_IMAGE from docker/vllm.env."""
    override = os.environ.get("VLLM_IMAGE")
    if override:
        return override
    try:
        image = read_env_file(path).get("VLLM_IMAGE")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: missing; it pins the vLLM image (VLLM_IMAGE=vllm/vllm-openai:vX.Y.Z)"
        ) from exc
    if not image:
        raise ConfigError(f"{path}: no VLLM_IMAGE=... line")
    return image
