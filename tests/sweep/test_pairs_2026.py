"""The 2025-26 pairs (issue #19): both sides in the registry, and both shipped plans dry-run showing every
server's exact command, with --reasoning-parser for the models whose parser vLLM runs."""

from __future__ import annotations

import re

import pytest

from pipeline.cli import main
from pipeline.models.registry import load_registry, pairs
from tests.support.paths import REPO_ROOT

PAIRS_2026 = {
    "medgemma-27b-text-it": "gemma-3-27b-it",
    "meditron3-8b": "llama-3.1-8b",
    "llama3.1-aloe-beta-8b": "meta-llama-3.1-8b-instruct",
    "ii-medical-8b": "qwen3-8b",
    "huatuogpt-o1-8b": "meta-llama-3.1-8b-instruct",
    "baichuan-m2-32b": "qwen2.5-32b",
    "apertus-8b-meditronfo": "apertus-8b-instruct-2509",
    "qwen3-0.6b-medical-expert": "qwen3-0.6b",
}
PARSED = {"ii-medical-8b", "qwen3-8b", "baichuan-m2-32b", "qwen3-0.6b-medical-expert", "qwen3-0.6b"}


def test_the_pairs_are_in_the_registry_with_their_reasoning() -> None:
    registry = load_registry()
    assert PAIRS_2026.items() <= dict(pairs()).items()
    both = {*PAIRS_2026, *PAIRS_2026.values()}
    assert {n for n in both if registry[n].reasoning and registry[n].reasoning.parser} == PARSED  # type: ignore[union-attr]
    assert registry["huatuogpt-o1-8b"].reasoning.split == "markdown-headings"  # type: ignore[union-attr]
    # The base (not instruction-tuned) general sides are served as plain-text prompts, as is Meditron 3.
    assert {n for n in (*PAIRS_2026, *PAIRS_2026.values()) if registry[n].chat_mode == "base"} == {
        "meditron3-8b", "llama-3.1-8b", "qwen2.5-32b"
    }  # fmt: skip
    for bio, general in PAIRS_2026.items():  # a pair's two reasoning sides think with the same budget
        a, b = registry[bio].reasoning, registry[general].reasoning
        if a and b:
            assert a.thinking_budget == b.thinking_budget, bio


@pytest.mark.parametrize("plan", ["pairs-2026.toml", "pairs-2026-slurm.toml"])
def test_the_plans_dry_run_with_the_reasoning_parser(plan: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--plan", str(REPO_ROOT / "docs" / "plans" / plan), "--dry-run"]) == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if "--served-model-name" in line]
    served = {re.search(r"--served-model-name (\S+)", c).group(1): c for c in commands}  # type: ignore[union-attr]
    assert set(served) == set(PAIRS_2026) | set(PAIRS_2026.values())
    for name, command in served.items():
        assert ("--reasoning-parser qwen3" in command) == (name in PARSED), name
