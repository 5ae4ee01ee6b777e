"""Incremental parsing of streamed responses, one row at a time, in bounded memory.

``_all_docs``, views, ``_find`` and normal ``_changes`` answer one JSON object holding one
large array (``rows``, ``docs`` or ``results``). CouchDB writes one array element per line;
:class:`RowParser` decodes each such line as it arrives and falls back to a general
scanner for any other layout (several rows on a line, or a row across lines), so only
the row being received is held in memory. Continuous feeds are newline-delimited JSON,
split by :class:`LineParser` with no limit on the length of a line.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from . import _json

__all__ = ["LineParser", "RowParser", "decode_pieces"]

_WHITESPACE_AND_COMMAS = " \t\r\n,"
_MIN_RETRY_CHARS = 1 << 16


async def decode_pieces(pieces: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The body's pieces as text, decoded incrementally (a piece may split a character)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    async for piece in pieces:
        text = decoder.decode(piece)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


class RowParser:
    """Splits a streamed JSON object into the elements of one array and the other fields."""

    def __init__(self, array_key: str) -> None:
        self._array_start = re.compile(r'"' + re.escape(array_key) + r'"\s*:\s*\[')
        self._array_key = array_key
        self._in_array = False
        self._after_array = False
        self._head: list[str] = []
        self._tail: list[str] = []
        self._pending: list[str] = []
        self._pending_chars = 0
        self._retry_at = 0
        self._scanner = json.JSONDecoder()

    def feed(self, text: str) -> list[tuple[Any, str]]:
        """Takes the next piece of the body; returns the elements it completed.

        Each element comes with its JSON text, for callers that keep the server's copy.
        """
        if self._after_array:
            self._tail.append(text)
            return []
        self._pending.append(text)
        self._pending_chars += len(text)
        if "\n" not in text and self._pending_chars < self._retry_at:
            return []
        buffered = "".join(self._pending)
        self._pending.clear()
        rows: list[tuple[Any, str]] = []
        rest = self._consume(buffered, rows)
        if rest:
            self._pending.append(rest)
        self._pending_chars = len(rest)
        self._retry_at = max(2 * len(rest), _MIN_RETRY_CHARS)
        return rows

    def close(self) -> tuple[list[tuple[Any, str]], dict[str, Any]]:
        """Ends the body; returns its last elements and the object without the array."""
        rest = "".join(self._pending)
        self._pending.clear()
        rows: list[tuple[Any, str]] = []
        if not self._after_array:
            rest = self._consume(rest, rows)
        if not self._after_array and self._in_array:
            raise ValueError(f"The server's answer ended inside the {self._array_key!r} array")
        text = "".join(self._head) + "".join(self._tail) + rest
        return rows, _object(_json.loads(text))

    def _consume(self, text: str, rows: list[tuple[Any, str]]) -> str:
        """Parses what ``text`` completes; returns the incomplete rest."""
        position = 0
        loads = json.loads if _json.has_long_number(text) else _json.loads_unchecked
        if not self._in_array:
            match = self._array_start.search("".join(self._head) + text)
            if match is None:
                self._head.append(text)
                return ""
            head = "".join(self._head) + text
            self._head = [head[: match.end()]]
            text, self._in_array = head[match.end() :], True
        line_end = -1
        multi_value_line_end = -1
        length = len(text)
        while True:
            while position < length and text[position] in _WHITESPACE_AND_COMMAS:
                position += 1
            if position == length:
                return ""
            if text[position] == "]":
                self._after_array = True
                self._tail.append(text[position:])
                return ""
            if line_end < position:
                line_end = text.find("\n", position)
                if line_end == -1:
                    line_end = length
            if line_end < length and line_end > multi_value_line_end:
                line = text[position:line_end].rstrip(_WHITESPACE_AND_COMMAS)
                try:
                    rows.append((loads(line), line))
                    position = line_end + 1
                    continue
                except ValueError:
                    multi_value_line_end = line_end
            try:
                row, end = self._scanner.raw_decode(text, position)
            except ValueError:
                return text[position:]
            rows.append((row, text[position:end]))
            position = end


class LineParser:
    """Splits newline-delimited JSON (a continuous feed) into values; blank lines are skipped."""

    def __init__(self) -> None:
        self._partial: list[str] = []

    def feed(self, text: str) -> list[Any]:
        """Takes the next piece of the body; returns the values of the lines it completed."""
        if "\n" not in text:
            self._partial.append(text)
            return []
        self._partial.append(text)
        lines = "".join(self._partial).split("\n")
        self._partial = [lines.pop()]
        return [_json.loads(line) for line in lines if line.strip()]

    def close(self) -> list[Any]:
        """Ends the body; returns the value of a last line without a newline, if any."""
        partial = "".join(self._partial)
        self._partial = []
        return [_json.loads(partial)] if partial.strip() else []


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"Expected a JSON object from the server, got {type(value).__name__}")
    return value
