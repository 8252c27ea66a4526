"""LoRA entries of the registry: served on their base's server, pinned by checksum, keyed by it; bad entries
are one-line errors naming the file and the field."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.models.adapters import adapter_digest
from pipeline.models.registry import adapters_of, get_model, load_registry, pairs
from pipeline.paths import DEMO_DATA_DIR, SERVERS_DIR
from pipeline.report import build_report
from pipeline.serving.engines import Target, get_engine
from pipeline.serving.lora import server_models, verify
from tests.support.stores import StoreBuilder, add_constant_model

BASE = """
hf_id = "org/Tiny-Model"
revision = "abc123"
role = "general"
device = "cpu"
local_path = "models/tiny"
params_b = 0.1
attention_heads = 9
gpus = { 80 = 1, 40 = 1, 24 = 1 }
max_model_len = 2048
dtype = "auto"
chat_mode = "chat"
extra_vllm_args = ["--enforce-eager"]
stop = ["<end>"]
"""


def _adapter_dir(root: Path, name: str = "tiny-lora", weights: bytes = b"weights") -> Path:
    """An adapter folder (made-up bytes: the registry checks files and checksum, not the weights)."""
    folder = root / "servers" / "adapters" / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": ["q_proj"]}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


def _lora_toml(sha256: str, *, extra: str = "", adapter_extra: str = "", path: str = "") -> str:
    path = path or "servers/adapters/tiny-lora"
    return (
        'role = "biomedical"\ncounterpart = "tiny"\nnotes = "a test adapter"\n'
        + extra
        + f'adapter = {{base = "tiny", path = "{path}", sha256 = "{sha256}", rank = 8{adapter_extra}}}\n'
    )


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    servers = tmp_path / "servers"
    servers.mkdir()
    (servers / "tiny.toml").write_text(BASE)
    folder = _adapter_dir(tmp_path)
    (servers / "tiny-lora.toml").write_text(_lora_toml(adapter_digest(folder)))
    return servers


def test_a_lora_entry_takes_serving_from_its_base_and_keys_on_its_checksum(registry: Path) -> None:
    lora = get_model("tiny-lora", registry)
    digest = adapter_digest(registry.parent / "servers/adapters/tiny-lora")
    assert lora.adapter is not None and lora.adapter.sha256 == digest
    assert lora.adapter.folder == (registry / "adapters" / "tiny-lora").resolve()
    assert (lora.device, lora.local_path, lora.chat_mode, lora.stop) == (
        "cpu",
        "models/tiny",
        "chat",
        ["<end>"],
    )
    assert (lora.role, lora.counterpart, lora.notes) == ("biomedical", "tiny", "a test adapter")
    assert lora.identity() == f"tiny-lora@abc123+lora.{digest[:16]}"
    assert get_model("tiny", registry).identity() == "tiny@abc123"
    assert [a.name for a in adapters_of("tiny", registry)] == ["tiny-lora"]
    assert pairs(registry) == [("tiny-lora", "tiny")]
    base, adapters = server_models(lora, registry)
    assert base.name == "tiny" and [a.name for a in adapters] == ["tiny-lora"]
    assert server_models(base, registry) == (base, [])


def test_the_adapters_are_served_on_the_base_server(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_VENV", "/venv")
    lora = get_model("tiny-lora", registry)
    base, adapters = server_models(lora, registry)
    folder = str(registry / "adapters" / "tiny-lora")
    target = Target(model=base, device="cpu", port=8011, adapters=tuple(adapters))
    assert get_engine("cpu").plan(target).argv[3:] == [
        "--served-model-name", "tiny", "--tensor-parallel-size", "1",
        "--max-model-len", "2048", "--dtype", "auto", "--enforce-eager",
        "--enable-lora", "--max-lora-rank", "8", "--lora-modules", f"tiny-lora={folder}",
        "--host", "127.0.0.1", "--port", "8011",
    ]  # fmt: skip
    inside = ["--enable-lora", "--max-lora-rank", "8", "--lora-modules", "tiny-lora=/adapters/tiny-lora"]
    argv = get_engine("docker").plan(dataclasses.replace(target, image="img")).argv
    mount = argv.index(f"{folder}:/adapters/tiny-lora:ro")
    assert argv[mount - 1] == "-v" and mount < argv.index("img") and argv[-5:] == inside
    argv = get_engine("apptainer").plan(dataclasses.replace(target, image="img.sif")).argv
    mount = argv.index(f"{folder}:/adapters/tiny-lora:ro")
    assert argv[mount - 1] == "--bind" and argv[-9:-4] == inside


def test_a_changed_adapter_is_refused_before_serving(registry: Path) -> None:
    lora = get_model("tiny-lora", registry)
    verify([lora])  # as pinned
    (registry / "adapters" / "tiny-lora" / "adapter_model.safetensors").write_bytes(b"retrained")
    with pytest.raises(ConfigError) as err:
        verify([lora])
    message = str(err.value)
    assert "\n" not in message and "servers/tiny-lora.toml: field 'adapter.sha256'" in message
    assert "not the pinned" in message


@pytest.mark.parametrize(
    ("sha", "extra", "adapter_extra", "path", "field"),
    [
        ("abc", "", "", "", "adapter.sha256"),  # not 64 hex digits
        (None, "", "", "servers/adapters/nowhere", "adapter.path"),  # missing folder
        (None, "", ", lora_alpha = 16", "", "adapter.lora_alpha"),  # unknown adapter field
        (None, "gpus = { 80 = 2, 40 = 2, 24 = 2 }\n", "", "", "gpus"),  # a serving field: the base's
        (None, "", "", "", ""),  # the good entry (control)
    ],
)
def test_bad_lora_entries_are_one_line_errors(
    registry: Path, sha: str | None, extra: str, adapter_extra: str, path: str, field: str
) -> None:
    digest = sha or adapter_digest(registry / "adapters" / "tiny-lora")
    (registry / "tiny-lora.toml").write_text(
        _lora_toml(digest, extra=extra, adapter_extra=adapter_extra, path=path)
    )
    if not field:
        assert load_registry(registry)["tiny-lora"].adapter is not None
        return
    with pytest.raises(ConfigError) as err:
        load_registry(registry)
    message = str(err.value)
    assert "\n" not in message and "tiny-lora.toml" in message and f"field '{field}'" in message


def test_an_adapter_folder_without_its_weights_is_refused(registry: Path) -> None:
    (registry / "adapters" / "tiny-lora" / "adapter_model.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"field 'adapter.path': .*lacks adapter_model.safetensors"):
        load_registry(registry)


def test_an_unknown_or_adapter_base_is_refused(registry: Path) -> None:
    text = (registry / "tiny-lora.toml").read_text()
    (registry / "tiny-lora.toml").write_text(text.replace('base = "tiny"', 'base = "tinny"'))
    with pytest.raises(ConfigError, match=r"tiny-lora.toml: field 'adapter.base': no model 'tinny'"):
        load_registry(registry)
    (registry / "tiny-lora.toml").write_text(text)
    (registry / "lora-of-lora.toml").write_text(text.replace('base = "tiny"', 'base = "tiny-lora"'))
    with pytest.raises(ConfigError, match=r"lora-of-lora.toml: field 'adapter.base': 'tiny-lora' is itself"):
        load_registry(registry)
    (registry / "lora-of-lora.toml").write_text('role = "general"\nadapter = "servers/adapters/x"\n')
    with pytest.raises(ConfigError, match=r"lora-of-lora.toml: field 'adapter': expected a table"):
        load_registry(registry)


def test_the_report_pairs_registry_names_with_stored_identities(registry: Path) -> None:
    """Stores hold ``name@revision`` (+``lora.<sha>``); the registry's pair names must still find them."""
    lora = get_model("tiny-lora", registry)
    out = registry.parent / "run"
    store = StoreBuilder(out)
    add_constant_model(store, "run-lora", lora.identity(), {"mednli": 80.0, "meqsum": 30.0})
    add_constant_model(store, "run-base", "tiny@abc123", {"mednli": 40.0, "meqsum": 30.0})
    store.close()
    report = build_report([out], servers_dir=registry)
    assert [(p.biomedical, p.general, p.source) for p in report.pairs] == [
        (lora.identity(), "tiny@abc123", "registry")
    ]
    assert set(report.paired["unit"].to_list()) >= {"mednli", "meqsum"}
    assert not any("could not be compared" in line for line in report.summary)
    flagged = build_report([out], pair_flags=["tiny-lora=tiny"], servers_dir=registry / "none")
    assert [p.source for p in flagged.pairs] == ["--pair"] and flagged.pairs[0].general == "tiny@abc123"


def test_the_committed_demo_adapter_is_the_pinned_one_and_ships_in_servers() -> None:
    """The demo's adapter: its files match the registry's checksum, under servers/ (so a wheel carries it)."""
    lora = get_model("smollm2-135m-meqsum-lora")
    assert lora.adapter is not None and lora.adapter.rank == 8 and lora.device == "cpu"
    assert (lora.adapter.base, lora.counterpart, lora.role) == ("smollm2-135m-instruct",) * 2 + (
        "biomedical",
    )
    assert lora.adapter.folder.is_relative_to(SERVERS_DIR.resolve())
    verify([lora])
    card = (lora.adapter.folder / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in card and "not a medical model" in card and lora.adapter.sha256 in card


def test_a_report_of_the_synthetic_demo_data_says_first_that_its_scores_mean_nothing(registry: Path) -> None:
    out = registry.parent / "run"
    store = StoreBuilder(out)
    add_constant_model(store, "run-lora", get_model("tiny-lora", registry).identity(), {"mednli": 80.0})
    add_constant_model(store, "run-base", "tiny@abc123", {"mednli": 40.0})
    store.close()
    assert not any("mean nothing" in line for line in build_report([out], servers_dir=registry).summary)
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        config = json.loads(conn.execute("SELECT config_json FROM runs").fetchone()[0])
        config["run"]["data_dir"] = str(DEMO_DATA_DIR)
        conn.execute("UPDATE runs SET config_json = ?", (json.dumps(config),))
    summary = build_report([out], servers_dir=registry).summary
    assert "synthetic demo data" in summary[0] and "mean nothing" in summary[0]
