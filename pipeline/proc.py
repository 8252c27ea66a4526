"""Who a process is, beyond its pid: pids are reused (soon, on a busy host) and start again from 1 after a
reboot. A process is the one recorded when this boot's id and its start time since boot both match. Used by
the store lock (pipeline/store/lock.py) and by `medsweep stop` (pipeline/serving/process.py)."""

from __future__ import annotations

from pathlib import Path


def boot_id() -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``); empty where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_ticks(pid: int) -> int | None:
    """``pid``'s start time since boot in clock ticks (field 22 of /proc/PID/stat, after the parenthesised
    command name, which may hold spaces); -1 for a zombie (it has exited); None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields and fields[0] == "Z":
        return -1  # a zombie has exited: never equal to a recorded start
    return int(fields[19]) if len(fields) > 19 else None
