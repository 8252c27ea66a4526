"""``medsweep eval`` end to end: resolve the endpoint and model, run the tasks, score, summarise.

``evaluate`` is what the CLI, ``make eval`` and the sweep call. It raises ``MedsweepError`` for anything
the user must fix before a request is sent (unreachable endpoint, wrong key, model not served, missing
data) and returns normally once every request has a final outcome or the run was interrupted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from pipeline.config import EvalConfig, without_credentials
from pipeline.endpoint import Endpoint, ServedModel
from pipeline.errors import ConfigError, DataError, EndpointError
from pipeline.evaluation.client import Client
from pipeline.evaluation.loglik import LoglikScorer
from pipeline.evaluation.progress import Progress
from pipeline.evaluation.recheck import determinism_provenance, recheck
from pipeline.evaluation.scheduler import EvalRun, EvalTarget, RunResult
from pipeline.evaluation.scorecard import TaskSummary, print_summary, score_tasks
from pipeline.evaluation.thinking import Thinking
from pipeline.failures import fix_for, is_transient
from pipeline.request import merge_stops
from pipeline.store.database import Store

if TYPE_CHECKING:
    from pipeline.serving.provenance import LauncherFacts

_DEFAULT_MAX_MODEL_LEN = 4096


@dataclass(frozen=True, slots=True)
class EvalOutcome:
    run: RunResult
    target: EvalTarget
    tasks: tuple[str, ...]
    skipped_tasks: tuple[str, ...]
    summaries: tuple[TaskSummary, ...]
    scored_at: float = 0.0  # wall-clock time scoring ended (a sweep's timeline)


def select_tasks(
    requested: Sequence[str], data_dir: Path, variant: str = "paper"
) -> tuple[list[str], list[str]]:
    """The tasks to run and the tasks skipped for lack of data (only when none were named); ``loglik``
    runs the tasks whose prompt file lists answer options."""
    from pipeline.evaluation.loglik import option_tasks
    from pipeline.tasks import get_task, task_names

    names = task_names()
    if variant == "loglik":
        names = option_tasks()
    if requested:
        unknown = [t for t in requested if t not in names]
        if unknown and variant == "loglik" and unknown[0] in task_names():
            raise DataError(
                f"task {unknown[0]!r} has no answer options to score: --variant loglik runs "
                f"{', '.join(names)} (a prompt file's [loglik] table)"
            )
        if unknown:
            raise DataError(f"unknown task {unknown[0]!r}: choose from {', '.join(names)}")
        selected = list(requested)
        skipped: list[str] = []
    else:
        selected = [t for t in names if get_task(t).data_path(data_dir).exists()]
        if not selected:
            raise DataError(
                f"no task has data under {data_dir}: see `medsweep data check --data-dir {data_dir}`"
            )
        skipped = [t for t in names if t not in selected]
    # Load every dataset now, so that a missing or malformed file fails before the endpoint is contacted or
    # anything is written to the store (the loaders' errors name the file, line and field, and where to get
    # a missing file).
    for name in selected:
        get_task(name).expected_count(data_dir, None)
    return selected, skipped


def resolve_target(
    config: EvalConfig, served: list[ServedModel], base_url: str
) -> tuple[EvalTarget, EvalConfig]:
    """Match the requested model to what the endpoint serves; fold in its registry config (stop strings)."""
    from pipeline.models.registry import load_registry

    registry = load_registry()
    ids = [m.id for m in served]
    wanted = config.model.served_name or config.model.name
    entry = registry.get(config.model.name) if config.model.name else None
    if not wanted:
        if len(ids) != 1:
            raise EndpointError(
                f"{without_credentials(base_url)} serves {len(ids)} models ({', '.join(ids)}): "
                "pass --model NAME"
            )
        wanted = ids[0]
    if wanted in ids:
        served_id = wanted
    elif entry is not None and entry.adapter is None and entry.hf_id in ids:
        # (A LoRA entry's hf_id is its base's: only its own name reaches the adapter.)
        served_id = entry.hf_id
    else:
        raise EndpointError(
            f"model {wanted!r} is not served at {without_credentials(base_url)} "
            f"(it serves: {', '.join(ids) or 'nothing'}): "
            "pass --model with one of those, or start it with `make serve MODEL=...`"
        )
    if entry is None:
        entry = registry.get(served_id)
    card = next(m for m in served if m.id == served_id)
    max_len = card.max_model_len or config.model.max_model_len
    if max_len is None and entry is not None:
        max_len = entry.max_model_len
    stop = tuple(merge_stops(config.sampling.stop, entry.stop if entry else []))
    config = config.model_copy(update={"sampling": config.sampling.model_copy(update={"stop": stop})})
    if entry is not None:
        identity = entry.identity(config.model.revision or None)
        chat_mode = entry.chat_mode
    else:
        identity = config.model.identity or served_id
        chat_mode = config.model.chat_mode
    thinking = Thinking.resolve(entry.reasoning if entry else None, config.run.reasoning_split)
    context = max_len or _DEFAULT_MAX_MODEL_LEN
    budget = context - thinking.prompt_room(context)
    if entry is not None and budget >= context:
        # The registry checks its own max_model_len; a server started with a smaller one (--max-model-len,
        # a sweep's per-model override) is found here, before anything is sent.
        raise ConfigError(
            f"servers/{entry.name}.toml: reasoning.thinking_budget: {budget} tokens of trace and answer "
            f"leave no room for a prompt in the context {served_id} is served with ({context} tokens); "
            "serve it with a larger --max-model-len or lower the budget"
        )
    return EvalTarget(identity, served_id, chat_mode, context, thinking=thinking), config


OnGenerated = Callable[[RunResult, EvalTarget, list[str]], None]
"""Called once generation is over (every request has its final outcome in the store, or the run was
interrupted) and before scoring: a sweep stops the server and hands its GPUs on from here."""


async def _evaluate(
    config: EvalConfig,
    tasks: list[str],
    console: Console,
    launcher: LauncherFacts | None,
    on_generated: OnGenerated | None = None,
) -> EvalOutcome:
    from pipeline.evaluation.tokens import make_counter
    from pipeline.evaluation.truncation import resolve_truncation
    from pipeline.scoring.extras import scorer_provenance
    from pipeline.serving.provenance import RunProvenance, collect_provenance
    from pipeline.tasks import get_task

    api_key = config.endpoint.api_key.get_secret_value() if config.endpoint.api_key else None
    base_url = config.endpoint.base_urls[0]
    async with (
        Client(config.client, config.endpoint.base_urls, api_key) as client,
        Endpoint(base_url, api_key) as endpoint,
    ):
        served = await endpoint.list_models()
        target, config = resolve_target(config, served, base_url)
        card = next(m for m in served if m.id == target.served_name)
        # At once: the server idles until the first request, each probe a round trip.
        counter, load, server, determinism = await asyncio.gather(
            make_counter(endpoint, target.served_name),
            endpoint.load(),
            collect_provenance(endpoint, card=card),
            determinism_provenance(endpoint, config.client.concurrency),
        )
        # Backpressure only where the server reports its load (vLLM's /metrics).
        server_load = endpoint.load if load is not None else None
        run_provenance = RunProvenance.of(server, len(config.endpoint.base_urls), launcher)
        truncation = resolve_truncation(config.run.truncation, run_provenance.vllm_version)
        target = dataclasses.replace(target, truncation=truncation)
        provenance = run_provenance.model_copy(
            update={"truncation": truncation, "scorers": scorer_provenance(tasks), **determinism}
        ).as_json()
        loglik = None
        if config.run.variant == "loglik":
            loglik = LoglikScorer(client, endpoint, base_url, target.served_name)
            await loglik.check_endpoint()  # before the store is touched: a refusal leaves nothing behind
        store = Store.open(config.run.out)
        try:
            # Held through scoring: a second eval of this model would send the same requests again.
            with store.lock(target.identity, config.run.variant):
                progress = Progress(tasks, console=console)
                run = EvalRun(
                    config, target, [get_task(t) for t in tasks], client, store, counter, progress,
                    provenance=provenance, server_load=server_load, loglik=loglik,
                )  # fmt: skip
                warming = asyncio.create_task(_warm_scoring(run.busy, tasks)) if config.run.score else None
                try:
                    result = await run.run()
                    if config.run.recheck and not result.interrupted:
                        checked = await recheck(
                            config, target, run.tasks, client, store, counter, result.run_id, loglik
                        )
                        console.print(
                            f"recheck: {checked['raw_agree']} of {checked['n']} raw outputs and "
                            f"{checked['parsed_agree']} of {checked['n']} parsed answers agree when sent "
                            "again one at a time (temperature 0)",
                            highlight=False,
                        )
                    if on_generated is not None:
                        on_generated(result, target, tasks)
                    summaries = []
                    if warming is not None:
                        await _warmed(warming, run.busy)
                        summaries = score_tasks(store, target.identity, config.run.variant, tasks)
                finally:
                    if warming is not None:
                        warming.cancel()
        finally:
            store.close()
    return EvalOutcome(result, target, tuple(tasks), (), tuple(summaries), time.time())


async def _warm_scoring(busy: asyncio.Event, tasks: list[str]) -> None:
    """Load what scoring reads on first use (ROUGE, the ICD-10 table: 0.1-0.3 s) in a thread, once the
    server is busy: before that, the imports' hold on the GIL would delay the first requests."""
    from pipeline.tasks import scores

    await busy.wait()
    await asyncio.to_thread(scores.warm_up, tasks)


async def _warmed(warming: asyncio.Task[None], busy: asyncio.Event) -> None:
    """Wait for the warm-up; a run that ended before the server was busy (interrupted) cancels it, and
    scoring loads what it needs. A load that failed fails again in scoring, which names the task."""
    if not busy.is_set():
        warming.cancel()
    await asyncio.gather(warming, return_exceptions=True)


def score_stored(out: Path, identity: str, variant: str, tasks: Sequence[str]) -> list[TaskSummary]:
    """Score what the store under ``out`` holds of ``identity`` on ``tasks`` (an eval run with
    ``run.score = false`` generated it): no server is needed. Holds the model's store lock, as the eval
    does, so that it never scores beside a running eval of the same model."""
    store = Store.open(out)
    try:
        with store.lock(identity, variant):
            return score_tasks(store, identity, variant, tasks)
    finally:
        store.close()


def run_evaluation(
    config: EvalConfig,
    *,
    console: Console | None = None,
    launcher: LauncherFacts | None = None,
    on_generated: OnGenerated | None = None,
) -> EvalOutcome:
    """Run the eval described by ``config`` (progress on ``console``) and score it; print nothing else.

    ``launcher`` adds what the sweep knows about the server it started (image, GPUs, TP size) and its
    pass to the run's provenance; ``on_generated`` is called between generation and scoring.
    """
    console = console or Console(stderr=True)
    tasks, skipped = select_tasks(config.run.tasks, config.run.data_dir, config.run.variant)
    if skipped:
        console.print(f"skipping tasks without data under {config.run.data_dir}: {', '.join(skipped)}")
    outcome = asyncio.run(_evaluate(config, tasks, console, launcher, on_generated))
    return dataclasses.replace(outcome, skipped_tasks=tuple(skipped))


def evaluate(config: EvalConfig, *, console: Console | None = None, argv: Sequence[str] | None = None) -> int:
    """The CLI's eval: run, print the summary and, if interrupted, the command that resumes.

    Exit codes: 0 when every request has a final outcome — transient failures that outlived their retries
    (server errors, timeouts, lost connections) are listed with a note and a rerun retries them; 1 when
    requests failed for a reason the user must fix (prompt longer than the context, key rejected, model
    not found, request rejected); 130 interrupted (SIGINT or SIGTERM; the resume command is printed).
    """
    console = console or Console(stderr=True)
    # Printed: a --base-url's credentials become *** (the user puts them back, or passes a key instead).
    resume = without_credentials(shlex.join(["medsweep", *(argv if argv is not None else sys.argv[1:])]))
    # SIGINT/SIGTERM at any moment of the command (loading data, probing the server, scoring, the summary)
    # end it with the resume line and 130; while requests are in flight the runner handles them itself
    # (graceful stop) and puts these handlers back when it is done.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcome = run_evaluation(config, console=console)
        print_summary(outcome.summaries, outcome.target.identity, config.run.out, console=Console())
        if outcome.run.interrupted:
            return _interrupted(console, resume)
        failed = _failed_by_class(config.run.out, outcome.target.identity, config.run.variant, outcome.tasks)
        if failed:
            must_fix = not all(is_transient(cls) for cls in failed)
            console.print(_failed_line(failed, config.run.out, must_fix), highlight=False, soft_wrap=True)
            return 1 if must_fix else 0
        return 0
    except KeyboardInterrupt:
        return _interrupted(console, resume)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _interrupted(console: Console, resume: str) -> int:
    console.print(f"interrupted: finished results are committed. Resume with:\n  {resume}", soft_wrap=True)
    return 130


def _failed_by_class(out: Path, model: str, variant: str, tasks: Sequence[str]) -> dict[str, int]:
    store = Store.open_readonly(out)
    try:
        return store.tally(model, variant, tasks).failed_by_class if tasks else {}
    finally:
        store.close()


def _failed_line(failed: dict[str, int], out: Path, must_fix: bool) -> str:
    total = sum(failed.values())
    parts = [f"{cls} {n} ({fix_for(cls)})" for cls, n in sorted(failed.items())]
    return (
        f"{'error' if must_fix else 'note'}: {total} request(s) ended failed and are not scored: "
        f"{'; '.join(parts)}. "
        f"`medsweep status --out {out}` lists them; rerun the same command to retry them."
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
