"""What a server computes on. A "cpu" model is a local folder small enough for a CPU (the embedded default).

Its own module so that `medsweep --help` (the choices of `serve --device`) needs no registry to know it.
"""

from __future__ import annotations

from typing import Literal

Device = Literal["gpu", "cpu"]
DEVICES: tuple[Device, ...] = ("gpu", "cpu")
