"""Sweep plan loading, GPU packing and `medsweep sweep --dry-run` (no servers started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.sweep.packing import Need, allocate, pack
from pipeline.sweep.plan import load_plan, resolve_models

INVENTORY = [0, 1, 2, 3, 4, 5, 6, 7]


def _plan(tmp_path: Path, body: str, sweep: str = "gpus = [0, 1, 2, 3, 4, 5, 6, 7]") -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(f'[sweep]\nout = "{tmp_path / "out"}"\n{sweep}\n\n{body}')
    return path


def test_70b_on_four_gpus_beside_8bs_on_one_each() -> None:
    needs = [Need("small-a", 1), Need("big", 4), Need("small-b", 1), Need("small-c", 1), Need("small-d", 1)]
    waves = pack(needs, INVENTORY)
    assert len(waves) == 1
    got = {a.name: a.gpus for a in waves[0].assignments}
    assert got == {"big": (0, 1, 2, 3), "small-a": (4,), "small-b": (5,), "small-c": (6,), "small-d": (7,)}


def test_packing_is_deterministic_and_largest_first() -> None:
    needs = [Need(f"s{i}", 1) for i in range(6)] + [Need("b1", 4), Need("b2", 4), Need("m", 2)]
    first = pack(needs, INVENTORY)
    assert first == pack(list(needs), list(INVENTORY))
    assert [a.name for a in first[0].assignments] == ["b1", "b2"]
    assert [(a.name, a.gpus) for a in first[1].assignments][:2] == [("m", (0, 1)), ("s0", (2,))]
    used = [g for w in first for a in w.assignments for g in a.gpus]
    assert sum(n.gpus for n in needs) == len(used)
    for wave in first:  # no GPU twice in one wave
        ids = [g for a in wave.assignments for g in a.gpus]
        assert len(ids) == len(set(ids))


def test_allocate_prefers_aligned_blocks_then_lowest_ids() -> None:
    assert allocate(4, {1, 2, 3, 4, 5, 6, 7}, INVENTORY) == (4, 5, 6, 7)
    assert allocate(2, {1, 2, 5}, INVENTORY) == (1, 2)
    assert allocate(4, {0, 1, 2}, INVENTORY) is None


def test_model_bigger_than_inventory_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="'huge' needs 8 GPUs but the inventory has 4"):
        pack([Need("small", 1), Need("huge", 8)], [0, 1, 2, 3])


def test_plan_resolves_registry_gpus_and_ports(tmp_path: Path) -> None:
    path = _plan(
        tmp_path,
        '[[models]]\nname = "meta-llama-3-70b-instruct"\n\n[[models]]\nname = "meta-llama-3-8b-instruct"\n'
        'limit = 2\ntasks = ["mednli"]\n',
        'gpus = [0, 1, 2, 3, 4, 5, 6, 7]\nbase_port = 9000\ntasks = ["meqsum"]\nlimit = 5',
    )
    models = resolve_models(load_plan(path), path)
    assert [(m.name, m.gpu_count, m.port, m.tasks, m.limit) for m in models] == [
        ("meta-llama-3-70b-instruct", 4, 9000, ("meqsum",), 5),
        ("meta-llama-3-8b-instruct", 1, 9001, ("mednli",), 2),
    ]


@pytest.mark.parametrize(
    ("body", "sweep", "message"),
    [
        (
            '[[models]]\nname = "zephyr-7b-beta"\ncolour = 1\n',
            "gpus = [0]",
            r"unknown field 'models.0.colour'",
        ),
        (
            '[[models]]\nname = "zephyr-7b-bet"\n',
            "gpus = [0]",
            r"models\[0\]\.name.*did you mean: zephyr-7b-beta",
        ),
        ('[[models]]\nname = "zephyr-7b-beta"\n', "gpus = [0, 0]", r"field 'sweep.gpus'.*distinct"),
        ('[[models]]\nname = "zephyr-7b-beta"\n', "", r"gpus: list the GPU ids"),
        ('[[models]]\nname = "zephyr-7b-beta"\n[[models]]\nname = "zephyr-7b-beta"\n', "gpus = [0]", "twice"),
        ('[[models]]\nname = "zephyr-7b-beta"\ngpus = 3\n', "gpus = [0, 1, 2]", r"models\[0\]\.gpus"),
        (
            '[[models]]\nname = "mixtral-8x22b-instruct-v0.1"\n',
            "gpus = [0]\nmemory_class = 24",
            "more than one node",
        ),
        ('[[models]]\nname = "zephyr-7b-beta"\n', 'gpus = [0]\nengine = "gpu"', r"field 'sweep.engine'"),
    ],
)
def test_bad_plans_name_the_field(tmp_path: Path, body: str, sweep: str, message: str) -> None:
    path = _plan(tmp_path, body, sweep)
    with pytest.raises(ConfigError, match=message) as info:
        resolve_models(load_plan(path), path)
    assert str(path) in str(info.value)


def test_dry_run_prints_packing_and_exact_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _plan(
        tmp_path,
        "".join(
            f'[[models]]\nname = "{n}"\n\n' for n in ("meta-llama-3-8b-instruct", "meta-llama-3-70b-instruct")
        ),
        "gpus = [2, 3, 4, 5, 6, 7]\nbase_port = 9100",
    )
    assert main(["sweep", "--plan", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# wave 1" in out and "# wave 2" not in out
    lines = out.splitlines()
    big = next(
        line for line in lines if line.startswith("docker run") and "meta-llama-3-70b-instruct" in line
    )
    assert "--gpus '\"device=2,3,4,5\"'" in big and "--tensor-parallel-size 4" in big
    assert "-p 127.0.0.1:9101:8000" in big and "--served-model-name meta-llama-3-70b-instruct" in big
    small = next(
        line for line in lines if line.startswith("docker run") and "meta-llama-3-8b-instruct" in line
    )
    assert "--gpus '\"device=6\"'" in small and "-p 127.0.0.1:9100:8000" in small
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_cli_error_for_missing_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--plan", str(tmp_path / "nope.toml"), "--dry-run"]) == 2
    assert "does not exist" in capsys.readouterr().err


BASE, LORA = "smollm2-135m-instruct", "smollm2-135m-meqsum-lora"


def test_an_adapter_whose_base_is_in_the_plan_rides_on_the_base_server(tmp_path: Path) -> None:
    from pipeline.sweep.plan import riders_of

    both = _plan(
        tmp_path,
        f'[[models]]\nname = "{LORA}"\n\n[[models]]\nname = "{BASE}"\n',
        'device = "cpu"\nengine = "cpu"',
    )
    models = resolve_models(load_plan(both), both)
    assert [(m.name, m.host) for m in models] == [(LORA, BASE), (BASE, None)]
    hosts, riders = riders_of(models)
    assert [m.name for m in hosts] == [BASE] and [m.name for m in riders[BASE]] == [LORA]
    alone = _plan(tmp_path, f'[[models]]\nname = "{LORA}"\n', 'device = "cpu"\nengine = "cpu"')
    models = resolve_models(load_plan(alone), alone)
    assert models[0].host is None and riders_of(models) == (models, {})  # served as today: its own start


def test_dry_run_shows_the_adapter_on_its_base_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = f'[[models]]\nname = "{BASE}"\n\n[[models]]\nname = "{LORA}"\n'
    path = _plan(tmp_path, body, 'device = "cpu"\nengine = "cpu"\nbase_port = 9200')
    assert main(["sweep", "--plan", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# 2 models (1 servers)" in out
    assert f"# {LORA}: on the server of {BASE} (LoRA adapter)" in out
    commands = [line for line in out.splitlines() if "--port" in line and not line.startswith("#")]
    assert len(commands) == 1 and "--port 9200" in commands[0]
    assert f"--lora-modules {LORA}=" in commands[0] and "--enable-lora" in commands[0]
