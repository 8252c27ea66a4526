"""`make serve MODEL=... GPUS=...` is a contract: the exact medsweep command it runs."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.paths import REPO_ROOT as REPO


def _planned(*assignments: str) -> str:
    out = subprocess.run(
        ["make", "-n", "serve", *assignments], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return next(line for line in out.splitlines() if " serve" in line and "medsweep" in line).strip()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_passes_model_and_gpus() -> None:
    line = _planned("MODEL=meta-llama-3.1-70b-instruct", "GPUS=0,1,2,3")
    assert line.endswith("medsweep serve --model meta-llama-3.1-70b-instruct --gpus 0,1,2,3")
    assert _planned().endswith("medsweep serve")  # no MODEL: the embedded CPU default
