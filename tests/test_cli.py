"""The CLI as a pipeline's first stage: a reader that goes away is not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT


def test_a_closed_pipe_ends_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write (`medsweep models --json | head -0`)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "models", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 141


def test_the_defaults_are_defined_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Where results go and which data is read when none is named: the CLI, a config file and a sweep's
    # plan agree (pipeline.paths); data/ is read where it exists, else the synthetic demo data.
    from pipeline.config import load_config
    from pipeline.paths import DATA_DIR, DEMO_DATA_DIR, RESULTS_DIR
    from pipeline.sweep.plan import SweepSettings

    monkeypatch.chdir(tmp_path)
    config = load_config(None, {}, environ={}, sections={"run": {}})
    sweep = SweepSettings(out=tmp_path / "sweep", gpus=(0,))
    assert (config.run.out, config.run.data_dir, sweep.data_dir) == (
        RESULTS_DIR,
        DEMO_DATA_DIR,
        DEMO_DATA_DIR,
    )
    (tmp_path / "data").mkdir()
    config = load_config(None, {}, environ={}, sections={"run": {}})
    sweep = SweepSettings(out=tmp_path / "sweep", gpus=(0,))
    assert (config.run.data_dir, sweep.data_dir) == (DATA_DIR, DATA_DIR)
    for command in ("eval", "status"):
        shown = subprocess.run(
            [sys.executable, "-m", "pipeline", command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert f"(default: {RESULTS_DIR})" in " ".join(shown.split())
