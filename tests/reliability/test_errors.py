"""Bad input through the real CLI (`pipeline.cli.main`): each error names the file, line or field and the
fix, exits non-zero, and leaves a store that already holds results intact. The table of these errors is
the table in docs/errors.md; keep the two in step."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.support.paths import DEMO_DATA_DIR as DEMO
from tests.support.ports import free_port
from tests.support.servers import RunningServer, fake_server


@pytest.fixture(autouse=True)
def _restore_umask_and_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # `medsweep eval` sets a private umask for its process; keep it out of the other tests.
    old = os.umask(0o022)
    os.umask(old)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
    os.umask(old)


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Path:
    """A results directory holding a finished run: every failed invocation below must leave it as is."""
    out = tmp_path_factory.mktemp("good")
    old = os.umask(0o022)
    try:
        code = main(["eval", "--task", "mednli", "--model", "fake-model", "--base-url", server.base_url,
                     "--data-dir", str(DEMO), "--out", str(out / "results")])  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0
    return out / "results"


def _snapshot(out: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return list(conn.execute("SELECT key, status, output FROM results ORDER BY key"))


def _eval(
    capsys: pytest.CaptureFixture[str], base_url: str, data: Path, out: Path, *extra: str
) -> tuple[int, str]:
    before = _snapshot(out)
    code = main(["eval", "--model", "fake-model", "--base-url", base_url, "--data-dir", str(data),
                 "--out", str(out), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert _snapshot(out) == before, "a failed invocation changed results that were already stored"
    return code, err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def _mednli(folder: Path, text: str) -> Path:
    path = folder / "mednli" / "mli_test_v1.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


_ROW = {"pairID": "p", "gold_label": "neutral", "sentence1": "a.", "sentence2": "b."}


def _rows(n: int) -> str:
    return "".join(json.dumps({**_ROW, "pairID": f"p{i}"}) + "\n" for i in range(n))


def test_malformed_jsonl_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], server: RunningServer,
                              good_store: Path) -> None:  # fmt: skip
    path = _mednli(tmp_path, _rows(4) + '{"pairID": "broken", \n' + _rows(2))
    code, err = _eval(capsys, server.base_url, tmp_path, good_store, "--task", "mednli")
    assert code == 2
    assert f"{path}:5: not valid JSON" in _one_line_error(err)
    assert "each line must be one JSON object" in err


def test_wrong_type_in_a_row_names_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: RunningServer, good_store: Path
) -> None:
    path = _mednli(tmp_path, _rows(3) + json.dumps({**_ROW, "gold_label": 3}) + "\n")
    code, err = _eval(capsys, server.base_url, tmp_path, good_store, "--task", "mednli")
    assert code == 2
    line = _one_line_error(err)
    assert f"{path}: line 4: field 'gold_label'" in line
    assert "lowercase gold_label" in line


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], server: RunningServer,
                    good_store: Path) -> None:  # fmt: skip
    path = _mednli(tmp_path, "")
    code, err = _eval(capsys, server.base_url, tmp_path, good_store, "--task", "mednli")
    assert code == 2
    assert f"{path} is empty" in _one_line_error(err)


def test_missing_column_in_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str], server: RunningServer,
                               good_store: Path) -> None:  # fmt: skip
    path = tmp_path / "probsum" / "BioNLP2023-1A-Test.csv"
    path.parent.mkdir(parents=True)
    path.write_text("File ID,Subjectives,Objectives,Assessment\n1,s,o,a\n")
    code, err = _eval(capsys, server.base_url, tmp_path, good_store, "--task", "probsum")
    assert code == 2
    line = _one_line_error(err)
    assert f"{path}: no column 'Summary'" in line and "the header must include" in line


def test_missing_column_in_xlsx(tmp_path: Path, capsys: pytest.CaptureFixture[str], server: RunningServer,
                                good_store: Path) -> None:  # fmt: skip
    import openpyxl

    path = tmp_path / "meqsum" / "MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx"
    path.parent.mkdir(parents=True)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["File", "Summary"])
    sheet.append(["1", "a summary"])
    book.save(path)
    code, err = _eval(capsys, server.base_url, tmp_path, good_store, "--task", "meqsum")
    assert code == 2
    line = _one_line_error(err)
    assert f"{path}: sheet" in line and "has no column 'CHQ'" in line and "File, CHQ and Summary" in line


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], server: RunningServer,
                           good_store: Path) -> None:  # fmt: skip
    code, err = _eval(capsys, server.base_url, tmp_path, good_store, "--task", "mednli")
    assert code == 2
    line = _one_line_error(err)
    assert str(tmp_path / "mednli" / "mli_test_v1.jsonl") in line


def test_unknown_task(tmp_path: Path, capsys: pytest.CaptureFixture[str], server: RunningServer,
                      good_store: Path) -> None:  # fmt: skip
    code, err = _eval(capsys, server.base_url, DEMO, good_store, "--task", "pubmedqa")
    assert code == 2
    assert "unknown task 'pubmedqa': choose from mednli, meqsum" in _one_line_error(err)


def test_unknown_model(capsys: pytest.CaptureFixture[str], server: RunningServer, good_store: Path) -> None:
    code = main(["eval", "--model", "no-such-model", "--base-url", server.base_url, "--data-dir", str(DEMO),
                 "--out", str(good_store), "--task", "mednli"])  # fmt: skip
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2
    assert "model 'no-such-model' is not served at" in line and "it serves: fake-model" in line


def test_bad_config_key_and_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       server: RunningServer, good_store: Path) -> None:  # fmt: skip
    config = tmp_path / "run.toml"
    config.write_text("[client]\nconcurency = 4\n")
    code, err = _eval(capsys, server.base_url, DEMO, good_store, "--task", "mednli", "--config", str(config))
    assert code == 2
    assert f"{config}: unknown field 'client.concurency': remove it or check its spelling" in _one_line_error(
        err
    )
    config.write_text('[client]\nconcurrency = "many"\n')
    code, err = _eval(capsys, server.base_url, DEMO, good_store, "--task", "mednli", "--config", str(config))
    assert code == 2
    assert f"{config}: field 'client.concurrency'" in _one_line_error(err) and "'many'" in err
    code, err = _eval(capsys, server.base_url, DEMO, good_store, "--task", "mednli", "--concurrency", "0")
    assert code == 2
    assert "field 'client.concurrency': Input should be greater than or equal to 1 (got 0)" in err


def test_unreachable_endpoint(capsys: pytest.CaptureFixture[str], good_store: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, err = _eval(capsys, url, DEMO, good_store, "--task", "mednli")
    assert code == 2
    line = _one_line_error(err)
    assert f"cannot reach {url}" in line and "check --base-url" in line


def test_base_url_without_scheme(capsys: pytest.CaptureFixture[str], good_store: Path) -> None:
    code, err = _eval(capsys, "127.0.0.1:8000", DEMO, good_store, "--task", "mednli")
    assert code == 2
    assert "must start with http:// or https://" in _one_line_error(err)


def test_wrong_api_key(capsys: pytest.CaptureFixture[str], good_store: Path,
                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    with fake_server("--api-key", "the-right-key") as keyed:
        monkeypatch.setenv("OPENAI_API_KEY", "a-wrong-key")
        code, err = _eval(capsys, keyed.base_url, DEMO, good_store, "--task", "mednli")
        assert keyed.stats()["received"] == 0  # refused before a single prompt was sent
    assert code == 2
    line = _one_line_error(err)
    assert "rejected the API key (HTTP 401)" in line and "set OPENAI_API_KEY" in line
    assert "a-wrong-key" not in err and "the-right-key" not in err


def test_not_an_openai_endpoint_404(capsys: pytest.CaptureFixture[str], server: RunningServer,
                                    good_store: Path) -> None:  # fmt: skip
    code, err = _eval(capsys, f"{server.root}/api", DEMO, good_store, "--task", "mednli")
    assert code == 2
    line = _one_line_error(err)
    assert f"GET {server.root}/api/v1/models answered HTTP 404" in line and "check --base-url" in line


def test_model_not_served_per_request_404_is_recorded_not_found(tmp_path: Path) -> None:
    # The endpoint lists the model but answers 404 for it (renamed between listing and use): the
    # eval loop records class not_found, never a wrong answer.
    import asyncio

    from tests.support.counting import CountingTask, eval_config, run_eval

    with fake_server("--model", "another-model") as other:
        asyncio.run(run_eval(eval_config([other.base_url], tmp_path), CountingTask(3)))
        assert other.stats()["received"] == 3  # not retried
    with sqlite3.connect(tmp_path / "medsweep.sqlite") as conn:
        rows = list(conn.execute("SELECT status, error_class, error_message FROM results"))
    assert {(s, c) for s, c, _ in rows} == {("failed", "not_found")}
    assert all("does not exist" in m for _, _, m in rows)


def test_prompt_longer_than_the_context(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        good_store: Path) -> None:  # fmt: skip
    out = tmp_path / "short"
    with fake_server("--max-model-len", "100") as short:
        before = _snapshot(good_store)
        code = main(["eval", "--model", "fake-model", "--base-url", short.base_url, "--data-dir", str(DEMO),
                     "--out", str(out), "--task", "mednli"])  # fmt: skip
        assert short.stats()["received"] == 9  # each sent once: not retried
    err = capsys.readouterr().err
    assert code == 1
    line = _one_line_error(err)
    assert "9 request(s) ended failed and are not scored: context_length 9" in line
    assert "--max-model-len" in line and f"medsweep status --out {out}" in line
    assert _snapshot(good_store) == before
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0


def test_truncated_bodies_outliving_the_retries_are_transient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A truncated JSON body is retried like a 5xx; if every attempt is cut short the request is recorded
    # failed with class invalid_response, named in a note, and the exit code stays 0 (docs/errors.md).
    out = tmp_path / "cut"
    config = tmp_path / "fast.toml"
    config.write_text("[client]\nbackoff_base = 0.01\nbackoff_max = 0.02\n")
    with fake_server("--ptruncated", "1.0") as cut:
        code = main(["eval", "--model", "fake-model", "--base-url", cut.base_url, "--data-dir", str(DEMO),
                     "--out", str(out), "--task", "mednli", "--max-attempts", "2",
                     "--config", str(config)])  # fmt: skip
        assert cut.stats()["received"] == 18  # 9 requests, each sent twice
    err = capsys.readouterr().err
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "9 request(s) ended failed and are not scored: invalid_response 9" in notes[0]
    assert not [line for line in err.splitlines() if line.startswith("error: ")]
    with sqlite3.connect(out / "medsweep.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0
