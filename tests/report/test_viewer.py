"""`medsweep report --samples`: the per-sample paired viewer, driven in a real headless Chromium over
chromedriver's W3C WebDriver API (``tests.support.webdriver``), and what the report holds without it."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.tasks.registry import get_def, task_names
from tests.support.paths import DEMO_DATA_DIR
from tests.support.require import ran, unavailable
from tests.support.servers import fake_server
from tests.support.stores import SCRIPT_OUTPUT, StoreBuilder, build_pair_store, build_viewer_store
from tests.support.webdriver import BrowserUnavailable, Session, browser

PAIR = ["--pair", "bio-7b=base-7b"]


def _report(run: Path, *flags: str) -> Path:
    assert main(["report", "--out", str(run), *PAIR, "--format", "html", *flags]) == 0
    return run / "report" / "report.html"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    try:
        with browser(tmp_path_factory.mktemp("chromium")) as running:
            ran("chromium")
            yield running
    except BrowserUnavailable as exc:
        unavailable("chromium", str(exc))


@pytest.fixture
def viewer(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    expected = build_viewer_store(tmp_path / "run")
    return _report(tmp_path / "run", "--samples"), expected


def _visible_ids(session: Session) -> list[str]:
    rows = [e for e in session.find_all("[data-item-id]") if session.displayed(e)]
    return [str(session.attribute(e, "data-item-id")) for e in rows]


def _expect_rows(session: Session, expected: list[str]) -> None:
    """Wait until the rows on screen are ``expected`` (the viewer re-renders on each control event)."""
    seen: list[list[str]] = []

    def settled() -> bool:
        seen.append(_visible_ids(session))
        return seen[-1] == expected

    try:
        session.wait_for(settled, f"rows {expected}", timeout_s=10)
    except AssertionError:
        raise AssertionError(f"rows on screen {seen[-1]}, expected {expected}") from None


def _choose(session: Session, select: str, value: str) -> None:
    session.click(session.find(f"#{select} option[value='{value}']"))


def _load(session: Session, page: Path) -> None:
    session.open(page.resolve().as_uri())
    session.wait_for(lambda: session.find_all("[data-item-id]"), "viewer rows (the page's scripts ran)")


def test_viewer_filters_rows_in_headless_chromium(
    session: Session, viewer: tuple[Path, dict[str, list[str]]]
) -> None:
    page, ids = viewer
    _load(session, page)
    everything = ids["mednli"] + ids["meqsum"]
    assert _visible_ids(session) == everything
    assert session.text(session.find("#samples-count")) == "items 1–10 of 10 matching (10 in all)"

    _choose(session, "samples-verdict", "worse")
    _expect_rows(session, ids["worse"])
    _choose(session, "samples-task", "meqsum")
    _expect_rows(session, ["q0"])
    _choose(session, "samples-verdict", "")
    _expect_rows(session, ids["meqsum"])
    _choose(session, "samples-task", "")
    _choose(session, "samples-failure", "timeout")
    _expect_rows(session, ids["timeout"])
    _choose(session, "samples-failure", ":any")
    _expect_rows(session, ids["any_failure"])
    _choose(session, "samples-failure", ":none")
    _expect_rows(session, [i for i in everything if i not in ids["any_failure"]])
    _choose(session, "samples-failure", "")

    search = session.find("#samples-search")
    session.type(search, "PNEUMONIA")  # case-insensitive, in the outputs
    _expect_rows(session, ["q0"])
    session.clear(search)
    session.type(search, "reference summary q3")  # every word, in the reference
    _expect_rows(session, ["q3"])
    session.clear(search)
    session.type(search, "no such text")
    _expect_rows(session, [])
    assert session.text(session.find("#samples-count")) == "no item matches (10 in all)"
    session.clear(search)
    _expect_rows(session, everything)


def test_viewer_shows_markup_in_outputs_as_text(
    session: Session, viewer: tuple[Path, dict[str, list[str]]]
) -> None:
    page, _ = viewer
    assert "<script>window.__pwned" not in page.read_text()
    _load(session, page)
    output = session.find("[data-item-id='q0'] .side.biomedical pre.output")
    assert session.text(output) == SCRIPT_OUTPUT
    assert session.script("return typeof window.__pwned") == "undefined"
    assert not session.find_all("#samples-rows script")


def test_viewer_row_holds_both_sides_reference_and_the_folded_prompt(
    session: Session, viewer: tuple[Path, dict[str, list[str]]]
) -> None:
    page, ids = viewer
    _load(session, page)
    worse = ids["worse"][0]
    row = f"[data-item-id='{worse}']"
    assert session.attribute(session.find(row), "data-verdict") == "worse"
    bio = session.text(session.find(f"{row} .side.biomedical"))
    gen = session.text(session.find(f"{row} .side.general"))
    assert "biomedical: bio-7b" in bio and "score 0.0 (accuracy)" in bio and "strict parse: valid" in bio
    assert f"bio-7b says a wrong label for {worse}" in bio and "parsed: neutral" in bio
    assert "general: base-7b" in gen and "score 100.0" in gen
    assert session.text(session.find(f"{row} .side.reference pre")) in {
        "entailment",
        "contradiction",
        "neutral",
    }
    failed = session.text(session.find(f"[data-item-id='{ids['timeout'][0]}'] .side.biomedical"))
    assert "failed: timeout — boom" in failed

    prompt = session.find(f"{row} details.prompt pre")
    assert not session.displayed(prompt)  # folded away until opened
    summary = session.find(f"{row} details.prompt summary")
    assert session.text(summary) == "prompt (the same for both models)"
    session.click(summary)
    text = session.wait_for(lambda: session.text(prompt), "the opened prompt")
    assert text.startswith("[system]\n") and "[user]" in text
    # MeQSum's stored hashes are placeholders: no rendering of the data gives them, and the row says so.
    summary = session.find("[data-item-id='q1'] details.prompt summary")
    assert session.text(summary) == "prompt (the same for both models) (not shown)"
    session.click(summary)
    why = session.wait_for(
        lambda: session.text(session.find("[data-item-id='q1'] details.prompt pre")), "why"
    )
    assert why.startswith("the prompt was not re-rendered")


def test_samples_notice_is_on_the_first_screen(
    session: Session, viewer: tuple[Path, dict[str, list[str]]]
) -> None:
    page, _ = viewer
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    _load(session, page)
    notice = session.find("#samples-notice")
    assert "contains model outputs and references" in session.text(notice)
    bottom = session.script(
        "const r = arguments[0].getBoundingClientRect(); return [r.bottom, window.innerHeight]",
        {"element-6066-11e4-a52e-4f735466cecf": notice},
    )
    assert 0 < bottom[0] <= bottom[1]


def test_thousand_items_are_paged(session: Session, tmp_path: Path) -> None:
    """A MeQSum-sized pair (1,000 items a model): the page stays small and renders 50 rows at a time."""
    store = StoreBuilder(tmp_path / "run")
    summary = "What are the treatments for type 2 diabetes and how do they interact with my heart pills? " * 3
    for model in ("bio-7b", "base-7b"):
        store.add_run(f"run-{model}", model)
        for i in range(1000):
            value = float((i * 7 + (model == "bio-7b") * 3) % 100)
            store.add(
                f"run-{model}",
                model,
                "meqsum",
                f"q{i:04d}",
                {"rougeL": value, "rouge1": value, "rouge2": value, "bertscore_f1": value},
                output=f"{model}: {summary}",
                reference=f"Treatments for type 2 diabetes? item {i}",
            )
    store.close()
    page = _report(tmp_path / "run", "--samples")
    size = page.stat().st_size
    assert size < 3_000_000, f"report.html for 1,000 paired items is {size} bytes"
    _load(session, page)
    assert len(_visible_ids(session)) == 50
    assert session.text(session.find("#samples-count")) == "items 1–50 of 1000 matching (1000 in all)"
    session.click(session.find("#samples-next"))
    _expect_rows(session, [f"q{i:04d}" for i in range(50, 100)])
    search = session.find("#samples-search")
    session.type(search, "item 999")
    _expect_rows(session, ["q0999"])


def test_viewer_filters_by_pair(session: Session, tmp_path: Path) -> None:
    """Two pairs sharing a general model; items in natural order (q2 before q10)."""
    build_pair_store(tmp_path / "run")
    pairs = ["--pair", "bio-7b=base-7b", "--pair", "other-3b=base-7b"]
    assert main(["report", "--out", str(tmp_path / "run"), *pairs, "--format", "html", "--samples"]) == 0
    _load(session, tmp_path / "run" / "report" / "report.html")
    assert session.text(session.find("#samples-pair option[value='1']")) == "other-3b vs base-7b"
    _choose(session, "samples-pair", "1")
    _choose(session, "samples-task", "meqsum")
    # other-3b answered meqsum items 0-4; base-7b answered q0-q32: no shared item, so no verdict.
    expected = [str(i) for i in range(5)] + [f"q{i}" for i in range(33)]
    _choose(session, "samples-verdict", "none")
    _expect_rows(session, expected)
    # 157 rows of bio-7b vs base-7b (8 task units; LongHealth: 10 items x 2 repeats each), 83 of other-3b's.
    assert session.text(session.find("#samples-count")) == "items 1–38 of 38 matching (240 in all)"
    _choose(session, "samples-pair", "0")
    _expect_rows(session, [f"q{i}" for i in range(30, 33)])  # bio-7b's three timeouts


def test_without_samples_the_report_holds_no_outputs(tmp_path: Path) -> None:
    build_viewer_store(tmp_path / "run")
    text = _report(tmp_path / "run").read_text()
    for absent in ("pneumonia", "says the gold label", "summary of q1", "reference summary", "samples-data"):
        assert absent not in text
    assert "contains model outputs" not in text
    assert stat.S_IMODE((tmp_path / "run" / "report" / "report.html").stat().st_mode) == 0o600


def test_prompts_from_elsewhere_need_data_dir(tmp_path: Path) -> None:
    """A report made away from the eval's data folder says why it shows no prompt; --data-dir fixes it."""
    build_viewer_store(tmp_path / "run", data_dir=tmp_path / "gone")
    page = _report(tmp_path / "run", "--samples")
    mednli = [r for r in _viewer_data(page)["rows"] if r["unit"] == "mednli"]
    whys = {_viewer_data(page)["prompts"][r["sides"][0]["prompt"]].get("why") for r in mednli}
    assert whys == {
        f"the data folder {tmp_path / 'gone'} (from the run's configuration) is not here: make the report "
        "where the eval ran, or pass --data-dir"
    }
    page = _report(tmp_path / "run", "--samples", "--data-dir", str(DEMO_DATA_DIR))
    data = _viewer_data(page)
    texts = [data["prompts"][r["sides"][0]["prompt"]] for r in data["rows"] if r["unit"] == "mednli"]
    assert all(t.get("text", "").startswith("[system]\n") for t in texts)


def test_samples_without_a_pair_say_so(tmp_path: Path) -> None:
    store = StoreBuilder(tmp_path / "run")
    store.add_run("r", "lonely-1b")
    store.add("r", "lonely-1b", "mednli", "m0", {"accuracy": 100.0})
    store.close()
    assert main(["report", "--out", str(tmp_path / "run"), "--format", "html", "--samples"]) == 0
    text = (tmp_path / "run" / "report" / "report.html").read_text()
    assert "No biomedical/general pair was compared: there are no paired samples" in text
    assert "answer m0" not in text


def test_samples_needs_the_html_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_viewer_store(tmp_path / "run")
    code = main(["report", "--out", str(tmp_path / "run"), *PAIR, "--format", "csv", "--samples"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --samples: the sample viewer is part of report.html, but --format csv has no html; "
        "add html to --format"
    ]
    assert not (tmp_path / "run" / "report").exists()


def _viewer_data(page: Path) -> dict[str, Any]:
    found = re.search(r"<script type='application/json' id='samples-data'>(.*?)</script>", page.read_text())
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_prompts_of_real_eval_runs_are_rendered_again(tmp_path: Path) -> None:
    """Two models evaluated on every task of the demo data (fake servers; the general one as a base model,
    so the two prompts differ): every row of the viewer shows each side's prompt, exactly as it was sent."""
    out = tmp_path / "out"
    sent: dict[str, list[dict[str, Any]]] = {}
    for model, mode in (("bio-x", "chat"), ("base-x", "base")):
        with fake_server("--model", model, "--max-model-len", "8192") as server:
            code = main(["eval", "--base-url", server.base_url, "--model", model, "--chat-mode", mode,
                         "--data-dir", str(DEMO_DATA_DIR), "--out", str(out)])  # fmt: skip
            assert code in (0, 1)
            sent[model] = server.requests()
    page = out / "report" / "report.html"
    assert main(["report", "--out", str(out), "--pair", "bio-x=base-x", "--format", "html", "--samples"]) == 0
    data = _viewer_data(page)
    units = {row["unit"] for row in data["rows"]}
    expected = {f"{t}/{s}" if s else t for t in task_names() for s in get_def(t).subtasks or ("",)}
    assert units == expected and {"mednli", "longhealth/task3"} <= units
    prompts = data["prompts"]
    assert all("text" in p for p in prompts), [p["why"] for p in prompts if "why" in p]
    for row in data["rows"]:
        bio, base = (prompts[side["prompt"]]["text"] for side in row["sides"])
        assert bio.startswith("[system]\n") and not base.startswith("[system]")
    shown = {prompts[row["sides"][1]["prompt"]]["text"] for row in data["rows"]}
    assert {body["prompt"] for body in sent["base-x"] if "prompt" in body} == shown
    shown = {prompts[row["sides"][0]["prompt"]]["text"] for row in data["rows"]}
    chats = {
        "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in body["messages"])
        for body in sent["bio-x"]
        if "messages" in body
    }
    assert chats == shown


def test_viewer_folds_the_reasoning_trace_beside_the_answer(session: Session, tmp_path: Path) -> None:
    from tests.support.datasets import write_mednli
    from tests.support.fakeserver import TRACE

    data, out = write_mednli(tmp_path / "data", 6), tmp_path / "run"
    for model, shape in (("thinker", ["--reasoning", "cut"]), ("base", ["--answer", "ENTAILMENT"])):
        with fake_server("--model", model, *shape) as server:
            args = ["eval", "--base-url", server.base_url, "--model", model, "--task", "mednli",
                    "--data-dir", str(data), "--out", str(out)]  # fmt: skip
            assert main(args) == 0
    assert main(["report", "--out", str(out), "--pair", "thinker=base", "--format", "html", "--samples"]) == 0
    _load(session, out / "report" / "report.html")
    row = "[data-item-id] .side.biomedical"
    assert "no answer: the token budget ran out inside the reasoning trace" in session.text(session.find(row))
    trace = session.find(f"{row} details.trace pre")
    assert not session.displayed(trace)  # folded away until opened
    summary = session.find(f"{row} details.trace summary")
    assert session.text(summary) == f"reasoning trace ({len(TRACE) // 2} characters)"
    session.click(summary)
    assert (
        session.wait_for(lambda: session.text(trace), "the opened trace") == TRACE[: len(TRACE) // 2].strip()
    )
    assert not session.find_all("[data-item-id] .side.general details.trace")  # the base model has no trace
