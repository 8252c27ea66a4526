"""``medsweep eval --recheck N``: is the server deterministic at temperature 0?

After the run, N committed items, chosen at random (seeded by the run id, reservoir-sampled while the
requests are rendered again, so memory holds N requests), are sent again one at a time with temperature 0,
and the new raw output and parsed answer are compared with the stored ones (``--variant loglik``: the
option sums and the chosen option). vLLM's outputs at temperature 0 can drift with batch composition
(its batch invariance, ``VLLM_BATCH_INVARIANT``, is GPU-only and beta), so the run's provenance also
records the server's prefix caching, ``VLLM_BATCH_INVARIANT`` where known, and the client's concurrency.
The outcome is merged into the run's provenance (``recheck``) and the report shows it per model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from pipeline.config import EvalConfig
from pipeline.endpoint import Endpoint
from pipeline.evaluation.client import Client
from pipeline.evaluation.loglik import LoglikScorer
from pipeline.evaluation.scheduler import EvalTarget, prompt_options, render_context
from pipeline.request import Request, content_key, request_body
from pipeline.store.database import Store
from pipeline.tasks.base import Task, TokenCounter

RECHECK = "recheck"  # the provenance key


async def recheck(
    config: EvalConfig,
    target: EvalTarget,
    tasks: Sequence[Task],
    client: Client,
    store: Store,
    counter: TokenCounter,
    run_id: str,
    loglik: LoglikScorer | None = None,
) -> dict[str, Any]:
    """Re-send ``config.run.recheck`` committed items; returns (and stores in the run's provenance) the
    agreement: ``n``, ``raw_agree``, ``parsed_agree`` and per item its coordinates and whether each agreed."""
    from pipeline.tasks import scores

    n = config.run.recheck
    sampling = config.sampling.to_sampling()
    greedy = {**sampling.as_body(), "temperature": 0.0}
    done = store.succeeded_keys(target.identity, config.run.variant)
    ctx = render_context(config, target, counter)
    options = prompt_options(config, target)
    rng = random.Random(run_id)
    chosen: list[tuple[Request, str]] = []
    seen = 0
    thinking = target.thinking
    for task in tasks:
        async for rendered in task.requests(config.run.data_dir, ctx):
            request = rendered if rendered.choices else thinking.apply(rendered)  # as the run sent it
            key = content_key(target.identity, request, sampling, options)
            if key not in done:
                continue
            seen += 1  # reservoir sampling: every committed item equally likely
            if len(chosen) < n:
                chosen.append((request, key))
            elif (slot := rng.randrange(seen)) < n:
                chosen[slot] = (request, key)
    stored = store.stored_answers([key for _, key in chosen])
    items: list[dict[str, Any]] = []
    for request, key in chosen:
        output, choice_logprobs = stored[key]
        item: dict[str, Any] = {"task": request.task, "subtask": request.subtask,
                                "item_id": request.item_id, "repeat": request.repeat}  # fmt: skip
        if request.choices and loglik is not None:
            again = await loglik.score(request, key)
            item["raw_same"] = again.choice_logprobs == choice_logprobs
            item["parsed_same"] = again.outcome.ok and again.outcome.text == output
        else:
            chat = request.kind == "chat"
            body = request_body(request, target.served_name, greedy)
            path = "chat/completions" if chat else "completions"
            outcome = await client.send(path, body, chat=chat, split=thinking.split)
            item["raw_same"] = outcome.ok and outcome.text == output
            item["parsed_same"] = outcome.ok and _parsed(scores, request, outcome.text) == _parsed(
                scores, request, output or ""
            )
        items.append(item)
    result = {
        "n": len(items),
        "raw_agree": sum(bool(i["raw_same"]) for i in items),
        "parsed_agree": sum(bool(i["parsed_same"]) for i in items),
        "items": items,
    }
    store.add_provenance(run_id, {RECHECK: result})
    return result


def _parsed(scores: Any, request: Request, output: str) -> Any:
    """The task's parse of ``output`` (strict and lenient), as ``medsweep score`` reads it."""
    try:
        return scores.score_item(request.task, output, request.reference, subtask=request.subtask).parsed
    except Exception as exc:  # an unusable answer parses to its error, alike for alike
        return f"unparsed: {type(exc).__name__}"


async def determinism_provenance(endpoint: Endpoint, concurrency: int) -> dict[str, Any]:
    """What makes temperature-0 outputs repeat or drift, as the endpoint and the client say: prefix caching
    (vLLM's ``cache_config_info`` gauge; None where the endpoint has none) and the client's concurrency.
    ``VLLM_BATCH_INVARIANT`` is a fact of the server as medsweep started it (its record, read by
    pipeline.serving.provenance): no endpoint reports it."""
    prefix = await endpoint.prefix_caching()
    return {"prefix_caching": prefix, "concurrency": concurrency}
