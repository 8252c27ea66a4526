"""Fixtures shared by every test folder, and a header saying which real components this run can use.

Layout: one folder per area (engine, reliability, report, scoring, serving, sweep, tasks), top-level files for
what crosses areas (the real CPU vLLM, the built wheel, the registry), and ``tests/support/`` for what tests
share (servers, synthetic data, store builders, paths). A test imports helpers from ``tests.support``, never
from another test file.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.dockerd import Dockerd, DockerdUnavailable, start_dockerd
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


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A private Docker engine for the session (tests/support/dockerd.py); skips, saying why, only where it
    cannot start. Afterwards no container labelled medsweep.managed=1 may be left (they are removed, and
    the session fails)."""
    try:
        daemon = start_dockerd()
    except DockerdUnavailable as exc:
        pytest.skip(f"no private dockerd: {exc}")
    try:
        yield daemon
        left = daemon.docker("ps", "-aq", "--filter", "label=medsweep.managed=1").stdout.split()
        for container in left:
            daemon.docker("rm", "-f", container)
        assert not left, f"containers labelled medsweep.managed=1 left after the tests: {left}"
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def cpu_image(dockerd: Dockerd) -> str:
    """The CPU vLLM image in the private engine, built by `make image-cpu`'s script when missing (about 10
    minutes the first time on 2 cores; cached under .cache/ afterwards)."""
    from pipeline.serving.image import pinned_image

    image = pinned_image("cpu")
    if dockerd.docker("image", "inspect", image).returncode != 0:
        build = subprocess.run(
            ["nice", "-n", "10", str(REPO_ROOT / "scripts" / "build_image_cpu.sh")],
            env=dockerd.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert build.returncode == 0, f"building {image} failed:\n{build.stderr[-3000:]}"
    return image
