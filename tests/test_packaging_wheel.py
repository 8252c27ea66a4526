"""A built wheel, installed in a clean venv and run from another folder, lists the registry and evaluates.

This is the claim of the packaging (pyproject.toml's wheel target, pipeline/paths.py): prompts/, servers/ and
demo_data/ travel inside the wheel and are found there, never through the repository or the current folder.
Building the wheel and installing its dependencies into a fresh venv takes about a minute.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT as REPO
from tests.support.servers import fake_server

pytestmark = pytest.mark.wheel


@dataclass(frozen=True)
class Installed:
    venv: Path
    elsewhere: Path  # a folder with nothing of the repository in it: the current directory of every command
    env: dict[str, str]

    def medsweep(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "medsweep"), *args], cwd=self.elsewhere, env=self.env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel")
    # Nothing of this test's own environment may leak in: no PYTHONPATH to the checkout, no active venv,
    # no endpoint or key from the developer's shell.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "OPENAI_BASE_URL"}}
    env["OPENAI_API_KEY"] = "unused"
    dist = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)], root, env)
    (wheel,) = dist.glob("medsweep-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], root, env)  # a clean venv: no system site-packages
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], root, env)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    yield Installed(venv, elsewhere, env)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    probe = "import pipeline.paths as p; print(p.PROMPTS_DIR); print(p.SERVERS_DIR); print(p.DEMO_DATA_DIR)"
    done = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", probe], cwd=installed.elsewhere, env=installed.env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        folder = Path(line)
        assert folder.is_dir() and folder.is_relative_to(installed.venv), line


def test_the_demo_adapter_ships_in_the_wheel_and_verifies_there(installed: Installed) -> None:
    probe = (
        "from pipeline.models.registry import get_model; from pipeline.serving.lora import verify; "
        "cfg = get_model('smollm2-135m-meqsum-lora'); verify([cfg]); print(cfg.adapter.folder)"
    )
    done = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", probe], cwd=installed.elsewhere, env=installed.env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.venv), done.stdout


def test_models_lists_the_registry_from_the_wheel(installed: Installed) -> None:
    done = installed.medsweep("models", "--json")
    assert done.returncode == 0, done.stderr
    names = {row["name"] for row in json.loads(done.stdout)}
    assert names == {path.stem for path in (REPO / "servers").glob("*.toml")}


def test_eval_scores_a_task_on_the_shipped_demo_data(installed: Installed) -> None:
    out = installed.elsewhere / "out"
    with fake_server() as server:
        done = installed.medsweep(
            "eval", "--base-url", server.base_url, "--model", "fake-model", "--task", "mednli",
            "--limit", "2", "--out", str(out),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # No data/ in the current folder: the eval reads the synthetic demo data that came with the wheel.
    assert f"using the synthetic {installed.venv}" in done.stderr, done.stderr
    status = installed.medsweep("status", "--out", str(out), "--json")
    assert status.returncode == 0, status.stderr
    counts = json.loads(status.stdout)
    assert (counts["total"], counts["succeeded"], counts["pending"]) == (2, 2, 0)
    report = installed.medsweep("report", "--out", str(out), "--format", "csv")
    assert report.returncode == 0, report.stderr
    with (out / "report" / "task_metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["task"] == "mednli" and r["metric"] == "accuracy"]
    assert [(r["model"], r["n_items"]) for r in rows] == [("fake-model", "2")]
