"""Progress of long work on stderr: a rich bar on a terminal, plain lines otherwise.

stdout stays clean for the data a command prints (JSON lines for ``jq``), so
progress always goes to stderr.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

#: Seconds between two plain progress lines when stderr is not a terminal.
PLAIN_INTERVAL = 2.0


class Progress:
    """Counts of finished items with rate and ETA, shown until the work ends.

    ``Progress(total, label, quiet)``: ``total`` is the number of items expected
    (``None`` when unknown; :meth:`set_total` may give it later), ``label`` names
    the work ("backup mydb"), ``quiet`` shows nothing at all. Use it as a context
    manager and call :meth:`advance` as items finish::

        with Progress(total=len(docs), label="restore", quiet=False) as progress:
            for batch in batches:
                ...
                progress.advance(len(batch))

    On a terminal it draws a rich bar (count, percent, rate, elapsed, ETA); on a
    pipe or file it writes a plain line at most every ``interval`` seconds and a
    last one when the work ends, e.g. ``restore: 1200/20000 (6%) 850/s ETA 0:00:22``.
    """

    def __init__(
        self,
        total: int | None,
        label: str,
        quiet: bool,
        *,
        stream: TextIO | None = None,
        interval: float = PLAIN_INTERVAL,
    ) -> None:
        self.total = total
        self.label = label
        self.quiet = quiet
        self.completed = 0
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._started = time.monotonic()
        self._last_line = self._started
        self._rich: RichProgress | None = None
        self._task_id: TaskID | None = None

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._last_line = self._started
        if self.quiet:
            return self
        if _is_terminal(self._stream):
            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=False,
            )
            self._rich.start()
            self._task_id = self._rich.add_task(self.label, total=self.total, rate="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.quiet:
            return
        if self._rich is not None:
            self._refresh_rich()
            self._rich.stop()
            self._rich = None
        else:
            self._write_line(ending="done" if exc_type is None else "stopped")

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more finished items (and redraw at most every interval)."""
        self.completed += n
        if self.quiet:
            return
        if self._rich is not None:
            self._refresh_rich()
            return
        now = time.monotonic()
        if now - self._last_line >= self._interval:
            self._last_line = now
            self._write_line(ending=None)

    def set_total(self, total: int | None) -> None:
        """Give (or correct) the number of items expected, once it is known."""
        self.total = total
        if self._rich is not None and self._task_id is not None:
            self._rich.update(self._task_id, total=total)

    def rate(self) -> float:
        """Items per second since the work started."""
        elapsed = time.monotonic() - self._started
        return self.completed / elapsed if elapsed > 0 else 0.0

    def describe(self) -> str:
        """The plain progress line: label, count, percent, rate and ETA."""
        parts = [f"{self.label}: {self.completed}"]
        if self.total is not None:
            parts[0] += f"/{self.total}"
            if self.total > 0:
                parts.append(f"({100 * self.completed // self.total}%)")
        rate = self.rate()
        parts.append(f"{rate:.0f}/s")
        if self.total is not None and rate > 0 and self.completed < self.total:
            parts.append(f"ETA {_clock((self.total - self.completed) / rate)}")
        return " ".join(parts)

    def _refresh_rich(self) -> None:
        assert self._rich is not None and self._task_id is not None
        self._rich.update(self._task_id, completed=self.completed, rate=f"{self.rate():.0f}/s")

    def _write_line(self, *, ending: str | None) -> None:
        line = self.describe()
        if ending is not None:
            line += f", {ending} after {_clock(time.monotonic() - self._started)}"
        self._stream.write(line + "\n")
        self._stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
