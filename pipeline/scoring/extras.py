"""Optional model-based metrics: BERTScore F1 and UMLS-F1.

They run only when their packages AND models are already on this machine; nothing is ever downloaded at
run time. When they cannot run, ``unavailable`` says why and the metric is reported in
``TaskScore.missing`` (never as 0)."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.scoring.icd import f1
from pipeline.scoring.settings import BERTSCORE as BERTSCORE
from pipeline.scoring.settings import UMLS as UMLS
from pipeline.scoring.settings import BertScoreSetting, clue_settings
from pipeline.scoring.types import ScoredItem

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def extra_metrics(task: str) -> tuple[str, ...]:
    """The optional metrics the paper reports for ``task`` (``clue.toml [paper_metrics]``)."""
    reported = clue_settings().paper_metrics.get(task, ())
    return tuple(name for name in (BERTSCORE, UMLS) if name in reported)


TextPairs = Callable[[], tuple[Sequence[str], Sequence[str]]]
"""Builds the (predictions, references) a model-based metric compares, one pair per item."""

# Why an optional metric failed at run time, by (task, metric) (reported in TaskScore.notes).
_failures: dict[tuple[str, str], str] = {}


def add_extras(task: str, items: list[ScoredItem], texts: Mapping[str, TextPairs]) -> list[ScoredItem]:
    """``items`` with the optional metrics of ``task`` added where they can run here; ``texts`` gives, per
    metric, the texts it compares. A metric that cannot run, or fails, stays absent (never 0)."""
    wanted = extra_metrics(task)
    if not wanted:
        return items
    cannot = unavailable(task)
    runners: dict[str, Callable[[Sequence[str], Sequence[str]], list[float]]] = {
        BERTSCORE: lambda predictions, references: bertscore_f1(task, predictions, references),
        UMLS: umls_f1,
    }
    computed: dict[str, list[float]] = {}
    for metric in wanted:
        if metric in cannot:
            continue
        try:
            computed[metric] = runners[metric](*texts[metric]())
            _failures.pop((task, metric), None)
        except Exception as exc:  # a model that fails to load offline leaves the metric missing, not 0
            _failures[(task, metric)] = f"{metric}: failed to run ({type(exc).__name__}: {exc})"
    return [
        dataclasses.replace(item, metrics=item.metrics | {m: values[i] for m, values in computed.items()})
        for i, item in enumerate(items)
    ]


def gpu_scoring(tasks: Sequence[str]) -> list[str]:
    """``task:metric`` for each metric of ``tasks`` declared ``gpu = true`` (metrics.toml) that can run on
    this machine: scoring these runs a model on a GPU whenever one is visible."""
    from pipeline.scoring.metrics import find

    found = []
    for task in tasks:
        cannot = unavailable(task)
        for name in extra_metrics(task):
            declared = find(name)
            if declared is not None and declared.gpu and name not in cannot:
                found.append(f"{task}:{name}")
    return found


def missing_notes(task: str, missing: Sequence[str]) -> list[str]:
    """Why each metric in ``missing`` was not computed for ``task``: a failure, an absent package or model,
    or extras switched off."""
    reasons = unavailable(task) if missing else {}
    notes = []
    for name in missing:
        if (task, name) in _failures:
            notes.append(_failures[(task, name)])
        elif name in reasons:
            notes.append(f"{name}: not computed, {reasons[name]}")
        else:
            notes.append(f"{name}: not computed (score with extras=True)")
    return notes


def bertscore_setting(task: str) -> BertScoreSetting | None:
    """The task's BERTScore model and layer, with the environment overrides applied."""
    setting = clue_settings().bertscore.get(task)
    if setting is None:
        return None
    model = os.environ.get("MEDSWEEP_BERTSCORE_MODEL") or setting.model
    layer = os.environ.get("MEDSWEEP_BERTSCORE_LAYER")
    return BertScoreSetting(model, int(layer) if layer else setting.layer)


def unavailable(task: str) -> dict[str, str]:
    """For each optional metric of ``task`` that cannot run here, the reason."""
    reasons: dict[str, str] = {}
    for metric in extra_metrics(task):
        reason = _bertscore_unavailable(task) if metric == BERTSCORE else _umls_unavailable()
        if reason is not None:
            reasons[metric] = reason
    return reasons


def scorer_provenance(tasks: Sequence[str]) -> dict[str, str]:
    """For each optional metric of ``tasks``: the package versions (and BERTScore models) that compute it on
    this machine, or ``missing: <why>``. Stored with the run's provenance, so the report says it."""
    out: dict[str, str] = {}
    bert_tasks = [t for t in tasks if BERTSCORE in extra_metrics(t)]
    if bert_tasks:
        reasons = {t: r for t in bert_tasks if (r := _bertscore_unavailable(t)) is not None}
        models = sorted({f"{s.model} layer {s.layer}" for t in bert_tasks if (s := bertscore_setting(t))})
        versions = _versions(("bert-score", "transformers", "torch"))
        if len(set(reasons.values())) == 1 and len(reasons) == len(bert_tasks):
            out[BERTSCORE] = f"missing: {next(iter(reasons.values()))}"
        elif reasons:
            out[BERTSCORE] = f"missing: {'; '.join(f'{t}: {r}' for t, r in sorted(reasons.items()))}"
        else:
            out[BERTSCORE] = f"{versions}; {', '.join(models)}"
    if any(UMLS in extra_metrics(t) for t in tasks):
        reason = _umls_unavailable()
        model = clue_settings().umls_spacy_model
        out[UMLS] = f"missing: {reason}" if reason else _versions(("scispacy", "spacy", model))
    return out


def _versions(distributions: Sequence[str]) -> str:
    from importlib import metadata

    parts = []
    for name in distributions:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} (version unknown)")
    return ", ".join(parts)


# ---- BERTScore -------------------------------------------------------------------------------------


def _hf_cache_dirs() -> list[Path]:
    dirs = [Path(os.environ[var]) for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE") if os.environ.get(var)]
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        dirs.append(Path(hf_home) / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    dirs.append(Path(xdg) / "huggingface" / "hub")
    return [d.expanduser() for d in dirs]


def _complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any((directory / w).is_file() for w in _WEIGHT_FILES)


def local_model_dir(model: str) -> Path | None:
    """A directory holding ``model`` (a local path, or a hub id's snapshot in the HF cache), or None."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path if _complete(path) else None
    for cache in _hf_cache_dirs():
        repo = cache / ("models--" + model.replace("/", "--"))
        ref = repo / "refs" / "main"
        preferred = [repo / "snapshots" / ref.read_text().strip()] if ref.is_file() else []
        others = sorted((repo / "snapshots").glob("*")) if (repo / "snapshots").is_dir() else []
        for snapshot in preferred + others:
            if _complete(snapshot):
                return snapshot
    return None


def _bertscore_unavailable(task: str) -> str | None:
    setting = bertscore_setting(task)
    if setting is None:
        return "the paper reports no BERTScore for this task"
    if importlib.util.find_spec("bert_score") is None:
        return "package bert-score is not installed"
    if local_model_dir(setting.model) is None:
        return f"model {setting.model} is not in the local Hugging Face cache (nothing is downloaded)"
    return None


@contextmanager
def _offline() -> Iterator[None]:
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bertscore_f1(task: str, predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-pair BERTScore F1 (0–100), no baseline rescaling, with the task's model and layer."""
    setting = bertscore_setting(task)
    directory = local_model_dir(setting.model) if setting else None
    if setting is None or directory is None:
        raise RuntimeError(_bertscore_unavailable(task) or "BERTScore model not found")
    with _offline():
        import bert_score

        # The local snapshot path is passed as the model so that nothing asks the hub.
        _, _, f1 = bert_score.score(
            list(predictions),
            list(references),
            model_type=str(directory),
            num_layers=setting.layer,
            rescale_with_baseline=False,
            verbose=False,
        )
    return [100.0 * float(value) for value in f1.tolist()]


# ---- UMLS-F1 ---------------------------------------------------------------------------------------


def _linker_urls() -> list[str]:
    """The remote files the scispaCy UMLS linker loads (its candidate index and knowledge base)."""
    from scispacy import candidate_generation

    linker = clue_settings().umls_linker
    paths: Any = candidate_generation.DEFAULT_PATHS[linker]
    values = paths._asdict().values() if hasattr(paths, "_asdict") else paths.values()
    urls = [v for v in values if isinstance(v, str) and v.startswith("http")]
    kb_class = candidate_generation.DEFAULT_KNOWLEDGE_BASES[linker]
    kb_default = inspect.signature(kb_class.__init__).parameters.get("file_path")
    if kb_default is not None and isinstance(kb_default.default, str):
        urls.append(kb_default.default)
    return urls


def _cached_urls() -> set[str]:
    from scispacy import file_cache

    cache = Path(file_cache.DATASET_CACHE)
    urls: set[str] = set()
    for meta in cache.glob("*.json") if cache.is_dir() else ():
        try:
            urls.add(str(json.loads(meta.read_text())["url"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return urls


@lru_cache(maxsize=1)
def _umls_unavailable() -> str | None:
    for package in ("spacy", "scispacy"):
        if importlib.util.find_spec(package) is None:
            return f"package {package} is not installed"
    model = clue_settings().umls_spacy_model
    if importlib.util.find_spec(model) is None:
        return f"spaCy model {model} is not installed"
    try:
        cached = _cached_urls()
        absent = [url for url in _linker_urls() if url not in cached]
    except Exception as exc:  # any failure to inspect scispacy means we cannot promise an offline run
        return f"cannot check the UMLS linker files: {exc}"
    if absent:
        return f"{len(absent)} UMLS linker files are not in the scispaCy cache (nothing is downloaded)"
    return None


@lru_cache(maxsize=1)
def _umls_pipeline() -> Any:
    import scispacy.linking  # noqa: F401  (registers the "scispacy_linker" factory)
    import spacy

    settings = clue_settings()
    nlp = spacy.load(settings.umls_spacy_model)
    config = {"resolve_abbreviations": True, "linker_name": settings.umls_linker}
    nlp.add_pipe("scispacy_linker", config=config)
    return nlp


def _concept_names(nlp: Any, text: str) -> set[str]:
    linker = nlp.get_pipe("scispacy_linker")
    return {
        linker.kb.cui_to_entity[entity._.kb_ents[0][0]].canonical_name
        for entity in nlp(text).ents
        if entity._.kb_ents
    }


def set_f1(predicted: set[str], reference: set[str]) -> float:
    """F1 of two concept sets (0–1); 0 when either is empty."""
    return f1(list(predicted), list(reference))  # without duplicates the list F1 is the set F1


def umls_f1(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-pair UMLS-F1 (0–100) on the sets of top-1 concept canonical names."""
    reason = _umls_unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    nlp = _umls_pipeline()
    return [
        100.0 * set_f1(_concept_names(nlp, p), _concept_names(nlp, r))
        for p, r in zip(predictions, references, strict=True)
    ]
