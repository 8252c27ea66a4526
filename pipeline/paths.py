"""Where medsweep's data folders are: the one place that knows the layout of a checkout and of a wheel.

The folders ``prompts/``, ``servers/``, ``demo_data/`` and ``docker/`` stay at the top of the repository (the
design card's layout). A built wheel carries them inside the package as ``pipeline/_data/<folder>`` (the build
backend's force-include, pyproject.toml). So a folder is looked up there first and, in a checkout (editable
install or a plain ``PYTHONPATH``), where it lives in the repository. Nothing here depends on the current
directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_SHIPPED = _PACKAGE / "_data"

REPO_ROOT = _PACKAGE.parent
"""The checkout: where `make setup-server` builds `.venv-vllm` and `models/`, and where `git` runs."""


def shipped_dir(name: str) -> Path:
    """The data folder ``name``: inside an installed wheel, else the checkout's top-level folder."""
    inside = _SHIPPED / name
    return inside if inside.is_dir() else REPO_ROOT / name


PROMPTS_DIR = shipped_dir("prompts")
SERVERS_DIR = shipped_dir("servers")
DEMO_DATA_DIR = shipped_dir("demo_data")
DOCKER_DIR = shipped_dir("docker")
