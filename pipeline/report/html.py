"""One self-contained HTML file: summary, plots embedded as base64 PNG, tables, notes, run provenance."""

from __future__ import annotations

import base64
import datetime as dt
from html import escape

import orjson
import polars as pl

from pipeline import __version__
from pipeline.report.build import Report
from pipeline.report.samples import SampleSet
from pipeline.report.tables import cell, named_tables

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1150px;
color:#222;padding:0 1rem;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
.meta{color:#666;font-size:.9rem}
.summary{background:#f4f7fb;border-left:4px solid #2166ac;padding:.6rem 1.2rem}
table{border-collapse:collapse;font-size:.82rem;margin:.6rem 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr.better td{background:#e6f4ea}tr.worse td{background:#fdecea}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9rem}
pre{background:#f7f7f7;padding:.5rem;font-size:.78rem;overflow-x:auto}.note{color:#8a5a00}
"""


def _table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows(named=True):
        verdict = str(row.get("verdict", ""))
        css = f' class="{verdict}"' if verdict in ("better", "worse") else ""
        body.append(
            f"<tr{css}>" + "".join(f"<td>{escape(cell(c, v))}</td>" for c, v in row.items()) + "</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _time(value: float | None) -> str:
    return "" if value is None else dt.datetime.fromtimestamp(value, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pretty(text: str | None) -> str:
    if not text:
        return "(none)"
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return text


def _provenance(runs: pl.DataFrame) -> str:
    parts = []
    for row in runs.sort(["model", "started_at"], nulls_last=True).iter_rows(named=True):
        parts.append(
            f"<details><summary><b>{escape(str(row['model']))}</b> ({escape(str(row['variant']))}) — run "
            f"{escape(str(row['run_id']))}, {_time(row['started_at'])} → "
            f"{_time(row['finished_at'])}</summary>"
            f"<p class='meta'>store: {escape(str(row['store']))}</p>"
            f"<h4>Provenance</h4><pre>{escape(_pretty(row['provenance_json']))}</pre>"
            f"<h4>Configuration</h4><pre>{escape(_pretty(row['config_json']))}</pre></details>"
        )
    return "".join(parts) or "<p><em>(no runs recorded)</em></p>"


def render_html(report: Report, plots: dict[str, tuple[str, bytes]], samples: SampleSet | None = None) -> str:
    """The report page; with ``samples`` (``--samples``) also the per-sample viewer, announced at the top."""
    from pipeline.report import viewer

    tables = named_tables(report)
    figures = "".join(
        f"<figure><img alt='{escape(caption)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
        for caption, png in plots.values()
    )
    sections = "".join(f"<h2>{escape(title)}</h2>{_table(frame)}" for title, frame in tables.values())
    notes = "".join(f"<li class='note'>{escape(n)}</li>" for n in report.notes)
    summary = "".join(f"<li>{escape(line)}</li>" for line in report.summary)
    style = _CSS + (viewer.asset("viewer.css") if samples is not None else "")
    notice = f"<p class='private' id='samples-notice'>{viewer.NOTICE} <a href='#samples'>The samples.</a></p>"
    generated = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>medsweep report</title><style>{style}</style></head>
<body>
<h1>medsweep report</h1>
{notice if samples is not None else ""}
<p class="meta">Does biomedical fine-tuning beat the general base model?
(CLUE tasks; Dada et al., arXiv 2404.04067). Generated {generated} by medsweep {escape(__version__)};
seed {report.seed}; {len(report.stores)} store(s), {report.runs.height} run(s).
Scores are on a 0-100 scale; differences are biomedical minus general, in points.</p>
<h2>Summary</h2><ul class="summary">{summary}</ul>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
<h2>Plots</h2>{figures}
{sections}
{viewer.viewer_section(samples) if samples is not None else ""}
<h2>Runs and provenance</h2>{_provenance(report.runs)}
</body></html>
"""
