"""The free-port helpers: a port the OS just handed out, or a block of consecutive free ports."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports that are free now, for a sweep's ``base_port``.

    Drawn below the kernel's ephemeral range, where the OS hands out client ports, so that the block is not
    taken by a connection made after it was checked; random, so that tests running side by side rarely meet.
    """
    low = _ephemeral_low()
    for _ in range(200):
        base = random.randrange(10_000, low - count)
        if all(_bindable(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports below {low}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
