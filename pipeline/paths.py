"""Where medsweep's data folders are: the one place that knows the layout of a checkout and of a wheel.

The folders ``prompts/``, ``servers/``, ``demo_data/`` and ``docker/`` stay at the top of the repository (the
design card's layout). A built wheel carries them inside the package as ``pipeline/_data/<folder>`` (the build
backend's force-include, pyproject.toml). So a folder is looked up there first and, in a checkout (editable
install or a plain ``PYTHONPATH``), where it lives in the repository. Nothing here depends on the current
directory, except the user's two defaults at the end (where results go, where datasets are read), which are
relative to it by design.
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

# The user's defaults, defined once: the CLI, config files (pipeline.config.RunConfig), the sweep's plans and
# bench/ all read these. Relative to where medsweep runs.
RESULTS_DIR = Path("results")
"""Where results go when no ``--out`` (or ``[run] out``) is given."""
DATA_DIR = Path("data")
"""The user's datasets (``medsweep data fetch`` writes here)."""


def default_data_dir() -> Path:
    """``data/`` where it exists, else the synthetic ``demo_data/``: what eval, a sweep and data check read
    when no data folder is named."""
    return DATA_DIR if DATA_DIR.is_dir() or not DEMO_DATA_DIR.is_dir() else DEMO_DATA_DIR
