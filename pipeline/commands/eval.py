"""`medsweep eval`: send every prompt of the chosen tasks to an endpoint, store and score the answers."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.paths import DATA_DIR, DEMO_DATA_DIR, RESULTS_DIR
from pipeline.request import SPLITTERS


class _Variants:
    """``pipeline.config.Variant``'s values, read when argparse checks or lists them: importing the
    configuration (pydantic) at start-up would slow every command."""

    def __contains__(self, name: object) -> bool:
        return name in _variants()

    def __iter__(self) -> Iterator[str]:
        return iter(_variants())


def _variants() -> tuple[str, ...]:
    from typing import get_args

    from pipeline.request import Variant

    return get_args(Variant)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "eval",
        help="evaluate a served model on the tasks",
        description="Fan every prompt out to an OpenAI-compatible endpoint, store each answer durably, "
        "score it. Rerunning the same command resumes: finished requests are never sent again.",
    )
    p.add_argument("--task", help="comma-separated tasks (default: every task with data)")
    p.add_argument("--model", help="registry name (servers/) or served model id")
    p.add_argument("--served-name", metavar="NAME",
                   help="the id the endpoint serves --model under, when it differs (a gateway, a shared "
                   "server); results stay keyed by --model")  # fmt: skip
    p.add_argument("--base-url", action="append", dest="base_urls", metavar="URL",
                   help="endpoint, e.g. http://127.0.0.1:8000/v1; repeat for replicas")  # fmt: skip
    default_data = f"{DATA_DIR}/, else {DEMO_DATA_DIR.name}/"
    p.add_argument("--data-dir", type=Path, help=f"one folder per task (default: {default_data})")
    p.add_argument("--out", type=Path, help=f"results directory (default: {RESULTS_DIR})")
    p.add_argument("--concurrency", type=int, help="requests in flight (default 64)")
    p.add_argument("--rate", type=float, help="requests per second cap")
    p.add_argument("--timeout", type=float, help="seconds per attempt (default 600)")
    p.add_argument("--limit", type=int, help="items per task (after few-shot removal)")
    p.add_argument("--config", type=Path, help="TOML config file (see docs/eval.md)")
    p.add_argument("--variant", choices=_Variants(),
                   help="prompt variant (default paper); loglik scores the options of the choice tasks "
                   "by their log-probability instead of generating (docs/eval.md)")  # fmt: skip
    p.add_argument("--demonstrations", choices=("v3", "shuffled"),
                   help="few-shot rows as the paper's v3 code chose them (default), or every task "
                   "shuffled with seed 1 first (the later HEAD code)")  # fmt: skip
    p.add_argument("--truncation", choices=("auto", "v3", "letters"),
                   help="over-long prompts: v3 = the server keeps the end of the whole prompt "
                   "(truncate_prompt_tokens), letters = each letter cut to an equal share; auto (default) = "
                   "v3 on vLLM endpoints, else letters")  # fmt: skip
    p.add_argument("--send-order", choices=("longest_first", "data"),
                   help="longest_first (default): the longest prompts are sent first, so that the run ends "
                   "on short requests; data: the tasks' own order")  # fmt: skip
    p.add_argument("--reasoning-split", choices=SPLITTERS,
                   help="how a reply the server did not split is cut into trace and answer (default: the "
                   "registry's, else think-tags: a reply opening <think> is split at </think>)")  # fmt: skip
    p.add_argument("--chat-mode", choices=("chat", "chat_nosystem", "base"),
                   help="for models not in servers/ (default chat)")  # fmt: skip
    p.add_argument("--revision", help="weights revision, part of the model identity")
    p.add_argument("--max-model-len", type=int, help="context length when the endpoint does not report it")
    p.add_argument("--max-attempts", type=int, help="attempts per request (default 8)")
    p.add_argument("--seed", type=int, help="sampling seed (default 1234)")
    p.add_argument("--recheck", type=int, metavar="N",
                   help="after the run, re-send N randomly chosen committed items one at a time (T=0) and "
                   "report how many raw outputs and parsed answers agree (determinism check)")  # fmt: skip
    p.add_argument("--no-backpressure", action="store_true", help="ignore vLLM's queue depth")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import load_config, read_config_file
    from pipeline.evaluation.evaluate import evaluate

    sections = read_config_file(args.config) if args.config else {}

    endpoint: dict[str, Any] = {}
    offers: dict[
        str, bool
    ] = {}  # what the served engine's endpoint serves (pipeline.serving.engines.base.Offers)
    model: dict[str, Any] = {
        "name": args.model,
        "served_name": args.served_name,
        "revision": args.revision,
        "chat_mode": args.chat_mode,
        "max_model_len": args.max_model_len,
    }
    if args.base_urls:
        endpoint["base_urls"] = args.base_urls
    elif not os.environ.get("OPENAI_BASE_URL") and "base_urls" not in sections.get("endpoint", {}):
        offers = _from_serve_state(endpoint, model)
    data_dir = args.data_dir
    if data_dir is None and "data_dir" not in sections.get("run", {}):
        from pipeline.paths import default_data_dir

        data_dir = default_data_dir()
        if data_dir != DATA_DIR:
            print(
                f"note: no {DATA_DIR}/ here: using the synthetic {data_dir}/ (pass --data-dir)",
                file=sys.stderr,
            )
    overrides = {
        "endpoint": endpoint,
        "model": model,
        "client": {
            "concurrency": args.concurrency,
            "rate": args.rate,
            "timeout": args.timeout,
            "max_attempts": args.max_attempts,
            # An engine without vLLM's queue metric is not polled for it.
            "backpressure": False if args.no_backpressure or offers.get("queue_depth") is False else None,
        },
        "sampling": {"seed": args.seed},
        "run": {
            "tasks": [t.strip() for t in args.task.split(",") if t.strip()] if args.task else None,
            "data_dir": data_dir,
            "out": args.out,
            "limit": args.limit,
            "variant": args.variant,
            "demonstrations": args.demonstrations,
            "truncation": args.truncation,
            "reasoning_split": args.reasoning_split,
            "recheck": args.recheck,
            "send_order": args.send_order,
        },
    }
    config = load_config(args.config, overrides, sections=sections)
    return evaluate(config)


def _from_serve_state(endpoint: dict[str, Any], model: dict[str, Any]) -> dict[str, bool]:
    """`make serve && make eval`: evaluate what `medsweep serve` started; returns what its engine's endpoint
    offers (empty when nothing was served or the state file predates engines)."""
    from pipeline.serving.state import read_state

    state = read_state()
    if state is None:
        return {}
    endpoint["base_urls"] = [state.openai_base_url]
    if state.api_key_env and os.environ.get(state.api_key_env):
        endpoint["api_key"] = os.environ[state.api_key_env]
    if not model.get("name"):
        model["name"] = state.model
        model["served_name"] = model.get("served_name") or state.served_model
    return state.offers
