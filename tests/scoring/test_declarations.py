"""The metric declarations (pipeline/scoring/metrics.toml): complete, looked up under every name a metric
takes, joined with the paper's choices in clue.toml, and refused with a one-line error when malformed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.scoring import metrics
from pipeline.scoring.settings import clue_settings
from pipeline.scoring.traces import TRACE_METRICS


@pytest.fixture
def metrics_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the declarations that ``declared()`` reads instead of the package's."""
    path = tmp_path / "metrics.toml"
    real = Path(metrics.__file__).with_name("metrics.toml").read_text(encoding="utf-8")
    path.write_text(real, encoding="utf-8")

    class _Files:
        def joinpath(self, name: str) -> Path:
            assert name == "metrics.toml"
            return path

    monkeypatch.setattr(metrics.resources, "files", lambda package: _Files())
    metrics.declared.cache_clear()
    yield path
    metrics.declared.cache_clear()


def test_every_paper_metric_is_declared() -> None:
    for task, names in clue_settings().paper_metrics.items():
        for name in names:
            assert metrics.find(name) is not None, f"clue.toml [paper_metrics] {task}: {name}"


def test_the_summary_labels_in_their_order() -> None:
    labels = {name: m.label for name, m in metrics.declared().items()}
    assert list(labels.items()) == [
        ("accuracy", "acc"),
        ("rougeL", "R-L"),
        ("rouge1", "R-1"),
        ("rouge2", "R-2"),
        ("bertscore_f1", "BERT-F1"),
        ("umls_f1", "UMLS-F1"),
        ("icd_em_f1", "EM-F1"),
        ("icd_ap_f1", "AP-F1"),
        ("icd_valid", "valid%"),
        ("format_adherence", "format %"),
        ("no_answer", "no answer %"),  # a reasoning model's replies (pipeline/scoring/traces.py)
        ("reasoning_tokens_p50", "trace p50"),
        ("reasoning_tokens_p95", "trace p95"),
        ("accuracy_loglik", "loglik acc"),  # --variant loglik (pipeline/scoring/option_logprobs.py)
        ("accuracy_loglik_norm", "loglik acc-norm"),
        ("tied", "tied %"),
    ]
    lower_is_better = {*TRACE_METRICS, "tied"}  # tied: loglik items whose options all score the same
    scored = [m for name, m in metrics.declared().items() if name not in lower_is_better]
    assert all(m.higher_is_better and m.scale == (0, 100) for m in scored)
    assert all(not metrics.metric(name).higher_is_better for name in lower_is_better)


def test_lenient_and_subtask_names_share_the_declaration() -> None:
    accuracy = metrics.metric("accuracy")
    assert metrics.find("accuracy_lenient") == accuracy
    assert metrics.find("task1_accuracy") == accuracy
    assert metrics.find("task2_accuracy_lenient") == accuracy
    assert metrics.find("icd_em_f1_lenient") == metrics.metric("icd_em_f1")
    assert metrics.find("task1_format_adherence") == metrics.metric("format_adherence")
    assert metrics.find("nonesuch") is None
    with pytest.raises(
        ConfigError, match=r"metric 'nonesuch' is not declared; add its table to .*metrics.toml"
    ):
        metrics.metric("nonesuch")


def test_where_the_paper_reports_a_metric() -> None:
    assert metrics.paper_use("accuracy") == {"mednli": 1, "longhealth": 2}
    assert metrics.paper_use("umls_f1") == {"probsum": 1, "medisumqa": 2}
    assert metrics.paper_use("format_adherence") == {}


def test_a_lower_is_better_metric_is_declared_with_one_table(metrics_file: Path) -> None:
    metrics_file.write_text(
        metrics_file.read_text(encoding="utf-8")
        + '\n[refusals]\nlabel = "refused%"\nabout = "100 if the model refused to answer"\nbetter = "lower"\n'
        "scale = [0, 100]\n",
        encoding="utf-8",
    )
    declared = metrics.metric("refusals")
    assert (declared.label, declared.higher_is_better) == ("refused%", False)
    assert list(metrics.declared())[-1] == "refusals"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('label = "x"\nabout = "y"\nbetter = "up"\nscale = [0, 100]', r"\[bad\] field 'better': "),
        ('label = "x"\nabout = "y"\nbetter = "higher"', r"\[bad\] field 'scale': Field required"),
        ('label = "x"\nabout = "y"\nbetter = "higher"\nscale = [100, 0]', r"\[bad\] field 'scale': lowest"),
        (
            'label = "x"\nabout = "y"\nbetter = "higher"\nscale = [0, 1]\ncolour = 1',
            r"\[bad\] field 'colour'",
        ),
    ],
)
def test_a_malformed_declaration_is_one_line_naming_the_file_and_field(
    metrics_file: Path, table: str, message: str
) -> None:
    metrics_file.write_text(f"[bad]\n{table}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pipeline/scoring/metrics.toml: " + message) as caught:
        metrics.declared()
    assert "\n" not in str(caught.value)


def test_which_tasks_get_bertscore_is_said_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.scoring import extras, settings

    real = Path(settings.__file__).with_name("clue.toml").read_text(encoding="utf-8")
    assert extras.extra_metrics("probsum") == ("bertscore_f1", "umls_f1")
    assert extras.extra_metrics("meqsum") == ("bertscore_f1",)
    assert extras.extra_metrics("mednli") == extras.extra_metrics("medqa") == ()
    without = real.replace('[bertscore.meqsum]\nmodel = "allenai/scibert_scivocab_uncased"\nlayer = 8\n', "")
    assert without != real
    (tmp_path / "clue.toml").write_text(without, encoding="utf-8")
    monkeypatch.setattr(settings.resources, "files", lambda package: tmp_path)
    settings.clue_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"clue.toml: meqsum has no \[bertscore.meqsum\] table"):
            settings.clue_settings()
    finally:
        monkeypatch.undo()
        settings.clue_settings.cache_clear()


def test_the_levels_average_only_declared_higher_is_better_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.scoring import level_scores

    complete = {"mednli": {"accuracy": 80.0}}
    assert level_scores(complete).level1_partial == 80.0
    declared = dict(metrics.declared())
    declared["accuracy"] = metrics.Metric("accuracy", "acc", "wrong answers", "lower", (0.0, 100.0))
    monkeypatch.setattr(metrics, "declared", lambda: declared)
    with pytest.raises(
        ConfigError, match=r"clue.toml: \[paper_metrics\] mednli: 'accuracy' is not declared hi"
    ):
        level_scores(complete)
    del declared["accuracy"]
    with pytest.raises(ConfigError, match=r"mednli: 'accuracy' is not declared in .*metrics.toml"):
        level_scores(complete)


def test_scoring_that_runs_a_model_on_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """BERTScore's model goes to a GPU whenever one is visible: declared, and named by ``gpu_scoring`` for
    a task reporting it, where it can run here (a sweep then scores before it releases the GPUs)."""
    from pipeline.scoring import extras

    assert metrics.metric("bertscore_f1").gpu
    assert not any(m.gpu for name, m in metrics.declared().items() if name != "bertscore_f1")
    monkeypatch.setattr(extras, "unavailable", lambda task: {})
    assert extras.gpu_scoring(["mednli", "meqsum"]) == ["meqsum:bertscore_f1"]
    monkeypatch.setattr(
        extras, "unavailable", lambda task: {"bertscore_f1": "package bert-score is not installed"}
    )
    assert extras.gpu_scoring(["meqsum"]) == []
