"""The per-sample paired viewer's section of report.html: the filters, the data as a JSON block, and the
script that renders it (``viewer.js``, with ``viewer.css``). Inline, so the file works from ``file://``
without a network."""

from __future__ import annotations

from html import escape
from pathlib import Path

from pipeline.report.samples import SampleSet

_HERE = Path(__file__).resolve().parent
NOTICE = (
    "This report contains model outputs and references (the per-sample viewer, made with "
    "<code>medsweep report --samples</code>). They can hold patient text: keep and share this file only "
    "as the data it came from allows."
)
_TITLE = "Samples: biomedical vs general, item by item"
_VERDICTS = (
    ("better", "biomedical better"),
    ("worse", "biomedical worse"),
    ("tie", "tie"),
    ("none", "no verdict (a side failed or is unscored)"),
)


def asset(name: str) -> str:
    """``viewer.js`` or ``viewer.css``; they are ours, but must not close the element they are put in."""
    text = (_HERE / name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise AssertionError(f"{name} must not contain a closing script or style tag")
    return text


def _options(choices: list[tuple[str, str]], everything: str) -> str:
    first = f"<option value=''>{escape(everything)}</option>"
    return first + "".join(f"<option value='{escape(v)}'>{escape(label)}</option>" for v, label in choices)


def viewer_section(samples: SampleSet) -> str:
    if not samples.rows:
        return (
            f"<section id='samples'><h2>{_TITLE}</h2><p class='note'>No biomedical/general pair was "
            "compared: there are no paired samples (see the notes).</p></section>"
        )
    pairs = [
        (
            str(i),
            f"{p['biomedical']} vs {p['general']}"
            + ("" if p["variant"] == "paper" else f" ({p['variant']})"),
        )
        for i, p in enumerate(samples.pairs)
    ]
    failures = [(":none", "no failure"), (":any", "any failure"), *((c, c) for c in samples.error_classes)]
    filters = (
        f"<label>Pair<select id='samples-pair'>{_options(pairs, 'all pairs')}</select></label>"
        f"<label>Task<select id='samples-task'>"
        f"{_options([(u, u) for u in samples.units], 'all tasks')}</select></label>"
        f"<label>Verdict<select id='samples-verdict'>{_options(list(_VERDICTS), 'all verdicts')}"
        "</select></label>"
        f"<label>Failure<select id='samples-failure'>{_options(failures, 'all')}</select></label>"
        "<label>Search<input id='samples-search' type='search' "
        "placeholder='item id, output, reference, error'></label>"
    )
    return (
        f"<section id='samples'><h2>{_TITLE}</h2>"
        "<p class='meta'>Every item of every compared task, both models' answers side by side with the "
        "reference. An item's verdict compares the two models' value on it (the mean of the paper's metrics "
        "that both have, as in the paired table): biomedical better, worse, or a tie; none when a side "
        "failed, is not scored or has no result. Failed requests are never scored as wrong. Prompts are "
        "rendered again from the data and shown when they hash to the stored prompt.</p>"
        f"<div class='filters'>{filters}</div>"
        "<div class='pager'><button type='button' id='samples-prev'>previous</button>"
        "<button type='button' id='samples-next'>next</button><span id='samples-count'></span></div>"
        "<noscript><p class='note'>The sample viewer needs JavaScript.</p></noscript>"
        "<div id='samples-rows'></div>"
        f"<script type='application/json' id='samples-data'>{samples.as_json()}</script>"
        f"<script>{asset('viewer.js')}</script></section>"
    )
