"""The pinned vLLM OpenAI-server images, read from ``docker/vllm.env`` (one place for the pins): the GPU image
(``VLLM_IMAGE``) and the locally built CPU image (``VLLM_CPU_IMAGE``, `make image-cpu`)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.models.registry import Device
from pipeline.paths import DOCKER_DIR

VLLM_ENV_FILE = DOCKER_DIR / "vllm.env"
# The variable of docker/vllm.env that pins each device's image; the same name in the environment overrides.
IMAGE_VARIABLES: dict[Device, str] = {"gpu": "VLLM_IMAGE", "cpu": "VLLM_CPU_IMAGE"}


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


def pinned_image(device: Device = "gpu", path: Path = VLLM_ENV_FILE) -> str:
    """The image for ``device``: ``$VLLM_IMAGE`` / ``$VLLM_CPU_IMAGE`` if set (an explicit override), else
    the same variable from docker/vllm.env."""
    variable = IMAGE_VARIABLES[device]
    override = os.environ.get(variable)
    if override:
        return override
    try:
        image = read_env_file(path).get(variable)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: missing; it pins the vLLM images (VLLM_IMAGE=vllm/vllm-openai:vX.Y.Z)"
        ) from exc
    if not image:
        raise ConfigError(f"{path}: no {variable}=... line")
    return image
