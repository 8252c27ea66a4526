"""Fixtures shared by every test folder, a header saying which real components this run can use, and a
closing summary saying which of them ran (tests/support/require.py: ``MEDSWEEP_REQUIRE`` turns their skips
into failures).

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

from tests.support import require
from tests.support.dockerd import Dockerd, DockerdUnavailable, start_dockerd
from tests.support.paths import REPO_ROOT
from tests.support.servers import RunningServer, fake_server

_CPU_VLLM = REPO_ROOT / ".venv-vllm" / "bin" / "vllm"
_CPU_MODEL = REPO_ROOT / "models" / "smollm2-135m-instruct" / ".converted"


def pytest_configure(config: pytest.Config) -> None:
    try:
        require.required()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header() -> list[str]:
    def have(found: bool) -> str:
        return "yes" if found else "no (its tests skip)"

    vllm = _CPU_VLLM.exists()
    return [
        f"real components: CPU vLLM {have(vllm)}; dockerd {have(shutil.which('dockerd') is not None)}; "
        f"slurmctld {have(shutil.which('slurmctld') is not None)}; "
        f"chromium {have(shutil.which('chromium') is not None)}; "
        f"chromedriver {have(shutil.which('chromedriver') is not None)}",
        f"required ({require.ENV}): {','.join(sorted(require.required())) or 'none'}",
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_sep("-", "real components")
    for line in require.summary_lines():
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _cpu_vllm_set_up(request: pytest.FixtureRequest) -> None:
    """A test marked ``vllm`` needs the CPU vLLM installed by `make setup-server`; it skips (or fails, when
    required) without it. The server itself is started by the test's own fixture."""
    if request.node.get_closest_marker("vllm") is None:
        return
    if not _CPU_VLLM.exists() or not _CPU_MODEL.exists():
        require.unavailable("vllm", "the CPU vLLM server is not set up: run `make setup-server`")
    require.ran("vllm")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """A well-behaved fake OpenAI-compatible server (no faults) shared by a module's tests."""
    with fake_server() as running:
        yield running


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """A private Docker engine for the session (tests/support/dockerd.py); skips (fails when required),
    saying why, only where it cannot start. Afterwards no container labelled medsweep.managed=1 may be left
    (they are removed, and the session fails)."""
    try:
        daemon = start_dockerd()
    except DockerdUnavailable as exc:
        require.unavailable("docker", f"no private dockerd: {exc}")
    require.ran("docker")
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
