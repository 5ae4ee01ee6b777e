"""What commands print on stdout: JSON, one value per line, ready for ``jq``.

A command that answers with one value prints it (indented when stdout is a terminal, on
one line otherwise); a command that answers with many (rows, documents, changes) prints
one compact JSON value per line (JSON lines). Text is UTF-8, numbers stay exact.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO, Protocol, TypeVar

import click

from .. import _json

_Row = TypeVar("_Row")
_Row_co = TypeVar("_Row_co", covariant=True)


class ClosableRows(Protocol[_Row_co]):
    """A stream of rows of the library (an async generator, a changes feed)."""

    def __aiter__(self) -> ClosableRows[_Row_co]: ...

    def __anext__(self) -> Awaitable[_Row_co]: ...

    async def aclose(self) -> None: ...


class JsonOutput:
    """Writes JSON values to stdout (or ``stream``), one per line."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._pretty = _is_terminal(self._stream)

    def value(self, value: Any) -> None:
        """Prints the one answer of a command (indented on a terminal) and flushes."""
        if self._pretty:
            text = json.dumps(value, indent=2, ensure_ascii=False).encode()
        else:
            text = _json.dumps(value)
        self._stream.write(text + b"\n")
        self._stream.flush()

    def line(self, value: Any) -> None:
        """Prints one value of many on its own line (buffered: call :meth:`flush`)."""
        self._stream.write(_json.dumps(value) + b"\n")

    def flush(self) -> None:
        """Hands what was printed to the reader (a pipe, a follower of the output)."""
        self._stream.flush()

    async def lines(self, rows: ClosableRows[_Row], shown: Callable[[_Row], Any]) -> None:
        """Prints ``shown(row)`` for each row as it arrives, one a line, then flushes.

        The stream is closed here, also when printing fails (a reader that went away):
        left to the garbage collector, it would be closed while the client shuts down.
        """
        try:
            async for row in rows:
                self.line(shown(row))
        finally:
            await rows.aclose()
        self.flush()


def _is_terminal(stream: BinaryIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _MessageHandler(logging.Handler):
    """Shows the library's log records on stderr as ``aiocouch: warning: ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"aiocouch: {record.levelname.lower()}: {record.getMessage()}", err=True)


def show_library_messages(quiet: bool) -> None:
    """Sends the library's warnings (a Mango query without index, a followed feed that
    resumes after an error) to stderr; with ``quiet``, only errors."""
    logger = logging.getLogger("aiocouch")
    for handler in [h for h in logger.handlers if isinstance(h, _MessageHandler)]:
        logger.removeHandler(handler)
    handler = _MessageHandler(logging.ERROR if quiet else logging.WARNING)
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > handler.level:
        logger.setLevel(handler.level)
