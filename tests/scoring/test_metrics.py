"""ROUGE values, averaging, format adherence and the optional model-based metrics."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.scoring import ScoredItem
from pipeline.scoring import extras as extras_module
from pipeline.tasks.scores import aggregate, aggregate_by_subtask, paper_metrics, score_batch, score_item

# ---- ROUGE (rouge-score, no stemmer, default tokenizer: lower-cases, keeps [a-z0-9] tokens) ----


def test_rouge_by_hand() -> None:
    # pred "the cat sat" vs ref "the cat": unigrams 2 shared, P=2/3 R=1 -> F=0.8;
    # bigrams {the cat, cat sat} vs {the cat}: P=1/2 R=1 -> 2/3; LCS = 2 -> 0.8.
    metrics = score_item("meqsum", "the cat sat", "the cat").metrics
    assert metrics == pytest.approx({"rouge1": 80.0, "rouge2": 200 / 3, "rougeL": 80.0})


def test_rouge_word_order() -> None:
    # Same unigrams, no shared bigram, LCS = 1 of 2 -> P=R=1/2.
    metrics = score_item("meqsum", "cat the", "the cat").metrics
    assert metrics == pytest.approx({"rouge1": 100.0, "rouge2": 0.0, "rougeL": 50.0})


def test_rouge_tokenizer_ignores_case_and_punctuation() -> None:
    metrics = score_item("medisumqa", "The CAT!", "the cat").metrics
    assert metrics == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})


def test_empty_summary_scores_zero_and_is_not_adherent() -> None:
    item = score_item("meqsum", "   ", "Who makes bromocriptine?")
    assert item.metrics == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert not item.strict_valid


def test_probsum_follows_v3_lower_casing_and_medisumqa_strips() -> None:
    assert score_item("probsum", "Acute Kidney Injury", "AKI").parsed == {"text": "acute kidney injury"}
    assert score_item("medisumqa", "  Yes, it was.\n", "Yes").parsed == {"text": "Yes, it was."}
    assert score_item("meqsum", " Who? ", "Who?").parsed == {"text": " Who? "}


# ---- aggregation ----


def test_aggregate_counts_every_item_once() -> None:
    # The official update_results counts the first item twice: it would give 66.67 here.
    items = [score_item("mednli", "NEUTRAL", "neutral"), score_item("mednli", "ENTAILMENT", "neutral")]
    score = aggregate("mednli", items)
    assert score.n == 2
    assert score.metrics["accuracy"] == 50.0
    assert score.metrics["format_adherence"] == 100.0
    assert score.missing == ()


def test_format_adherence_is_share_of_strict_valid_items() -> None:
    items = [
        score_item("longhealth", "The correct answer is A: x", "A", subtask="task1"),
        score_item("longhealth", "A", "A", subtask="task1"),
        score_item("longhealth", "", "A", subtask="task1"),
        score_item("longhealth", "The correct answer is B: y", "A", subtask="task1"),
    ]
    score = aggregate("longhealth", items)
    assert score.metrics["format_adherence"] == 50.0
    assert score.metrics["accuracy"] == 25.0
    assert score.metrics["accuracy_lenient"] == 50.0


def test_aggregate_of_nothing() -> None:
    score = aggregate("meqsum", [])
    assert score.n == 0 and score.metrics == {}
    assert score.missing == paper_metrics("meqsum")


def test_partial_metric_is_noted() -> None:
    items = [
        ScoredItem("a", True, {"rouge1": 10.0, "bertscore_f1": 50.0}),
        ScoredItem("b", False, {"rouge1": 20.0}),
    ]
    score = aggregate("meqsum", items)
    assert score.metrics["bertscore_f1"] == 50.0
    assert any("1 of 2" in note for note in score.notes)


def test_longhealth_subtasks_get_prefixed_keys() -> None:
    groups = {
        "task1": [score_item("longhealth", "The correct answer is A: x", "A", subtask="task1")],
        "task2": [score_item("longhealth", "nonsense", "B", subtask="task2")],
    }
    score = aggregate_by_subtask("longhealth", groups)
    assert score.n == 2
    assert score.metrics["task1_accuracy"] == 100.0
    assert score.metrics["task2_accuracy"] == 0.0
    assert score.metrics["format_adherence"] == 50.0
    assert score.missing == ("task3_accuracy",)


def test_paper_metrics() -> None:
    assert paper_metrics("mednli") == ("accuracy",)
    assert paper_metrics("probsum") == ("rougeL", "rouge1", "rouge2", "bertscore_f1", "umls_f1")
    assert paper_metrics("longhealth") == ("task1_accuracy", "task2_accuracy", "task3_accuracy")


# ---- optional extras: reported missing here, never 0 ----


def test_extras_are_missing_here_not_zero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-xdg"))
    for task in ("meqsum", "probsum", "medisumqa"):
        items = score_batch(task, ["hypertension"], ["hypertension"])
        assert "bertscore_f1" not in items[0].metrics and "umls_f1" not in items[0].metrics
        score = aggregate(task, items)
        expected = ("bertscore_f1", "umls_f1") if task != "meqsum" else ("bertscore_f1",)
        assert score.missing == expected
        assert any("bertscore_f1: not computed" in note for note in score.notes)
    reasons = extras_module.unavailable("probsum")
    assert set(reasons) == {"bertscore_f1", "umls_f1"}
    # The run's provenance (and so the report) says why, per metric; tasks without extras add nothing.
    provenance = extras_module.scorer_provenance(["mednli", "meqsum", "probsum"])
    assert provenance == {name: f"missing: {reasons[name]}" for name in ("bertscore_f1", "umls_f1")}
    assert extras_module.scorer_provenance(["mednli", "longhealth", "medisumcode"]) == {}


def test_scorer_provenance_names_the_versions_when_the_scorers_are_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib import metadata

    monkeypatch.setattr(extras_module, "_bertscore_unavailable", lambda task: None)
    monkeypatch.setattr(extras_module, "_umls_unavailable", lambda: None)
    versions = {"bert-score": "0.3.13", "transformers": "4.39.3", "torch": "2.5.1", "scispacy": "0.5.4",
                "spacy": "3.7.4", "en_core_sci_sm": "0.5.4"}  # fmt: skip
    monkeypatch.setattr(metadata, "version", lambda name: versions[name])
    provenance = extras_module.scorer_provenance(["meqsum", "probsum"])
    assert provenance["bertscore_f1"] == (
        "bert-score 0.3.13, transformers 4.39.3, torch 2.5.1; allenai/scibert_scivocab_uncased layer 8, "
        "emilyalsentzer/Bio_ClinicalBERT layer 9"
    )
    assert provenance["umls_f1"] == "scispacy 0.5.4, spacy 3.7.4, en_core_sci_sm 0.5.4"


def _fake_snapshot(cache: Path, model: str) -> Path:
    snapshot = cache / "hub" / ("models--" + model.replace("/", "--")) / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    return snapshot


def test_local_model_dir_finds_only_complete_cached_snapshots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert extras_module.local_model_dir("emilyalsentzer/Bio_ClinicalBERT") is None
    snapshot = _fake_snapshot(tmp_path, "emilyalsentzer/Bio_ClinicalBERT")
    assert extras_module.local_model_dir("emilyalsentzer/Bio_ClinicalBERT") == snapshot
    (snapshot / "model.safetensors").unlink()
    assert extras_module.local_model_dir("emilyalsentzer/Bio_ClinicalBERT") is None


def test_bertscore_call_uses_local_snapshot_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A stand-in bert_score package (the real one needs torch and model weights) that records its call.
    package = tmp_path / "pkgs" / "bert_score"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            import os
            calls = []
            class _T:
                def __init__(self, v): self.v = v
                def tolist(self): return self.v
            def score(cands, refs, **kw):
                calls.append((cands, refs, kw, os.environ.get("HF_HUB_OFFLINE")))
                return _T([]), _T([]), _T([0.5] * len(cands))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.delitem(sys.modules, "bert_score", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    snapshot = _fake_snapshot(tmp_path / "hf", "emilyalsentzer/Bio_ClinicalBERT")

    items = score_batch("probsum", ["Sepsis; AKI"], ["SEPSIS, aki"])
    import bert_score

    cands, refs, kwargs, offline = bert_score.calls[0]
    assert cands == ["sepsis; aki"] and refs == ["sepsis, aki"]  # v3 lower-cases ProbSum
    assert kwargs == {
        "model_type": str(snapshot),
        "num_layers": 9,
        "rescale_with_baseline": False,
        "verbose": False,
    }
    assert offline == "1" and "HF_HUB_OFFLINE" not in os.environ
    assert items[0].metrics["bertscore_f1"] == 50.0
    assert aggregate("probsum", items).missing == ("umls_f1",)


def test_bertscore_model_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSWEEP_BERTSCORE_MODEL", "/models/scibert")
    monkeypatch.setenv("MEDSWEEP_BERTSCORE_LAYER", "7")
    setting = extras_module.bertscore_setting("meqsum")
    assert setting is not None and (setting.model, setting.layer) == ("/models/scibert", 7)
    monkeypatch.delenv("MEDSWEEP_BERTSCORE_MODEL")
    monkeypatch.delenv("MEDSWEEP_BERTSCORE_LAYER")
    setting = extras_module.bertscore_setting("meqsum")
    assert setting is not None and (setting.model, setting.layer) == ("allenai/scibert_scivocab_uncased", 8)


def test_umls_set_f1() -> None:
    assert extras_module.set_f1({"a", "b"}, {"b", "c", "d"}) == pytest.approx(
        2 * 0.5 * (1 / 3) / (0.5 + 1 / 3)
    )
    assert extras_module.set_f1(set(), {"a"}) == 0.0


def test_extras_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    items = score_batch("meqsum", ["a"], ["a"], extras=False)
    assert set(items[0].metrics) == {"rouge1", "rouge2", "rougeL"}


def test_umls_pair_keeps_probsum_case() -> None:
    from pipeline.tasks.scores import prepare, prepare_for_umls

    assert prepare("probsum", "Acute MI", "STEMI") == ("acute mi", "stemi")
    assert prepare_for_umls("probsum", "Acute MI", "STEMI") == ("Acute MI", "STEMI")
    assert prepare_for_umls("medisumqa", " Yes \n", "Yes") == ("Yes", "Yes")
