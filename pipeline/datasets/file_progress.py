"""A progress bar for long file passes, shown on a terminal only (a log or a pipe gets nothing)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.datasets.csvstream import Progress as Callback


class FileBars:
    """One bar per pass over a file, in bytes of the file on disk."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    def phase(self, label: str) -> Callback | None:
        """A callback for ``csvstream.open_rows`` that drives a new bar, or ``None`` off a terminal."""
        progress = self._progress
        if progress is None:
            return None
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return update


@contextmanager
def file_bars(stream: TextIO | None = None) -> Iterator[FileBars]:
    """Bars on ``stream`` (default stderr) when it is a terminal; otherwise callbacks that are ``None``."""
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        yield FileBars(None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as progress:
        yield FileBars(progress)
