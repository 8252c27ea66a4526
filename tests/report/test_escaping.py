"""report.html's escaping, checked without a browser (the browser's own check: tests/report/test_viewer.py).

Hostile model text — an output, a reference, an error class, an item id, a model name, a run's provenance
and configuration — goes into a store; the report is parsed with the standard library's HTML parser, as a
browser tokenises it: no element or attribute may come from the data (no ``<img onerror>``, no third
``<script>``), each hostile string must read back as text exactly, and the viewer's JSON block must hold no
``<``, ``>`` or ``&`` at all, so nothing in it can end the ``<script>`` element early.
"""

from __future__ import annotations

import json
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pipeline.cli import main
from tests.support.stores import StoreBuilder

HOSTILE = "</script><img src=x onerror=alert(1)><!-- & ' \" <script>window.__pwned=1</script>"
OUTPUT, REFERENCE, ITEM = f"output {HOSTILE}", f"reference {HOSTILE}", f"q{HOSTILE}"
TRACE = f"reasoning trace {HOSTILE}"
ERROR_CLASS = "timeout<b onmouseover=alert(2)>"
MODEL = "other<svg onload=alert(3)>"


class _Page(HTMLParser):
    """Every element and attribute the page holds, its text, and the text of each <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)

    def handle_comment(self, data: str) -> None:
        raise AssertionError(f"a comment in the page: <!--{data[:80]}")


def _hostile_store(out: Path) -> None:
    store = StoreBuilder(out)
    for model in ("bio-7b", "base-7b", MODEL):
        store.add_run(f"run-{model}", model)
    for model in ("bio-7b", "base-7b"):
        store.add(f"run-{model}", model, "meqsum", "q0", {"rougeL": 10.0}, output=OUTPUT, reference=REFERENCE)
        store.add(f"run-{model}", model, "meqsum", ITEM, {"rougeL": 20.0}, output=OUTPUT, reference=REFERENCE)
    store.add("run-bio-7b", "bio-7b", "meqsum", "q1", None, failed=ERROR_CLASS)
    store.add("run-base-7b", "base-7b", "meqsum", "q1", {"rougeL": 5.0}, output=OUTPUT)
    store.add(f"run-{MODEL}", MODEL, "meqsum", "q0", {"rougeL": 1.0}, output=OUTPUT)
    store.close()
    with sqlite3.connect(out / "medsweep.sqlite") as db:  # a hostile served id and configuration too
        db.execute(
            "UPDATE runs SET provenance_json = json_set(provenance_json, '$.served_id', ?), "
            "config_json = json_set(config_json, '$.note', ?)",
            (HOSTILE, HOSTILE),
        )
        # A reasoning model's trace (a column newer than the builder's schema, as Store.open adds it).
        db.execute("ALTER TABLE results ADD COLUMN reasoning TEXT")
        db.execute("UPDATE results SET reasoning = ? WHERE model = 'bio-7b'", (TRACE,))


def _page(tmp_path: Path) -> tuple[str, _Page]:
    out = tmp_path / "run"
    _hostile_store(out)
    flags = ["--pair", "bio-7b=base-7b", "--format", "html", "--samples"]
    assert main(["report", "--out", str(out), *flags]) == 0
    html = (out / "report" / "report.html").read_text()
    page = _Page()
    page.feed(html)
    page.close()
    return html, page


def test_no_element_or_attribute_comes_from_model_text(tmp_path: Path) -> None:
    html, page = _page(tmp_path)
    assert "window.__pwned" in html  # the hostile text is in the page (escaped), so the checks below bite
    handlers = [(tag, name) for tag, attrs in page.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    for tag, attrs in page.tags:
        assert tag not in ("svg", "b") or not any(k.startswith("on") for k in attrs)
        if tag == "img":  # the plots only
            assert str(attrs.get("src")).startswith("data:image/png;base64,"), attrs
    assert [attrs for attrs, _ in page.scripts] == [{"type": "application/json", "id": "samples-data"}, {}]
    text = "".join(page.text)
    # Read back as text, exactly: the failure filter's label, the model's name, provenance and config.
    assert ERROR_CLASS in text and MODEL in text
    assert text.count(f'"served_id": {json.dumps(HOSTILE)}') == 3
    assert text.count(f'"note": {json.dumps(HOSTILE)}') == 3


def test_the_json_block_holds_no_markup_and_reads_back_exactly(tmp_path: Path) -> None:
    html, page = _page(tmp_path)
    (_, block), _viewer = page.scripts
    assert not set(block) & set("<>&"), "the JSON block holds <, > or &"
    data: dict[str, Any] = json.loads(block)
    outputs = {side["output"] for row in data["rows"] for side in row["sides"] if side.get("output")}
    assert OUTPUT in outputs
    assert TRACE in {side["reasoning"] for row in data["rows"] for side in row["sides"]}
    assert ITEM in {row["id"] for row in data["rows"]}
    assert REFERENCE in {row["reference"] for row in data["rows"]}
    assert ERROR_CLASS in {side["error"] for row in data["rows"] for side in row["sides"]}
    assert html.count("</script>") == 2  # the two script elements' own ends, and no other
