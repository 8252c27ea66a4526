"""Scores of ``--variant loglik``: which option the model finds most likely, and whether the numbers are real.

An item's ``choice_logprobs`` (one summed log-probability per option) and its ``request_json`` (the options'
labels and continuations, ``pipeline.evaluation.loglik``) give two per-item metrics (0-100):

- ``accuracy_loglik``: the option with the highest sum is the gold one;
- ``accuracy_loglik_norm``: the same after dividing each sum by its continuation's length in UTF-8 bytes
  (lm-eval's ``acc_norm``), so that long options are not penalised for their length.

An item whose options all score the same (within ``TIE_NATS``) has no answer: it is flagged (``parsed.tied``)
and scores 0. A task where more than ``REFUSE_SHARE`` of the items are tied is refused as broken: the
endpoint returned no real prompt log-probabilities (llama.cpp #27174 scores every option alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.errors import MedsweepError
from pipeline.scoring.means import RunningMeans, mean_metrics
from pipeline.scoring.metrics import FORMAT_ADHERENCE
from pipeline.scoring.types import ScoredItem, TaskScore

ACCURACY = "accuracy_loglik"
ACCURACY_NORM = "accuracy_loglik_norm"
METRICS = (ACCURACY, ACCURACY_NORM)
TIED = "tied"  # 100 when the item's options all scored the same: its mean is the share of tied items
SUMMARY = (*METRICS, TIED)  # what the eval summary shows for this variant (declared in metrics.toml)

TIE_NATS = 1e-6
REFUSE_SHARE = 0.5


def gold_label(reference: Any) -> str:
    """The gold option's label: the reference itself (MedNLI's label, a letter) or its ``answer``."""
    if isinstance(reference, dict):
        reference = reference.get("answer")
    if not isinstance(reference, str) or not reference:
        raise ValueError(f"expected the gold label or {{'answer': label}}, got {reference!r}")
    return reference


def is_tied(logprobs: Sequence[float]) -> bool:
    """Every option scores the same: the endpoint said nothing about them."""
    return max(logprobs) - min(logprobs) <= TIE_NATS


def score_options(
    logprobs: Sequence[float], labels: Sequence[str], continuations: Sequence[str], reference: Any
) -> ScoredItem:
    """One item's metrics from its option sums and the options sent (their labels and answer texts)."""
    if len(logprobs) != len(labels) or len(labels) != len(continuations) or not labels:
        raise ValueError(f"{len(logprobs)} option log-probabilities for {len(labels)} options")
    gold = gold_label(reference).casefold()
    normalised = [lp / max(1, len(text.encode())) for lp, text in zip(logprobs, continuations, strict=True)]
    tied = is_tied(logprobs)
    best = labels[_argmax(logprobs)]
    best_norm = labels[_argmax(normalised)]
    return ScoredItem(
        parsed={"choice": None if tied else best, "choice_norm": None if tied else best_norm, "tied": tied},
        strict_valid=not tied,
        metrics={
            ACCURACY: 100.0 if not tied and best.casefold() == gold else 0.0,
            ACCURACY_NORM: 100.0 if not tied and best_norm.casefold() == gold else 0.0,
            TIED: 100.0 if tied else 0.0,
        },
    )


def aggregate(means: RunningMeans) -> TaskScore:
    """The means of the two accuracies and of ``tied`` (no format adherence: nothing was generated)."""
    if not means.n:
        return TaskScore(n=0, metrics={}, missing=METRICS, notes=("no items to score",))
    metrics, notes = mean_metrics(means)
    metrics.pop(FORMAT_ADHERENCE, None)
    ties = round(metrics[TIED] * means.n / 100)
    if ties:
        notes.append(f"{ties} of {means.n} items score every option the same (flagged, scored 0)")
    return TaskScore(n=means.n, metrics=metrics, notes=tuple(notes))


def refuse_if_broken(task: str, model: str, ties: int, n: int) -> None:
    """A task where most items are tied measured nothing: refuse it rather than report chance."""
    if n and ties > REFUSE_SHARE * n:
        raise MedsweepError(
            f"refused: {ties} of {n} {task} items of {model} score every answer option the same "
            "under --variant loglik, so the endpoint returned no real prompt log-probabilities; nothing is "
            "scored. Evaluate on a server that scores the prompt (vLLM), with a fresh --out"
        )


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: values[i])
