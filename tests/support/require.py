"""Real components a run may require: a test that needs one that cannot start fails instead of skipping.

``MEDSWEEP_REQUIRE`` names them, comma-separated, out of ``COMPONENTS`` (``.ci/run`` sets all five, so CI
cannot go green by skipping). A fixture or test that finds its component unusable calls
``unavailable(component, why)``: it fails the test, naming why, when the component is required, and skips it
as before when not. One that got its component running calls ``ran(component)``. The session's summary
(``summary_lines``, printed by tests/conftest.py at the end of every run, ``-q`` included) says for each
component whether it ran, was skipped or failed (and why), or was not used by the selected tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, NoReturn, get_args

import pytest

Component = Literal["docker", "slurm", "chromium", "vllm", "tmpfs"]
COMPONENTS: tuple[str, ...] = get_args(Component)
ENV = "MEDSWEEP_REQUIRE"
_WHAT = {
    "docker": "private dockerd, docker-compose",
    "slurm": "one-node Slurm cluster",
    "chromium": "headless Chromium",
    "vllm": "CPU vLLM server",
    "tmpfs": "1 MB tmpfs (full disk)",
}


@dataclass
class _Seen:
    ran: bool = False
    reasons: list[str] = field(default_factory=list)  # why it was unavailable, each once


_seen: dict[str, _Seen] = {name: _Seen() for name in COMPONENTS}


def required(value: str | None = None) -> frozenset[str]:
    """The components ``MEDSWEEP_REQUIRE`` names; ``ValueError`` (one line) for a name not in COMPONENTS."""
    text = os.environ.get(ENV, "") if value is None else value
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(names - set(COMPONENTS))
    if unknown:
        raise ValueError(f"{ENV}: unknown component(s) {', '.join(unknown)}; known: {','.join(COMPONENTS)}")
    return names


def ran(component: Component) -> None:
    """Records that ``component`` started and a test is using it."""
    _seen[component].ran = True


def unavailable(component: Component, why: str) -> NoReturn:
    """Fails the current test naming ``why`` when ``component`` is required, else skips it with ``why``."""
    reasons = _seen[component].reasons
    if why not in reasons:
        reasons.append(why)
    # ``from None``: called inside an ``except`` block, the original exception would only repeat ``why``.
    if component in required():
        raise pytest.fail.Exception(
            f"{component} is required ({ENV}) but unavailable: {why}", pytrace=False
        ) from None
    raise pytest.skip.Exception(why) from None


def summary_lines() -> list[str]:
    """One line per component: ran / skipped / FAILED (required) / not used, with the first reason."""
    need = required()
    lines = []
    for name in COMPONENTS:
        seen = _seen[name]
        tag = f"{name} ({_WHAT[name]}{', required' if name in need else ''})"
        if seen.reasons:
            verdict = "FAILED" if name in need else "skipped"
            partly = " where it could not start" if seen.ran else ""
            lines.append(f"{tag}: {'ran, and ' if seen.ran else ''}{verdict}{partly}: {seen.reasons[0]}")
        elif seen.ran:
            lines.append(f"{tag}: ran")
        else:
            lines.append(f"{tag}: not used by the selected tests")
    return lines
