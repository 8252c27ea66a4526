"""`bench/client_overhead.py` runs end to end and prints every figure docs/performance.md quotes (small N).

Timings are not asserted (they belong to the benchmark); that the benchmark still works is.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.paths import REPO_ROOT as REPO


def test_client_overhead_benchmark_prints_every_figure() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "client_overhead.py"), "--requests", "128", "--rounds", "1",
         "--rss", "256"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    x = r"\d+\.\d+"  # a figure
    assert re.search(rf"medsweep full eval path : {x} ms", text), text
    assert re.search(rf"openai SDK loop +: {x} ms", text), text
    assert re.search(rf"ratio medsweep / openai : {x}", text), text
    assert re.search(rf"fake server +: medsweep {x} s \({x}x\), bare aiohttp {x} s", text), text
    canned = rf"canned bytes +: medsweep {x} s .*bare aiohttp {x} s .*raw asyncio protocol {x} s"
    assert re.search(canned, text), text
    assert re.search(r"256 requests: peak RSS \d+ MB", text), text
