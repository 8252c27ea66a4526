"""`medsweep sweep --plan P --estimate` and the cost model behind it (pipeline/sweep/estimate.py): no server
is started; the figures come from pipeline/sweep/costs.toml and, where the plan's data_dir has them, the
data."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.sweep.estimate import (
    ModelEstimate,
    estimate,
    load_costs,
    request_seconds,
    simulate,
    task_costs,
)
from pipeline.sweep.plan import load_plan, resolve_models
from tests.support.servers import REPO

SMALL, BIG = "meta-llama-3-8b-instruct", "meta-llama-3-70b-instruct"


def _plan(tmp_path: Path, models: list[str], sweep: str) -> Path:
    path = tmp_path / "plan.toml"
    body = "".join(f'[[models]]\nname = "{m}"\n\n' for m in models)
    path.write_text(f'[sweep]\nout = "{tmp_path / "out"}"\n{sweep}\n\n{body}')
    return path


def test_the_packing_starts_each_server_when_the_sweep_would() -> None:
    # 4 GPUs: the 70B (largest first) takes them all; the two 8B models start together when it ends.
    servers = [
        ModelEstimate("small-a", 1, "c", load_s=10, generate_s=90),
        ModelEstimate("big", 4, "c", load_s=50, generate_s=950),
        ModelEstimate("small-b", 1, "c", load_s=10, generate_s=190),
    ]
    study = simulate(servers, [0, 1, 2, 3])
    starts = {m.name: m.start_s for m in study.models}
    assert starts == {"big": 0.0, "small-a": 1000.0, "small-b": 1000.0}
    assert study.makespan_s == 1200.0
    assert study.gpu_hours == pytest.approx((100 + 4 * 1000 + 200) / 3600)
    assert study.lower_bound_s == pytest.approx((100 + 4000 + 200) / 4)


def test_a_models_time_is_its_load_and_its_requests_share_of_the_server(tmp_path: Path) -> None:
    path = _plan(tmp_path, [SMALL], 'gpus = [0]\ntasks = ["mednli", "longhealth"]\ndata_dir = "nowhere"')
    plan = load_plan(path)
    costs = load_costs()
    study = estimate(plan.sweep, resolve_models(plan, path), costs, None)
    cls = costs.server_for(8.03)
    tasks = task_costs(costs, ["mednli", "longhealth"], None)
    expected = sum(t.requests * request_seconds(cls, t) for t in tasks.values())
    (model,) = study.models
    assert model.load_s == cls.load_s and model.generate_s == pytest.approx(expected)
    assert study.makespan_s == pytest.approx(cls.load_s + expected)


def test_the_datas_own_counts_replace_the_full_tasks() -> None:
    costs = load_costs()
    demo = task_costs(costs, ["mednli", "longhealth"], REPO / "demo_data")
    full = task_costs(costs, ["mednli", "longhealth"], None)
    assert demo["mednli"].requests == 9 and demo["longhealth"].requests == 90  # the synthetic files
    assert full["mednli"].requests == 1419
    assert demo["mednli"].source.startswith("counted in ") and demo["mednli"].prompt_tokens > 0


def test_a_limit_counts_the_requests_of_the_first_items() -> None:
    """A LongHealth question is 15 requests (3 sub-tasks x 5 orderings): a limit of 1 counts 15 where the
    data is, and caps the cost model's request count where it is not."""
    costs = load_costs()
    demo = task_costs(costs, ["mednli", "longhealth"], REPO / "demo_data", limit=1)
    assert demo["mednli"].requests == 1 and demo["longhealth"].requests == 15
    full = task_costs(costs, ["mednli"], None, limit=7)
    assert full["mednli"].requests == 7


def test_cli_estimate_prints_makespan_and_gpu_hours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _plan(tmp_path, [SMALL, BIG, "mistral-7b-instruct-v0.2"], 'gpus = [0, 1, 2, 3]\ndata_dir = "none"')
    assert main(["sweep", "--plan", str(path), "--estimate"]) == 0
    out = capsys.readouterr().out
    for name in (SMALL, BIG, "mistral-7b-instruct-v0.2"):
        assert name in out
    assert "makespan " in out and "on 4 GPUs" in out and "GPU-hours" in out and "--time=" in out
    assert "# longhealth: 6,000 requests" in out  # no data: the full task's figures
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_cli_estimate_of_a_slurm_plan_runs_every_job_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _plan(tmp_path, [SMALL, BIG], 'scheduler = "slurm"\ndata_dir = "none"')
    assert main(["sweep", "--plan", str(path), "--estimate"]) == 0
    assert "each model its own Slurm job" in capsys.readouterr().out


def test_cli_estimate_of_a_bad_plan_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _plan(tmp_path, ["zephyr-7b-bet"], "gpus = [0]")
    assert main(["sweep", "--plan", str(path), "--estimate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "models[0].name" in err and "zephyr-7b-beta" in err


def test_a_bad_cost_file_names_its_field(tmp_path: Path) -> None:
    bad = tmp_path / "costs.toml"
    bad.write_text(
        (REPO / "pipeline/sweep/costs.toml").read_text().replace("decode_tps = 3200", "decode_tps = 0")
    )
    with pytest.raises(ConfigError, match=r"costs.toml: field 'server.0.decode_tps'"):
        load_costs(bad)
