"""The engine interface: the registry of names, the device rules of `medsweep serve`, one-line errors for
unknown engines (flag, plan, state file), and old registry files (``engine = "cpu"``) still loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.models.registry import get_model, load_server_config
from pipeline.serving.engines import ENGINE_NAMES, ENGINES, Engine, Target, check_engine_name, get_engine
from pipeline.serving.launch import ServeRequest, resolve
from pipeline.serving.lifecycle import plan_server
from tests.support.paths import REPO_ROOT as REPO


def test_the_four_engines_are_registered_under_their_own_names() -> None:
    assert ENGINE_NAMES == ("docker", "local", "cpu", "apptainer")
    for name, engine in ENGINES.items():
        assert isinstance(engine, Engine) and engine.name == name and get_engine(name) is engine


def test_an_unknown_engine_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        check_engine_name("sglang", "plan.toml: field 'sweep.engine'")
    assert str(caught.value) == (
        "plan.toml: field 'sweep.engine': unknown engine 'sglang'; use one of docker, local, cpu, apptainer"
    )


def test_unknown_engine_in_a_sweep_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[sweep]\nout = "o"\nengine = "sglang"\ngpus = [0]\n[[models]]\nname = "zephyr-7b-beta"\n'
    )
    assert main(["sweep", "--plan", str(plan), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown engine 'sglang'" in err and "field 'sweep.engine'" in err


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (ServeRequest(), ("smollm2-135m-instruct", "cpu", "cpu")),
        (ServeRequest(engine="docker", device="cpu"), ("smollm2-135m-instruct", "docker", "cpu")),
        (ServeRequest(device="cpu"), ("smollm2-135m-instruct", "cpu", "cpu")),
        (ServeRequest(model="zephyr-7b-beta"), ("zephyr-7b-beta", "docker", "gpu")),
        (ServeRequest(model="zephyr-7b-beta", engine="apptainer"), ("zephyr-7b-beta", "apptainer", "gpu")),
        (ServeRequest(engine="apptainer", device="cpu"), ("smollm2-135m-instruct", "apptainer", "cpu")),
    ],
)
def test_engine_and_device_defaults(
    request_: ServeRequest, expected: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    cfg, engine, device = resolve(request_)
    assert (cfg.name, engine.name, device) == expected


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ServeRequest(engine="local", device="cpu"), "--engine local runs on gpu only, not --device cpu"),
        (ServeRequest(model="zephyr-7b-beta", device="cpu"), "--device cpu serves local CPU models only"),
        (ServeRequest(engine="docker"), "--model NAME is required unless serving the CPU default"),
    ],
)
def test_device_errors(
    request_: ServeRequest, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolve(request_)


def test_every_engine_plans_both_of_its_devices() -> None:
    gpu_model, cpu_model = get_model("meta-llama-3-8b-instruct"), get_model("smollm2-135m-instruct")
    for engine in ENGINES.values():
        for device in engine.devices:
            model = cpu_model if device == "cpu" else gpu_model
            launch = engine.plan(
                Target(model=model, device=device, port=8123, gpus=(0,) if device == "gpu" else ())
            )
            assert launch.url == "http://127.0.0.1:8123" and "--served-model-name" in launch.argv


def test_old_registry_files_with_engine_still_load(tmp_path: Path) -> None:
    text = (REPO / "servers" / "smollm2-135m-instruct.toml").read_text().replace("device =", "engine =")
    old = tmp_path / "smollm2-135m-instruct.toml"
    old.write_text(text)
    assert load_server_config(old).device == "cpu"


def test_a_state_file_naming_an_unknown_engine_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDSWEEP_STATE_DIR", str(tmp_path))
    (tmp_path / "serve.json").write_text(
        '{"url": "http://127.0.0.1:1", "openai_base_url": "http://127.0.0.1:1/v1", "served_model": "m", '
        '"model": "m", "engine": "sglang", "host": "127.0.0.1", "port": 1}'
    )
    assert main(["stop"]) == 2
    assert "not a valid serve state file" in capsys.readouterr().err


@pytest.mark.parametrize(("queue_depth", "backpressure"), [(False, False), (True, True)])
def test_eval_polls_the_queue_only_where_the_engine_offers_it(
    queue_depth: bool,
    backpressure: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pipeline.evaluation.evaluate
    from pipeline.serving.running import RunningServer
    from pipeline.serving.state import write_state

    monkeypatch.setenv("MEDSWEEP_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    offers = {"queue_depth": queue_depth, "tokenize": True, "version": True}
    write_state(
        RunningServer(
            url="http://127.0.0.1:9",
            openai_base_url="http://127.0.0.1:9/v1",
            served_model="m",
            model="m",
            engine="docker",
            host="127.0.0.1",
            port=9,
            offers=offers,
        )
    )
    seen: list[object] = []
    monkeypatch.setattr(pipeline.evaluation.evaluate, "evaluate", lambda config: seen.append(config) or 0)
    assert main(["eval", "--task", "mednli", "--out", str(tmp_path / "out")]) == 0
    (config,) = seen
    assert config.client.backpressure is backpressure  # type: ignore[attr-defined]


def test_every_engine_passes_vllm_batch_invariant_when_it_is_set() -> None:
    """``VLLM_BATCH_INVARIANT`` where medsweep serves from reaches the server through every engine (a
    container's too, which would not inherit it) and is kept in the plan's target; unset or 0 passes nothing
    (vLLM's default, off); a value vLLM cannot read is one line before anything starts."""
    entry = get_model("smollm2-135m-instruct")
    for name, engine in ENGINES.items():
        for device in engine.devices:
            on = plan_server(entry, engine, device=device, port=8000, host="127.0.0.1",
                             environ={"VLLM_BATCH_INVARIANT": "1"})  # fmt: skip
            launch = on.launch()
            passed = launch.env.get("VLLM_BATCH_INVARIANT") == "1" or "VLLM_BATCH_INVARIANT=1" in launch.argv
            assert on.target.batch_invariant and passed, (name, device, launch.shell())
            for environ in ({}, {"VLLM_BATCH_INVARIANT": "0"}, {"VLLM_BATCH_INVARIANT": ""}):
                off = plan_server(entry, engine, device=device, port=8000, host="127.0.0.1", environ=environ)
                assert not off.target.batch_invariant and "VLLM_BATCH_INVARIANT" not in off.launch().shell()
    with pytest.raises(ConfigError) as caught:
        plan_server(entry, get_engine("cpu"), device="cpu", port=8000, host="127.0.0.1",
                    environ={"VLLM_BATCH_INVARIANT": "yes"})  # fmt: skip
    assert str(caught.value) == (
        "VLLM_BATCH_INVARIANT='yes': vLLM reads it as an integer; set it to 1 (on) or 0 (off), or unset it"
    )
