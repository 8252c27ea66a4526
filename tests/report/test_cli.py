"""`medsweep report` end to end: files, permissions, last line, and the HTML seen in headless Chromium."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from tests.support.require import ran, unavailable
from tests.support.stores import build_pair_store


@pytest.fixture
def report_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    build_pair_store(tmp_path / "run")
    code = main(["report", "--out", str(tmp_path / "run"), "--pair", "bio-7b=base-7b", "--seed", "3"])
    assert code == 0
    return tmp_path / "run" / "report", capsys.readouterr().out


def test_report_writes_every_format_privately(report_dir: tuple[Path, str]) -> None:
    dest, out = report_dir
    last = out.strip().splitlines()[-1]
    assert last == f"HTML report: {(dest / 'report.html').resolve()}"
    names = {p.name for p in dest.iterdir()}
    expected = {
        "report.md",
        "report.html",
        "items.parquet",
        "leaderboard.csv",
        "paired.csv",
        "format_paired.csv",
        "task_metrics.csv",
        "levels.csv",
        "adherence.csv",
        "failures.csv",
        "forest_scores.png",
        "forest_format.png",
        "levels.png",
        "format_vs_score.png",
    }
    assert expected <= names
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    for path in dest.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "worse" in out and "Lost to their general base model: bio-7b vs base-7b." in out


def test_parquet_holds_per_item_records(report_dir: tuple[Path, str]) -> None:
    items = pl.read_parquet(report_dir[0] / "items.parquet")
    for column in (
        "model",
        "task",
        "subtask",
        "item_id",
        "prompt_hash",
        "output",
        "parsed_json",
        "strict_valid",
        "metrics_json",
        "latency_s",
        "prompt_tokens",
        "completion_tokens",
        "status",
    ):
        assert column in items.columns
    failed = items.filter(pl.col("status") == "failed")
    assert failed.height == 3 and failed["metrics_json"].null_count() == 3


def test_markdown_and_csv_hold_the_comparison(report_dir: tuple[Path, str]) -> None:
    paired = pl.read_csv(report_dir[0] / "paired.csv")
    assert paired.filter(pl.col("unit") == "mednli")["verdict"].item() == "worse"
    md = (report_dir[0] / "report.md").read_text()
    assert "## Biomedical vs general: task scores" in md and "| bio-7b | base-7b |" in md


def test_format_and_dest_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_pair_store(tmp_path / "run")
    dest = tmp_path / "elsewhere" / "rep"
    assert main(["report", "--out", str(tmp_path / "run"), "--format", "csv", "--dest", str(dest)]) == 0
    assert {p.suffix for p in dest.iterdir()} == {".csv"}
    assert stat.S_IMODE((tmp_path / "elsewhere").stat().st_mode) == 0o700
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("Report files:")
    assert main(["report", "--out", str(tmp_path / "run"), "--format", "pdf"]) == 2
    assert "unknown format(s) pdf" in capsys.readouterr().err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_shows_its_plots_in_headless_chromium(
    report_dir: tuple[Path, str], tmp_path: Path
) -> None:
    chromium = _chromium() or unavailable("chromium", "chromium not installed (apt-get install -y chromium)")
    ran("chromium")
    import numpy as np
    from PIL import Image

    html = report_dir[0] / "report.html"
    assert html.read_text().count("data:image/png;base64,") == 4
    shot = tmp_path / "shot.png"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        html.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2000)
    rgb = np.asarray(image, dtype=np.int32)
    non_white = float((rgb.min(axis=2) < 235).mean())
    # Text alone covers a few percent of the page; the plots (axes, markers, coloured bars) add much more.
    assert non_white > 0.03
    # The forest plot's red "worse" markers are on screen (text is grey/black, never saturated red).
    red = int(((rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).sum())
    assert red > 50
