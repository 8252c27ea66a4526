"""Configuration: TOML, environment and flags; unknown keys and bad values name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError
from tests.support.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs/examples/eval.toml"


def test_example_config_is_valid_and_greedy() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.sampling.temperature == 0.0
    assert config.endpoint.base_urls == ("http://127.0.0.1:8000/v1",)
    assert config.run.tasks[0] == "mednli"


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[client]\nconcurrency = 7\n[endpoint]\nbase_urls = ["http://a:1"]\n')
    env = {"OPENAI_API_KEY": "k-123", "OPENAI_BASE_URL": "http://b:2"}
    config = load_config(path, {"client": {"concurrency": 9, "rate": None}}, environ=env)
    assert config.client.concurrency == 9  # flag beats file
    assert config.endpoint.base_urls == ("http://b:2/v1",)  # env beats file
    assert config.endpoint.api_key is not None and config.endpoint.api_key.get_secret_value() == "k-123"
    assert load_config(path, environ={}).endpoint.base_urls == ("http://a:1/v1",)
    flagged = load_config(path, {"endpoint": {"base_urls": ["http://c:3"]}}, environ=env)
    assert flagged.endpoint.base_urls == ("http://c:3/v1",)  # flag beats env


def test_unknown_key_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[client]\nconcurency = 7\n")
    with pytest.raises(ConfigError, match=r"unknown field 'client.concurency'"):
        load_config(path, environ={})


def test_bad_value_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[client]\nconcurrency = 0\n")
    with pytest.raises(ConfigError, match=r"field 'client.concurrency'.*greater than or equal to 1"):
        load_config(path, environ={})


def test_bad_url_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        load_config(None, {"endpoint": {"base_urls": ["localhost:8000"]}}, environ={})
    path = tmp_path / "c.toml"
    path.write_text("[client\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_public_dict_has_no_key_and_no_url() -> None:
    config = load_config(
        None, {"endpoint": {"base_urls": ["http://user:pw@h:1"]}}, environ={"OPENAI_API_KEY": "s3"}
    )
    text = repr(config.public_dict())
    assert "s3" not in text and "pw@" not in text and "http" not in text
