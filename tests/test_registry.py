"""servers/*.toml: the study's models load, validate and pair; bad files fail naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.models.registry import get_model, load_registry, pairs, pp_size, tp_size
from pipeline.paths import SERVERS_DIR

# The 25 models of the published table (clue-spec §2/§3) by their site label.
SITE_LABELS = {
    "llama2-7b", "meditron-7b", "llama2-7b-hf", "Mistral-7B-v0.1", "internistai/base-7b-v0.2",
    "BioMistral-7B", "BioMistral-7B-DARE", "Mistral-7B-Instruct-v0.1", "zephyr-7b-beta",
    "Mistral-7B-Instruct-v0.2", "Meta-Llama-3-8B-Instruct", "Llama3-OpenBioLLM-8B", "JSL-Med-Sft-Llama-3-8B",
    "JSL-MedLlama-3-8B-v1.0", "JSL-MedLlama-3-8B-v2.0", "Llama3-Aloe-8B-Alpha", "Phi-3-mini-128k-instruct",
    "Mixtral-8x7B-Instruct-v0.1", "Llama-2-70b", "meditron-70b", "ClinicalCamel-70B", "Llama-2-70b-chat",
    "Meta-Llama-3-70B-Instruct", "Llama3-OpenBioLLM-70B", "Mixtral-8x22B-Instruct-v0.1",
}  # fmt: skip

GOOD = """
hf_id = "org/Some-Model-7B"
revision = "main"
role = "general"
params_b = 7.0
attention_heads = 32
gpus = { 80 = 1, 40 = 1, 24 = 1 }
max_model_len = 4096
dtype = "bfloat16"
chat_mode = "chat"
"""


def test_the_study_is_complete() -> None:
    registry = load_registry()
    labels = {cfg.site_label for cfg in registry.values() if cfg.site_label}
    assert labels == SITE_LABELS
    assert {"meta-llama-3.1-8b-instruct", "meta-llama-3.1-70b-instruct", "smollm2-135m-instruct"} <= set(
        registry
    )
    assert not any(name == "mixtral-8x7b-v0.1" for name in registry)
    # The study's 12 biomedical models, the 8 of the 2025-26 pairs (tests/sweep/test_pairs_2026.py), and the
    # demo's LoRA fine-tune of the CPU default (not of the study).
    study = {name: cfg for name, cfg in registry.items() if cfg.adapter is None}
    assert sum(cfg.role == "biomedical" for cfg in study.values()) == 12 + 8
    assert [name for name, cfg in registry.items() if cfg.adapter] == ["smollm2-135m-meqsum-lora"]
    for name, cfg in study.items():
        if name == "smollm2-135m-think":  # a test model derived from the CPU default (its own notes)
            continue
        assert name == name.lower() and name == cfg.hf_id.split("/")[1].lower()


def test_site_label_mapping_that_is_unverified_says_so() -> None:
    cfg = get_model("llama-2-7b-chat-hf")
    assert cfg.site_label == "llama2-7b-hf" and "UNVERIFIED" in cfg.notes


def test_pairs_follow_the_site_family_pairing() -> None:
    got = dict(pairs())
    assert len(got) == 13 + 8  # the study's 12, the demo's LoRA pair and the 2025-26 pairs
    assert got["smollm2-135m-meqsum-lora"] == "smollm2-135m-instruct"
    assert got["meditron-7b"] == "llama-2-7b-hf"
    assert got["clinicalcamel-70b"] == "llama-2-70b-hf"
    assert got["base-7b-v0.2"] == "mistral-7b-v0.1"
    assert got["biomistral-7b-dare"] == "mistral-7b-instruct-v0.1"
    assert got["llama3-openbiollm-70b"] == "meta-llama-3-70b-instruct"


def test_chat_modes_and_stop_strings() -> None:
    assert get_model("mistral-7b-instruct-v0.1").chat_mode == "chat_nosystem"
    assert get_model("mixtral-8x7b-instruct-v0.1").chat_mode == "chat_nosystem"
    assert get_model("llama-2-7b-hf").chat_mode == "base"
    assert "<|eot_id|>" in get_model("llama3-aloe-8b-alpha").stop
    assert get_model("zephyr-7b-beta").stop == []


def test_tensor_and_pipeline_sizes() -> None:
    big = get_model("meta-llama-3.1-70b-instruct")
    assert (tp_size(big, 80), pp_size(big, 80)) == (4, 1)
    assert (tp_size(big, 24), pp_size(big, 24)) == (8, 2)
    small = get_model("meta-llama-3-8b-instruct")
    assert tp_size(small, 24) == 1
    for cfg in load_registry().values():
        for memory_class in (80, 40, 24):
            assert cfg.attention_heads % tp_size(cfg, memory_class) == 0
    with pytest.raises(ConfigError, match="memory class 32"):
        tp_size(small, 32)


def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'meta-llama-3-8b'.*meta-llama-3-8b-instruct"):
        get_model("meta-llama-3-8b")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("tensor_paralel = 2\n", "tensor_paralel"),
        ('chatmode = "chat"\n', "chatmode"),
    ],
)
def test_unknown_field_names_file_and_field(tmp_path: Path, change: str, field: str) -> None:
    _write(tmp_path, "some-model-7b", GOOD + change)
    with pytest.raises(ConfigError) as err:
        load_registry(tmp_path)
    assert "some-model-7b.toml" in str(err.value) and f"'{field}'" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('chat_mode = "chat"', 'chat_mode = "instruct"', "chat_mode"),
        ("gpus = { 80 = 1, 40 = 1, 24 = 1 }", "gpus = { 80 = 3, 40 = 1, 24 = 1 }", "gpus.80"),
        ("gpus = { 80 = 1, 40 = 1, 24 = 1 }", "gpus = { 80 = 1, 40 = 1 }", "gpus.24"),
        ("attention_heads = 32", "attention_heads = 12", "gpus"),
        ('role = "general"', 'role = "biomedical"', "counterpart"),
        ('hf_id = "org/Some-Model-7B"', 'hf_id = "no-org"', "hf_id"),
    ],
)
def test_bad_value_names_file_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = GOOD.replace(old, new)
    if field == "gpus":
        text = text.replace("gpus = { 80 = 1", "gpus = { 80 = 8")
    assert text != GOOD
    _write(tmp_path, "some-model-7b", text)
    with pytest.raises(ConfigError) as err:
        load_registry(tmp_path)
    assert "some-model-7b.toml" in str(err.value) and field in str(err.value)


def test_counterpart_must_exist(tmp_path: Path) -> None:
    _write(tmp_path, "base-model", GOOD)
    bio = GOOD.replace('role = "general"', 'role = "biomedical"\ncounterpart = "base-modle"')
    _write(tmp_path, "bio-model", bio)
    with pytest.raises(ConfigError, match=r"bio-model.toml: field 'counterpart'.*did you mean: base-model"):
        load_registry(tmp_path)


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    _write(tmp_path, "broken", "hf_id = \n")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML"):
        load_registry(tmp_path)


def test_registry_dir_is_the_repo_servers_folder() -> None:
    assert SERVERS_DIR.name == "servers" and (SERVERS_DIR / "smollm2-135m-instruct.toml").is_file()
