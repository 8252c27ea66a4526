"""The split of a reasoning model's reply into trace and answer (pure function: no server needed)."""

from __future__ import annotations

import pytest

from pipeline.evaluation.reasoning_split import Reply, from_server, is_no_answer, split_reply


@pytest.mark.parametrize(
    ("text", "answer", "trace"),
    [
        ("<think>maybe NEUTRAL</think>\n\nENTAILMENT", "ENTAILMENT", "maybe NEUTRAL"),
        ("  \n<think>\nstep one\n</think>ENTAILMENT", "ENTAILMENT", "step one"),
        ("<think>cut by the budget, CONTRADICTION?", "", "cut by the budget, CONTRADICTION?"),  # no answer
        ("opened by the prompt</think>\nA", "A", "opened by the prompt"),  # R1's template opens the tag
        ("<think></think>\n\nB", "B", ""),  # Qwen3 with thinking switched off: an empty trace
        ("ENTAILMENT", "ENTAILMENT", None),  # a model that does not reason is left alone
        ("The answer is <think> not a tag here", "The answer is <think> not a tag here", None),
    ],
)
def test_think_tags(text: str, answer: str, trace: str | None) -> None:
    assert split_reply(text, "think-tags") == Reply(answer, trace)


@pytest.mark.parametrize(
    ("text", "answer", "trace"),
    [
        (
            "## Thinking\nit could be B\n\n## Final Response\nThe answer is A",
            "The answer is A",
            "it could be B",
        ),
        ("## Thinking\nstill thinking when the budget ran out", "", "still thinking when the budget ran out"),
        ("The answer is A", "The answer is A", None),
        ("<think>tags</think>A", "A", "tags"),  # a reply opening <think> is split for any model
    ],
)
def test_markdown_headings(text: str, answer: str, trace: str | None) -> None:
    assert split_reply(text, "markdown-headings") == Reply(answer, trace)


def test_none_keeps_the_reply_whole() -> None:
    assert split_reply("<think>x</think>A", "none") == Reply("<think>x</think>A", None)


def test_the_servers_trace_wins_over_the_splitter() -> None:
    assert from_server("A", "the server's trace", "think-tags") == Reply("A", "the server's trace")
    assert from_server(None, "cut", "think-tags") == Reply("", "cut")
    assert from_server("<think>t</think>A", None) == Reply("A", "t")


def test_no_answer_is_a_trace_without_answer_cut_for_length() -> None:
    assert is_no_answer(Reply("", "trace"), "length")
    assert not is_no_answer(Reply("", "trace"), "stop")  # the model ended: an empty answer, not a cut
    assert not is_no_answer(Reply("A", "trace"), "length")  # an answer, cut short: still an answer
    assert not is_no_answer(Reply("", None), "length")  # no trace: an ordinary empty answer
