"""A command imports only what it uses: `medsweep --help` pins its import set (bench/startup.py times it).

Run in a fresh interpreter, so that nothing another test imported counts. The forbidden modules are what
made `--help` slow before (docs/performance.md): the engines' modules (the engine registry is lazy), the
HTTP clients, polars and pydantic (the registry's and the config's models).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import REPO_ROOT

_PROBE = """
import contextlib, io, json, sys
from pipeline.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""
_FORBIDDEN = ("aiohttp", "httpx", "polars", "pydantic")


def _imported(*argv: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    modules: list[str] = json.loads(proc.stdout)
    return modules


def test_help_imports_no_engine_no_http_client_no_polars() -> None:
    modules = _imported("--help")
    assert "pipeline.cli" in modules  # the probe ran the command line
    engines = [m for m in modules if m.startswith("pipeline.serving.engines.")]
    assert engines == [], f"--help imported engine modules: {engines}"
    heavy = [m for m in modules if m.split(".")[0] in _FORBIDDEN]
    assert heavy == [], f"--help imported {sorted({m.split('.')[0] for m in heavy})}"


def test_the_engine_names_are_known_without_importing_an_engine() -> None:
    modules = _imported("serve", "--help")
    assert [m for m in modules if m.startswith("pipeline.serving.engines.")] == []
