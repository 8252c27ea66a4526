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

from tests.support import cpu_vllm as shared
from tests.support import require
from tests.support.cpu_vllm import SharedVllm
from tests.support.dockerd import Dockerd, DockerdUnavailable, start_dockerd
from tests.support.paths import REPO_ROOT
from tests.support.servers import RunningServer, fake_server


def pytest_configure(config: pytest.Config) -> None:
    try:
        require.required()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header() -> list[str]:
    def have(found: bool) -> str:
        return "yes" if found else "no (its tests skip)"

    vllm = shared.missing() is None
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
    if shared.STARTS:
        ready = ", ".join(f"{s.base} ready after {s.ready_after_s:.0f} s" for s in shared.STARTS)
        terminalreporter.write_line(f"shared CPU vLLM servers: {len(shared.STARTS)} start(s) ({ready})")


@pytest.fixture(autouse=True)
def _cpu_vllm_set_up(request: pytest.FixtureRequest) -> None:
    """A test marked ``vllm`` needs the CPU vLLM installed by `make setup-server`; it skips (or fails, when
    required) without it. The server itself is the shared ``cpu_vllm`` (or, for a test of starting one, the
    test's own)."""
    if request.node.get_closest_marker("vllm") is None:
        return
    reason = shared.missing()
    if reason is not None:
        require.unavailable("vllm", reason)
    require.ran("vllm")


@pytest.fixture(scope="session")
def _cpu_vllm_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedVllm]:
    # Session fixtures are set up before the function-scoped check above: the same check, here too.
    reason = shared.missing()
    if reason is not None:
        require.unavailable("vllm", reason)
    with shared.shared_vllm(tmp_path_factory.mktemp("cpu-vllm")) as running:
        yield running


@pytest.fixture
def cpu_vllm(_cpu_vllm_session: SharedVllm) -> SharedVllm:
    """THE real CPU vLLM server of the session (tests/support/cpu_vllm.py): started once, at the first test
    that asks for it, and stopped by its pid when the session ends. Every real-vLLM test uses it (and is
    marked ``vllm``), unless what it tests is starting or stopping a server itself.

    It serves SmolLM2-135M-Instruct as ``cpu_vllm.base`` and its registry LoRA adapters
    (``cpu_vllm.adapters``: the demo's ``smollm2-135m-meqsum-lora``), max-model-len 2048, no API key, at
    ``cpu_vllm.base_url`` (``.../v1``) and ``cpu_vllm.root``. A test uses it like any endpoint::

        env = medsweep_env(tmp_path / "state")  # its own state folder, no OPENAI_* from outside
        run_medsweep("eval", "--base-url", cpu_vllm.base_url, "--model", cpu_vllm.base,
                     "--out", str(tmp_path / "out"), ..., env=env)

    Each test keeps its own store and output folder (under ``tmp_path``) and its own state folder; results
    are keyed by the model name, so a test that needs served names of its own adds adapters under them in
    ``EXTRA_LORA_MODULES`` (or evaluates with ``--served-name``).

    A test may NOT: stop, signal or restart it (`medsweep stop` cannot reach it: it has no state file);
    load or unload adapters at run time; rely on counters or caches being fresh (vLLM's metrics and prefix
    cache carry over from earlier tests: compare before and after); assert exact model text (greedy output
    differs between core settings). Its launch flags are extended in ONE place, ``EXTRA_VLLM_FLAGS`` and
    ``EXTRA_LORA_MODULES`` in tests/support/cpu_vllm.py (e.g. a reasoning parser, a larger logprobs
    limit), never by a second server per test. A test that kills it fails every later one: each use checks
    that it is still up, and fails with its log otherwise. Skips, saying why, where `make setup-server` was
    not done (fails when ``MEDSWEEP_REQUIRE`` names vllm)."""
    return _up(_cpu_vllm_session, "the shared CPU vLLM server")


def _up(server: SharedVllm, what: str) -> SharedVllm:
    """``server`` while it runs; else the test fails with why and its log (an earlier test killed it)."""
    reason = server.alive()
    if reason is not None:
        pytest.fail(f"{what} is down ({reason}):\n{server.log_tail()}")
    return server


@pytest.fixture(scope="session")
def _cpu_vllm_thinking_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedVllm]:
    reason = shared.missing(shared.THINKING)
    if reason is not None:
        require.unavailable("vllm", reason)
    log_dir = tmp_path_factory.mktemp("cpu-vllm-thinking")
    with shared.shared_vllm(log_dir, shared.THINKING, (shared.THINKING_UNBUDGETED,)) as running:
        yield running


@pytest.fixture
def cpu_vllm_thinking(_cpu_vllm_thinking_session: SharedVllm) -> SharedVllm:
    """The session's second real CPU vLLM server, for reasoning tests only (tests/test_vllm_reasoning.py):
    the test model ``smollm2-135m-think`` (SmolLM2 with `<think>`/`</think>` as tokens, a template that opens
    `<think>`) with ``--reasoning-parser deepseek_r1``, also served as ``smollm2-135m-think-unbudgeted`` (a
    name the registry does not know: no thinking budget). Why not ``cpu_vllm``: ``THINKING`` in
    tests/support/cpu_vllm.py. Started once, at its first use; the same rules as ``cpu_vllm``."""
    return _up(_cpu_vllm_thinking_session, "the thinking CPU vLLM server")


@pytest.fixture(scope="session")
def _cpu_vllm_plain_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedVllm]:
    reason = shared.missing(shared.PLAIN)
    if reason is not None:
        require.unavailable("vllm", reason)
    log_dir = tmp_path_factory.mktemp("cpu-vllm-plain")
    with shared.shared_vllm(log_dir, shared.PLAIN, (shared.PLAIN_COMPLETION,)) as running:
        yield running


@pytest.fixture
def cpu_vllm_plain(_cpu_vllm_plain_session: SharedVllm) -> SharedVllm:
    """A real CPU vLLM server of SmolLM2-135M-Instruct without LoRA, for prompt log-probabilities only
    (tests/test_vllm_loglik.py), also served as ``smollm2-135m-completion`` (a name the registry does not
    know: evaluated with ``--chat-mode base``). Why not ``cpu_vllm``: ``PLAIN`` in tests/support/cpu_vllm.py.
    Started once, at its first use; the same rules as ``cpu_vllm``."""
    return _up(_cpu_vllm_plain_session, "the LoRA-less CPU vLLM server")


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
