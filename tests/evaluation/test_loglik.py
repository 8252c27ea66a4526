"""``--variant loglik`` without a model: the options each task scores, the keys, the refusals.

The scores themselves are checked on the real CPU vLLM against transformers (tests/test_vllm_loglik.py). Here
our fake server stands in for endpoints that cannot score a prompt: it answers completions without any
log-probabilities (as llama.cpp's server does for prompt tokens), and with ``--no-vllm-api`` it has no
``/tokenize``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import MedsweepError
from pipeline.evaluation.loglik import cache_salt, continuation_sum
from pipeline.evaluation.tokens import EstimateCounter
from pipeline.paths import DEMO_DATA_DIR
from pipeline.request import Request, Sampling, content_key
from pipeline.scoring import option_logprobs
from pipeline.scoring.means import RunningMeans
from pipeline.tasks import get_task
from pipeline.tasks.base import RenderContext
from tests.support.servers import RunningServer, fake_server


def _requests(task: str, variant: str) -> list[Request]:
    ctx = RenderContext(
        chat_mode="chat",
        max_model_len=8192,
        counter=EstimateCounter(),
        variant=variant,
        limit=1,  # type: ignore[arg-type]
    )

    async def collect() -> list[Request]:
        return [r async for r in get_task(task).requests(DEMO_DATA_DIR, ctx)]

    return asyncio.run(collect())


def test_the_options_are_written_as_the_answer_format_writes_them() -> None:
    (nli,) = _requests("mednli", "loglik")
    assert nli.choices == (
        ("entailment", "entailment"), ("neutral", "neutral"), ("contradiction", "contradiction")
    )  # fmt: skip
    (qa,) = _requests("medqa", "loglik")
    assert [c for _, c in qa.choices] == [f"The correct answer is {x}." for x in "ABCD"]
    by_subtask = {r.subtask: r for r in _requests("longhealth", "loglik") if r.repeat == 0}
    assert [label for label, _ in by_subtask["task1"].choices] == list("ABCDE")
    assert [label for label, _ in by_subtask["task2"].choices] == list("ABCDEF")
    _, answer = by_subtask["task3"].choices[-1]
    assert answer == "The correct answer is F: Question cannot be answered with provided documents."
    # The prompt is the paper variant's, unchanged; only the key differs (a score is never an answer).
    (paper,) = _requests("mednli", "paper")
    assert (paper.messages, paper.extra_body) == (nli.messages, nli.extra_body) and not paper.choices
    assert content_key("m", paper, Sampling()) != content_key("m", nli, Sampling())


def test_tied_options_are_flagged_and_a_mostly_tied_task_is_refused() -> None:
    labels = texts = ["entailment", "neutral", "contradiction"]
    right = option_logprobs.score_options([-5.0, -2.0, -1.0], labels, texts, "contradiction")
    assert right.metrics == {
        option_logprobs.ACCURACY: 100.0,
        option_logprobs.ACCURACY_NORM: 100.0,
        option_logprobs.TIED: 0.0,
    }
    # Per byte the long "contradiction" (-1.95 / 13) beats "neutral" (-1.9 / 7).
    longer = option_logprobs.score_options([-5.0, -1.9, -1.95], labels, texts, {"answer": "contradiction"})
    assert (longer.metrics[option_logprobs.ACCURACY], longer.metrics[option_logprobs.ACCURACY_NORM]) == (
        0.0,
        100.0,
    )
    tied = option_logprobs.score_options(
        [-3.0, -3.0, -3.0], labels, texts, "entailment"
    )  # not the first option
    assert tied.parsed["tied"] and tied.metrics[option_logprobs.ACCURACY] == 0.0
    means = RunningMeans([right, tied])
    summary = option_logprobs.aggregate(means)
    assert summary.metrics == {
        option_logprobs.ACCURACY: 50.0,
        option_logprobs.ACCURACY_NORM: 50.0,
        option_logprobs.TIED: 50.0,
    }
    assert summary.notes == ("1 of 2 items score every option the same (flagged, scored 0)",)
    option_logprobs.refuse_if_broken("mednli", "m", 2, 4)  # half: flagged, kept
    with pytest.raises(MedsweepError, match="refused: 3 of 4 mednli items of m score every answer option"):
        option_logprobs.refuse_if_broken("mednli", "m", 3, 4)


def test_continuation_sums_need_every_prompt_token() -> None:
    assert continuation_sum([None, -1.0, -2.0, -0.5, -0.25], 2, 2) == -2.5
    assert continuation_sum([None, -1.0], 1, 2) is None  # generated tokens only: too short
    assert continuation_sum(None, 0, 1) is None
    assert continuation_sum([None, None, None], 1, 2) is None
    assert cache_salt("k", 0) != cache_salt("k", 1) == cache_salt("k", 1)


def _eval(server: RunningServer, out: Path, *extra: str) -> int:
    return main(["eval", "--base-url", server.base_url, "--model", "fake-model", "--variant", "loglik",
                 "--data-dir", str(DEMO_DATA_DIR), "--out", str(out), *extra])  # fmt: skip


def test_an_endpoint_without_prompt_logprobs_is_refused_before_anything_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_server() as server:
        code = _eval(server, tmp_path / "out", "--task", "mednli")
        sent = server.requests()
    (err,) = capsys.readouterr().err.strip().splitlines()  # one line
    assert code == 2
    assert err.startswith(f"error: {server.base_url} returns no prompt log-probabilities")
    assert "Serve the model with vLLM" in err
    assert len(sent) == 1 and sent[0]["echo"] is True and sent[0]["logprobs"] == 1  # only the probe
    assert not (tmp_path / "out" / "medsweep.sqlite").exists()


def test_an_endpoint_without_tokenize_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_server("--no-vllm-api") as server:
        code = _eval(server, tmp_path / "out", "--task", "medqa")
        assert server.requests() == []
    err = capsys.readouterr().err
    assert code == 2
    assert "error: --variant loglik needs the server's tokenizer" in err and "/tokenize failed" in err


def test_a_task_without_options_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_server() as server:
        assert _eval(server, tmp_path / "out", "--task", "meqsum") == 2
    err = capsys.readouterr().err
    assert (
        "task 'meqsum' has no answer options to score: --variant loglik runs mednli, longhealth, medqa" in err
    )
