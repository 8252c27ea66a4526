"""The sweep journal: ``<out>/sweep-journal.jsonl``, one JSON event per line, appended and fsynced.

It tells a rerun which models finished (with which settings) and which servers a crashed sweep left
running. It holds ids, ports, reasons and counts; never a key, token or URL with credentials.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.files import open_private, private_dir

JOURNAL_NAME = "sweep-journal.jsonl"


class Journal:
    def __init__(self, out_dir: Path) -> None:
        private_dir(out_dir)
        self.path = out_dir / JOURNAL_NAME
        self._lock = threading.Lock()

    def append(self, model: str, event: str, **details: Any) -> None:
        line = orjson.dumps({"t": round(time.time(), 3), "model": model, "event": event, **details})
        with self._lock:
            fd = open_private(self.path)
            try:
                os.write(fd, line + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)

    def events(self) -> list[dict[str, Any]]:
        """All events; a line cut short by a crash is skipped."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def finished(self) -> dict[str, dict[str, Any]]:
        """model -> its last ``model_done`` event whose status is ``done`` (and not superseded)."""
        last: dict[str, dict[str, Any]] = {}
        for event in self.events():
            if event.get("event") == "model_done":
                last[event["model"]] = event
        return {m: e for m, e in last.items() if e.get("status") == "done"}

    def leftover_servers(self) -> list[dict[str, Any]]:
        """``server_started`` records with no ``server_stopped`` after them (a crashed sweep's servers)."""
        running: dict[tuple[str, int], dict[str, Any]] = {}
        for event in self.events():
            key = (str(event.get("model")), int(event.get("port") or 0))
            if event.get("event") == "server_started":
                running[key] = event
            elif event.get("event") == "server_stopped":
                running.pop(key, None)
        return list(running.values())
