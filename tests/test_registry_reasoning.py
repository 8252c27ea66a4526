"""The registry's ``reasoning`` table: bad input is one line naming the file, the server gets its parser,
requests get the budget and the template switch (docs/reasoning.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.evaluation.thinking import Thinking
from pipeline.models.registry import load_server_config
from pipeline.models.templates import template_warnings
from pipeline.request import Request
from pipeline.serving.argv import vllm_flags
from tests.test_registry import GOOD


def _entry(tmp_path: Path, reasoning: str, extra: str = "") -> Path:
    path = tmp_path / "servers" / "some-model-7b.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(GOOD + extra + "\n[reasoning]\n" + reasoning)
    return path


@pytest.mark.parametrize(
    ("reasoning", "message"),
    [
        (
            'parser = "qwen"\nthinking_budget = 512',
            r"field 'reasoning.parser': Value error, vLLM 0.32.0 knows no reasoning parser 'qwen'; "
            r"did you mean: qwen3\?$",
        ),
        ("thinking_budget = 4096", r"reasoning.thinking_budget: 4096 tokens .* \(max_model_len = 4096\)"),
        (
            'parser = "qwen3"\nsplit = "think-tags"\nthinking_budget = 512',
            r"field 'reasoning': Value error, set either parser .* or split",
        ),
        ('split = "headings"\nthinking_budget = 512', r"field 'reasoning.split'"),
        ("thinking_budget = 0", r"field 'reasoning.thinking_budget'"),
    ],
)
def test_bad_reasoning_tables_are_one_line_naming_the_file(
    tmp_path: Path, reasoning: str, message: str
) -> None:
    path = _entry(tmp_path, reasoning)
    with pytest.raises(ConfigError, match=message) as caught:
        load_server_config(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_the_server_gets_the_parser_and_requests_the_budget(tmp_path: Path) -> None:
    cfg = load_server_config(
        _entry(
            tmp_path,
            'parser = "qwen3"\nthinking_budget = 1024\nanswer_tokens = 64\n'
            "chat_template_kwargs = { enable_thinking = true }",
        )
    )
    flags = vllm_flags(cfg, tensor_parallel=1)
    assert flags[flags.index("--reasoning-parser") + 1] == "qwen3"
    thinking = Thinking.resolve(cfg.reasoning)
    chat = Request("mednli", "1", "chat", 20, "entailment", messages=({"role": "user", "content": "q"},))
    sent = thinking.apply(chat)
    assert sent.max_tokens == 1024 + 64  # the answer budget is at least answer_tokens
    assert sent.extra_body == {
        "thinking_token_budget": 1024,
        "chat_template_kwargs": {"enable_thinking": True},
    }
    assert (
        thinking.apply(chat.__class__("meqsum", "1", "chat", 256, "x", messages=())).max_tokens == 1024 + 256
    )
    base = Request("mednli", "1", "completion", 20, "entailment", prompt="q")
    assert "chat_template_kwargs" not in thinking.apply(base).extra_body  # a completion has no template
    assert thinking.prompt_room(4096) == 4096 - 1024 - 64


def test_a_client_side_splitter_sends_no_thinking_token_budget(tmp_path: Path) -> None:
    cfg = load_server_config(_entry(tmp_path, 'split = "markdown-headings"\nthinking_budget = 1024'))
    assert "--reasoning-parser" not in vllm_flags(cfg, tensor_parallel=1)
    thinking = Thinking.resolve(cfg.reasoning)
    sent = thinking.apply(Request("mednli", "1", "chat", 20, "e", messages=()))
    assert thinking.split == "markdown-headings" and sent.max_tokens == 1044 and sent.extra_body == {}
    assert Thinking.resolve(cfg.reasoning, "none").split == "none"  # --reasoning-split overrides


def test_a_switch_the_template_ignores_is_a_warning_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    local = f'device = "cpu"\nlocal_path = "{folder}"\n'
    cfg = load_server_config(
        _entry(tmp_path, "thinking_budget = 64\nchat_template_kwargs = { enable_thinking = true }", local)
    )
    assert template_warnings(cfg) == [
        "warning: servers/some-model-7b.toml: reasoning.chat_template_kwargs.enable_thinking: the chat "
        "template of org/Some-Model-7B never reads 'enable_thinking', so the switch is ignored; remove it or "
        "check the name"
    ]
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{% if enable_thinking %}"}))
    assert template_warnings(cfg) == []
