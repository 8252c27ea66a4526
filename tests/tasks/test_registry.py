"""The task registry: one module per task, every list of tasks derived from it, no task without a scorer."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.scoring.settings import clue_settings
from pipeline.scoring.types import ScoredItem
from pipeline.tasks import get_task
from pipeline.tasks.registry import TaskDef, get_def, register, task_names


def _def(**changes: object) -> TaskDef:
    fields: dict[str, object] = {
        "name": "probe",
        "order": 99,
        "requests": type("Probe", (), {"name": "probe"})(),
        "score": lambda output, reference, subtask: ScoredItem(None, True, {"accuracy": 0.0}),
        "metrics": ("accuracy",),
    }
    return TaskDef(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_task_without_a_scorer_is_refused_at_registration() -> None:
    with pytest.raises(ConfigError, match=r"'probe' .* has no scorer"):
        register(_def(score=None))
    with pytest.raises(ConfigError, match="reports no metrics"):
        register(_def(metrics=()))
    assert "probe" not in task_names()


def test_a_task_clue_toml_gives_bertscore_needs_its_text_pair() -> None:
    with pytest.raises(ConfigError, match="no text_pair"):
        register(_def(name="meqsum", requests=type("Q", (), {"name": "meqsum"})()))


def test_a_name_registers_once() -> None:
    with pytest.raises(ConfigError, match="registered twice"):
        register(get_def("mednli"))


def test_every_task_of_the_study_is_registered_with_its_metrics() -> None:
    settings = clue_settings()
    study = {t for tasks in settings.levels.values() for t in tasks}
    assert study | set(settings.paper_metrics) <= set(task_names())
    for name in task_names():
        spec = get_def(name)
        assert spec.requests is get_task(name) and spec.requests.name == name
        if name in settings.paper_metrics:
            assert spec.metrics == settings.paper_metrics[name]


def test_the_cli_names_the_tasks_in_their_order() -> None:
    from pipeline.commands import score as score_command

    assert task_names() == score_command._TASKS
    assert task_names()[:6] == ("mednli", "meqsum", "probsum", "longhealth", "medisumqa", "medisumcode")


def test_unknown_task() -> None:
    with pytest.raises(ConfigError, match="unknown task 'nope'; choose from mednli, meqsum"):
        get_def("nope")


def test_a_task_reporting_an_undeclared_metric_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"reports metric 'nonesuch', which is not declared; .*\.toml"):
        register(_def(metrics=("nonesuch",)))
    assert "probe" not in task_names()


def test_every_metric_a_scorer_writes_is_declared_and_in_its_scale() -> None:
    from pipeline.scoring.metrics import find
    from pipeline.tasks.scores import aggregate, score_item

    samples = {
        "mednli": ("entailment", "entailment"),
        "meqsum": ("a short question", "a question"),
        "probsum": ("fever, cough", "fever"),
        "medisumqa": ("yes", "yes"),
        "medisumcode": ("I10, E119", ["I10"]),
        "longhealth": ("The correct answer is A:", "A"),
        "medqa": ("The correct answer is A.", "A"),
    }
    assert set(samples) == set(task_names())
    for task, (output, reference) in samples.items():
        subtask = get_def(task).subtasks[0] if get_def(task).subtasks else ""
        item = score_item(task, output, reference, subtask=subtask)
        for name, value in aggregate(task, [item]).metrics.items():
            declared = find(name)
            assert declared is not None, f"{task} writes undeclared metric {name}"
            assert declared.in_scale(value), f"{task}: {name} = {value} outside {declared.scale}"


def test_a_task_cannot_average_a_lower_is_better_metric_into_its_score(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.scoring import metrics

    declared = dict(metrics.declared())
    declared["no_answer"] = metrics.Metric("no_answer", "no-ans%", "no answer given", "lower", (0.0, 100.0))
    monkeypatch.setattr(metrics, "declared", lambda: declared)
    with pytest.raises(ConfigError, match=r"reports metric 'no_answer', declared lower-is-better; "):
        register(_def(metrics=("accuracy", "no_answer")))
    assert "probe" not in task_names()
