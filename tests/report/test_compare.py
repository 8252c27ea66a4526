"""Paired comparisons, levels, failures and mixed-run checks on stores written with the real schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import ConfigError, DataError
from pipeline.report import build_report
from pipeline.report.pairs import parse_pair_flag
from tests.support.stores import PROMPTS, SAMPLING, StoreBuilder, add_constant_model, build_pair_store

PAIR = ["bio-7b=base-7b"]


def _row(frame: pl.DataFrame, unit: str) -> dict[str, object]:
    rows = frame.filter(pl.col("unit") == unit).to_dicts()
    assert len(rows) == 1, frame
    return rows[0]


@pytest.fixture
def pair_report(tmp_path: Path):  # type: ignore[no-untyped-def]
    build_pair_store(tmp_path / "run")
    return build_report([tmp_path / "run"], pair_flags=PAIR, seed=0, servers_dir=tmp_path / "no-servers")


def test_identical_models_differ_by_zero(tmp_path: Path) -> None:
    store = StoreBuilder(tmp_path / "run")
    for model in ("twin-a", "twin-b"):
        store.add_run(f"run-{model}", model)
        for i in range(25):
            store.add(f"run-{model}", model, "mednli", f"m{i}", {"accuracy": 100.0 if i % 3 else 0.0})
            store.add(
                f"run-{model}",
                model,
                "meqsum",
                f"q{i}",
                {"rougeL": 10.0 + i, "rouge1": 5.0 * (i % 4), "rouge2": 1.0, "bertscore_f1": 70.0},
            )
    store.close()
    report = build_report([tmp_path / "run"], pair_flags=["twin-a=twin-b"], servers_dir=tmp_path / "none")
    assert report.paired.height == 2
    for row in report.paired.to_dicts():
        assert row["mean_diff"] == 0.0
        assert row["ci_low"] <= 0.0 <= row["ci_high"]
        assert row["p_value"] == 1.0
        assert row["verdict"] == "no significant difference"
        assert row["wins"] == 0 and row["losses"] == 0 and row["ties"] == 25


def test_clearly_worse_biomedical_model_is_worse(pair_report) -> None:  # type: ignore[no-untyped-def]
    mednli = _row(pair_report.paired, "mednli")
    assert mednli["test"] == "McNemar exact (b=0, c=24)"
    assert mednli["mean_diff"] == pytest.approx(-60.0)  # 30% vs 90% accuracy
    assert mednli["p_value"] == pytest.approx(2 / 2**24)
    assert mednli["ci_high"] < 0
    assert (mednli["wins"], mednli["ties"], mednli["losses"]) == (0, 16, 24)
    assert mednli["verdict"] == "worse"
    meqsum = _row(pair_report.paired, "meqsum")  # continuous: rougeL 0 vs 50 on every item -> -12.5
    assert meqsum["test"].startswith("sign-flip permutation")
    assert meqsum["mean_diff"] == pytest.approx(-12.5)
    assert meqsum["verdict"] == "worse"
    # Holm: 8 comparisons, 6 with p = 1; the adjusted p is at least the raw one.
    assert pair_report.paired.height == 8
    assert all(r["p_holm"] >= r["p_value"] for r in pair_report.paired.to_dicts())
    assert mednli["p_holm"] == pytest.approx(8 * 2 / 2**24)
    for unit in ("longhealth/task1", "longhealth/task2", "longhealth/task3", "probsum"):
        assert _row(pair_report.paired, unit)["verdict"] == "no significant difference"
    assert "Lost to their general base model: bio-7b vs base-7b." in pair_report.summary


def test_format_adherence_is_compared(pair_report) -> None:  # type: ignore[no-untyped-def]
    row = _row(pair_report.format_paired, "mednli")
    assert row["mean_diff"] == pytest.approx(-50.0)  # valid 20/40 vs 40/40
    assert row["test"] == "McNemar exact (b=0, c=20)"
    assert row["verdict"] == "worse"
    assert any(
        line.startswith("Format: bio-7b follows the answer format less often") for line in pair_report.summary
    )


def test_failed_requests_are_excluded_and_counted(pair_report) -> None:  # type: ignore[no-untyped-def]
    fail = pair_report.failures.filter(
        (pl.col("model") == "bio-7b") & (pl.col("unit") == "meqsum")
    ).to_dicts()[0]
    assert (fail["results"], fail["failed"], fail["failed_by_class"]) == (33, 3, "timeout: 3")
    meqsum = _row(pair_report.paired, "meqsum")
    assert (meqsum["n_pairs"], meqsum["only_general"], meqsum["only_biomedical"]) == (30, 3, 0)
    bio_meqsum = pair_report.task_metrics.filter(
        (pl.col("model") == "bio-7b") & (pl.col("unit") == "meqsum") & (pl.col("metric") == "rouge1")
    ).to_dicts()[0]
    assert (bio_meqsum["n_items"], bio_meqsum["mean"]) == (30, 50.0)  # not dragged down by failures


def test_levels_follow_the_paper_aggregation(pair_report) -> None:  # type: ignore[no-untyped-def]
    levels = {r["model"]: r for r in pair_report.levels.to_dicts()}
    # base: mednli 90, meqsum 50, probsum 30 -> 56.67; longhealth (50, 50, 50), medisumqa 30, medisumcode 30.
    assert levels["base-7b"]["level1"] == pytest.approx((90 + 50 + 30) / 3)
    assert levels["base-7b"]["level2"] == pytest.approx((50 + 30 + 30) / 3)
    # bio: meqsum mean of (rougeL 0, rouge1 50, rouge2 50, bertscore 50) = 37.5.
    assert levels["bio-7b"]["level1"] == pytest.approx((30 + 37.5 + 30) / 3)
    assert "longhealth: task1_accuracy, task2_accuracy, task3_accuracy" in levels["bio-7b"]["metrics_used"]
    other = levels["other-3b"]
    assert other["level1"] is None and other["level2"] is None
    assert other["level1_partial"] == pytest.approx((60 + 20) / 2)
    assert "Level 1 lacks task(s) probsum" in other["missing"]
    board = pair_report.leaderboard()
    assert board["model"].to_list()[0] == "base-7b"
    assert dict(zip(board["model"], board["role"], strict=True)) == {
        "base-7b": "general",
        "bio-7b": "biomedical",
        "other-3b": "other",
    }


def test_missing_paper_metric_is_reported(tmp_path: Path) -> None:
    store = StoreBuilder(tmp_path / "run")
    add_constant_model(store, "r1", "solo", {"mednli": 80.0})
    store.add("r1", "solo", "meqsum", "q0", {"rougeL": 10.0, "rouge1": 10.0, "rouge2": 10.0})  # no bertscore
    store.close()
    report = build_report([tmp_path / "run"], servers_dir=tmp_path / "none")
    row = report.levels.to_dicts()[0]
    assert "meqsum.bertscore_f1" in row["missing"]
    assert row["level1"] is None


def _mixed_store(out: Path, **bio_run: object) -> None:
    store = StoreBuilder(out)
    store.add_run("run-gen", "gen")
    store.add_run("run-bio", "bio", **bio_run)  # type: ignore[arg-type]
    for model in ("gen", "bio"):
        for i in range(5):
            store.add(f"run-{model}", model, "mednli", f"m{i}", {"accuracy": 100.0})
    store.close()


def test_different_sampling_is_refused_with_the_field_named(tmp_path: Path) -> None:
    _mixed_store(tmp_path / "run", sampling=SAMPLING | {"temperature": 0.7})
    with pytest.raises(ConfigError) as info:
        build_report([tmp_path / "run"], pair_flags=["bio=gen"], servers_dir=tmp_path / "none")
    message = str(info.value)
    assert "'bio'" in message and "'gen'" in message
    assert "sampling.temperature differs on mednli" in message and "0.0" in message and "0.7" in message
    assert "--allow-mixed" in message
    report = build_report(
        [tmp_path / "run"], pair_flags=["bio=gen"], allow_mixed=True, servers_dir=tmp_path / "x"
    )
    assert any("sampling.temperature" in note for note in report.notes)
    assert report.paired.height == 1


def test_different_prompts_are_refused(tmp_path: Path) -> None:
    _mixed_store(tmp_path / "run", prompts=PROMPTS | {"mednli": "f" * 64})
    with pytest.raises(ConfigError, match=r"prompts_sha256\['mednli'\] differs"):
        build_report([tmp_path / "run"], pair_flags=["bio=gen"], servers_dir=tmp_path / "none")


def test_several_out_dirs_are_read_together(tmp_path: Path) -> None:
    for model, value in (("bio", 20.0), ("gen", 80.0)):
        store = StoreBuilder(tmp_path / model)
        add_constant_model(store, f"run-{model}", model, {"mednli": value}, n_items=10)
        store.close()
    report = build_report(
        [tmp_path / "bio", tmp_path / "gen"], pair_flags=["bio=gen"], servers_dir=tmp_path / "x"
    )
    assert len(report.stores) == 2
    assert _row(report.paired, "mednli")["mean_diff"] == pytest.approx(-60.0)
    # One folder holding the two run folders gives the same answer.
    nested = build_report([tmp_path], pair_flags=["bio=gen"], servers_dir=tmp_path / "x")
    assert _row(nested.paired, "mednli")["mean_diff"] == pytest.approx(-60.0)


def test_the_same_items_in_two_stores_are_refused(tmp_path: Path) -> None:
    for name in ("a", "b"):
        store = StoreBuilder(tmp_path / name)
        add_constant_model(store, f"run-{name}", "same-model", {"mednli": 50.0}, n_items=2)
        store.close()
    with pytest.raises(DataError, match="same-model"):
        build_report([tmp_path / "a", tmp_path / "b"], servers_dir=tmp_path / "x")


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no medsweep\.sqlite"):
        build_report([tmp_path], servers_dir=tmp_path)
    (tmp_path / "bad").mkdir()
    sqlite3.connect(tmp_path / "bad" / "medsweep.sqlite").execute(
        "CREATE TABLE runs(run_id TEXT)"
    ).connection.close()
    with pytest.raises(DataError, match="lacks column"):
        build_report([tmp_path / "bad"], servers_dir=tmp_path)
    with pytest.raises(ConfigError, match="BIO=GENERAL"):
        parse_pair_flag("just-one")


def test_registry_pairs_come_from_servers_toml(tmp_path: Path) -> None:
    build_pair_store(tmp_path / "run")
    servers = tmp_path / "servers"
    servers.mkdir()
    common = (
        'hf_id = "org/m"\nrevision = "main"\nparams_b = 7.0\nattention_heads = 32\n'
        'gpus = { 80 = 1, 40 = 1, 24 = 1 }\nmax_model_len = 8192\ndtype = "auto"\nchat_mode = "chat"\n'
    )
    (servers / "bio-7b.toml").write_text(common + 'role = "biomedical"\ncounterpart = "base-7b"\n')
    (servers / "base-7b.toml").write_text(common + 'role = "general"\n')
    report = build_report([tmp_path / "run"], servers_dir=servers)
    assert report.pairs[0].source == "registry"
    assert _row(report.paired, "mednli")["verdict"] == "worse"


def test_seed_makes_the_report_reproducible(tmp_path: Path) -> None:
    build_pair_store(tmp_path / "run")
    first = build_report([tmp_path / "run"], pair_flags=PAIR, seed=5, servers_dir=tmp_path / "x")
    again = build_report([tmp_path / "run"], pair_flags=PAIR, seed=5, servers_dir=tmp_path / "x")
    assert first.paired.equals(again.paired) and first.task_metrics.equals(again.task_metrics)


def test_a_task_the_registry_does_not_know_averages_no_lower_is_better_metric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.report.aggregate import used_metrics
    from pipeline.scoring import metrics

    available = {"accuracy", "accuracy_lenient", "refusals", "made_up"}
    assert used_metrics("retired-task", available) == (sorted(available), [])
    declared = dict(metrics.declared())
    declared["refusals"] = metrics.Metric("refusals", "refused%", "the model refused", "lower", (0.0, 100.0))
    monkeypatch.setattr(metrics, "declared", lambda: declared)
    assert used_metrics("retired-task", available) == (["accuracy", "accuracy_lenient", "made_up"], [])
    assert used_metrics("mednli", available) == (["accuracy"], [])
