"""``MEDSWEEP_REQUIRE`` (tests/support/require.py): a required real component that cannot start fails its
tests, naming why; not required, they skip as before. Shown on the real-Docker tests with a PATH that holds
no dockerd, in a pytest of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO_ROOT

DOCKER_TEST = "tests/serving/test_docker_real.py::test_serve_eval_stop_on_the_cpu_image"


def _pytest(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MEDSWEEP_REQUIRE"}
    env["PATH"] = str(tmp_path)  # an empty folder: no dockerd, no docker CLI
    if require is not None:
        env["MEDSWEEP_REQUIRE"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", DOCKER_TEST],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_required_dockerd_that_cannot_start_fails_the_run_naming_why(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "docker,slurm")
    assert run.returncode == 1, run.stdout[-2000:]
    assert (
        "docker is required (MEDSWEEP_REQUIRE) but unavailable: no private dockerd: dockerd not" in run.stdout
    )
    assert "docker (private dockerd, docker-compose, required): FAILED: no private dockerd" in run.stdout


def test_not_required_it_skips_and_the_summary_says_so(tmp_path: Path) -> None:
    run = _pytest(tmp_path, None)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "1 skipped" in run.stdout
    assert "docker (private dockerd, docker-compose): skipped: no private dockerd: dockerd not" in run.stdout
    assert "slurm (one-node Slurm cluster): not used by the selected tests" in run.stdout


def test_an_unknown_component_is_a_one_line_usage_error(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "docker,gpu")
    assert run.returncode == 4
    assert "MEDSWEEP_REQUIRE: unknown component(s) gpu; known: docker,slurm,chromium,vllm,tmpfs" in run.stderr
