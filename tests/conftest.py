"""Fixtures shared by every test folder, and a header saying which real components this run can use.

Layout: one folder per area (engine, reliability, report, scoring, serving, sweep, tasks), top-level files for
what crosses areas (the real CPU vLLM, the built wheel, the registry), and ``tests/support/`` for what tests
share (servers, synthetic data, store builders, paths). A test imports helpers from ``tests.support``, never
from another test file.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.paths import REPO_ROOT
from tests.support.servers import RunningServer, fake_server


def pytest_report_header() -> list[str]:
    def have(found: bool) -> str:
        return "yes" if found else "no (its tests skip)"

    vllm = (REPO_ROOT / ".venv-vllm" / "bin" / "vllm").exists()
    return [
        f"real components: CPU vLLM {have(vllm)}; dockerd {have(shutil.which('dockerd') is not None)}; "
        f"slurmctld {have(shutil.which('slurmctld') is not None)}; "
        f"chromium {have(shutil.which('chromium') is not None)}; "
        f"chromedriver {have(shutil.which('chromedriver') is not None)}"
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """A well-behaved fake OpenAI-compatible server (no faults) shared by a module's tests."""
    with fake_server() as running:
        yield running
