"""Incremental parsing of streamed responses, one row at a time, in bounded memory.

``_all_docs``, views, ``_find`` and normal ``_changes`` answer one JSON object holding one
large array (``rows``, ``docs`` or ``results``). CouchDB writes one array element per line;
:class:`RowParser` decodes each such line as it arrives and falls back to a general
scanner for any other layout (several rows on a line, or a row across lines), so only
the row being received is held in memory. Continuous feeds are newline-delimited JSON,
split by :class:`LineParser` with no limit on the length of a line.

Every element and every line must be a JSON object, as CouchDB sends them. A body that is
not the expected JSON raises ``ValueError`` saying what is wrong with it, at the latest
when the body ends: a body is never taken as complete unless it is. The elements before
the fault are handed out first (the fault is raised by the next call), so what a caller
receives does not depend on how the body was cut into pieces.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator
from typing import Any, Callable, Protocol, TypeVar

from . import _json
from ._answers import kind_of

__all__ = [
    "BodyParser",
    "LineParser",
    "RowParser",
    "Utf8Decoder",
    "missing_array",
    "object_after_array",
    "parsed_pieces",
]

_WHITESPACE_AND_COMMAS = " \t\r\n,"
_MIN_RETRY_CHARS = 1 << 16
# CouchDB writes a few fields before the array (total_rows, offset, update_seq); more than
# this without the array means the body is something else (an HTML page, say).
_MAX_HEAD_CHARS = 1 << 20
_EXCERPT_CHARS = 60

_T = TypeVar("_T")


class BodyParser(Protocol):
    """A parser of a streamed body: the values each piece completes, then those at its end."""

    def feed(self, text: str) -> list[Any]: ...

    def close(self) -> list[Any]: ...


class _Parser:
    """Holds a fault back until the values before it are handed out."""

    def __init__(self) -> None:
        self._fault: ValueError | None = None

    def _raise_fault(self) -> None:
        if self._fault is not None:
            raise self._fault

    def _fail(self, fault: ValueError, values: list[_T]) -> list[_T]:
        """``values`` completed before ``fault``; every later call raises it (now, if none)."""
        self._fault = fault
        if not values:
            raise fault
        return values


class Utf8Decoder(_Parser):
    """Decodes a body's pieces as UTF-8; a piece may end inside a character.

    The text before an invalid byte is returned; later calls raise UnicodeDecodeError
    (this one, if there is no such text or the body ends).
    """

    def __init__(self) -> None:
        super().__init__()
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def decode(self, piece: bytes, *, final: bool = False) -> str:
        """The text that ``piece`` completes (``final``: the body ends with it)."""
        self._raise_fault()
        try:
            text: str = self._decoder.decode(piece, final)
        except UnicodeDecodeError as exc:
            self._fault = exc
            before = exc.object[: exc.start].decode()
            if final or not before:
                raise
            return before
        return text


class _BufferedParser(_Parser):
    """A parser that keeps the text it could not parse yet (a row cut short) pending, and
    parses it again only once a line ends or much more arrived: a large row is not
    scanned again at every piece."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[str] = []
        self._pending_chars = 0
        self._retry_at = 0

    def _ready(self, text: str) -> bool:
        """Adds ``text`` to the pending text; True if that is worth parsing now."""
        self._pending.append(text)
        self._pending_chars += len(text)
        return "\n" in text or self._pending_chars >= self._retry_at

    def _parse_pending(self) -> list[tuple[Any, str]]:
        """What the pending text completes; its incomplete rest stays pending."""
        text = "".join(self._pending)
        self._pending.clear()
        parsed: list[tuple[Any, str]] = []
        try:
            rest = self._consume(text, parsed)
        except ValueError as fault:
            return self._fail(fault, parsed)
        if rest:
            self._pending.append(rest)
        self._pending_chars = len(rest)
        self._retry_at = max(2 * len(rest), _MIN_RETRY_CHARS)
        return parsed

    def _consume(self, text: str, parsed: list[tuple[Any, str]]) -> str:
        """Parses what ``text`` completes into ``parsed``; returns the incomplete rest."""
        raise NotImplementedError


class RowParser(_BufferedParser):
    """Splits a streamed JSON object into the elements of one array and the other fields.

    The elements must be JSON objects (rows, documents or changes).
    """

    def __init__(self, array_key: str) -> None:
        super().__init__()
        self._array_start = re.compile(r'"' + re.escape(array_key) + r'"\s*:\s*\[')
        self._array_key = array_key
        self._in_array = False
        self._after_array = False
        self._head: list[str] = []
        self._tail: list[str] = []
        self._scanner = json.JSONDecoder()
        self._meta: dict[str, Any] = {}

    def feed(self, text: str) -> list[tuple[Any, str]]:
        """Takes the next piece of the body; returns the elements it completed.

        Each element comes with its JSON text, for callers that keep the server's copy.
        Raises ValueError for an element that is not a JSON object, or a body that is not
        JSON at all.
        """
        self._raise_fault()
        if self._after_array:
            self._tail.append(text)
            return []
        if not self._ready(text):
            return []
        return self._parse_pending()

    def close(self) -> list[tuple[Any, str]]:
        """Ends the body; returns its last elements (then see :meth:`meta`).

        Raises ValueError if the body is not a complete JSON object with the array.
        """
        self._raise_fault()
        rest = "".join(self._pending)
        self._pending.clear()
        rows: list[tuple[Any, str]] = []
        try:
            if not self._after_array:
                rest = self._consume(rest, rows)
            self._meta = self._object_without_array(rest)
        except ValueError as fault:
            return self._fail(fault, rows)
        return rows

    def meta(self) -> dict[str, Any]:
        """After :meth:`close`: the object without the array (``total_rows``, ``last_seq``...).

        Raises the ValueError that :meth:`close` held back behind its last elements.
        """
        self._raise_fault()
        return self._meta

    def _object_without_array(self, rest: str) -> dict[str, Any]:
        if not self._in_array:
            raise ValueError(missing_array("".join(self._head) + rest, self._array_key))
        if not self._after_array:
            raise ValueError(self._broken_array(rest))
        return object_after_array("".join(self._head) + "".join(self._tail) + rest, self._array_key)

    def _broken_array(self, rest: str) -> str:
        """Why the array did not end: the body stopped, or an element is not JSON."""
        rest = rest.lstrip(_WHITESPACE_AND_COMMAS)
        if not rest:
            return f"the body ended inside the {self._array_key!r} array"
        detail = ""
        try:
            self._scanner.raw_decode(rest)
        except ValueError as exc:
            detail = f" ({exc})"
        return (
            f"an element of the {self._array_key!r} array is not valid or complete "
            f"JSON{detail}, starting {rest[:_EXCERPT_CHARS]!r}"
        )

    def _not_an_object(self, value: Any) -> ValueError:
        return ValueError(
            f"an element of the {self._array_key!r} array is {kind_of(value)}, not a JSON object"
        )

    def _consume(self, text: str, rows: list[tuple[Any, str]]) -> str:
        """Parses what ``text`` completes; returns the incomplete rest."""
        position = 0
        loads = json.loads if _json.has_long_number(text) else _json.loads_unchecked
        if not self._in_array:
            match = self._array_start.search("".join(self._head) + text)
            if match is None:
                self._head.append(text)
                head_chars = sum(len(part) for part in self._head)
                if head_chars > _MAX_HEAD_CHARS:
                    raise ValueError(missing_array("".join(self._head), self._array_key))
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
                    row = loads(line)
                except ValueError:
                    multi_value_line_end = line_end
                else:
                    if type(row) is not dict:
                        raise self._not_an_object(row)
                    rows.append((row, line))
                    position = line_end + 1
                    continue
            try:
                row, end = self._scanner.raw_decode(text, position)
            except ValueError:
                return text[position:]
            if type(row) is not dict:
                raise self._not_an_object(row)
            rows.append((row, text[position:end]))
            position = end


def missing_array(body: str, array_key: str) -> str:
    """Why ``body``, without the ``array_key`` array, is not the expected answer."""
    try:
        value = _json.loads(body)
    except ValueError as exc:
        return f"the body is not valid JSON ({exc}), starting {body[:_EXCERPT_CHARS]!r}"
    if not isinstance(value, dict):
        return f"expected a JSON object with a {array_key!r} array, got {kind_of(value)}"
    return f"the JSON object has no {array_key!r} array"


def object_after_array(text: str, array_key: str) -> dict[str, Any]:
    """The answer ``text`` decoded, once its ``array_key`` array ended; ValueError if it is
    not a complete JSON object."""
    try:
        meta: dict[str, Any] = _json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"the body is not a complete JSON object after the {array_key!r} array ({exc})"
        ) from exc
    return meta


class LineParser(_Parser):
    """Splits newline-delimited JSON objects (a continuous feed); blank lines are skipped.

    A line that is not a JSON object raises ValueError.
    """

    def __init__(self) -> None:
        super().__init__()
        self._partial: list[str] = []

    def feed(self, text: str) -> list[dict[str, Any]]:
        """Takes the next piece of the body; returns the values of the lines it completed."""
        self._raise_fault()
        if "\n" not in text:
            self._partial.append(text)
            return []
        self._partial.append(text)
        lines = "".join(self._partial).split("\n")
        self._partial = [lines.pop()]
        return self._objects(lines)

    def close(self) -> list[dict[str, Any]]:
        """Ends the body; returns the value of a last line without a newline, if any."""
        self._raise_fault()
        lines, self._partial = ["".join(self._partial)], []
        return self._objects(lines)

    def _objects(self, lines: list[str]) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        for line in lines:
            if line.strip():
                try:
                    objects.append(_line_object(line))
                except ValueError as fault:
                    return self._fail(fault, objects)
        return objects


def _line_object(line: str) -> dict[str, Any]:
    """The JSON object on ``line``; ValueError if it holds anything else."""
    try:
        value = _json.loads(line)
    except ValueError as exc:
        raise ValueError(
            f"a line is not valid JSON ({exc}), starting {line[:_EXCERPT_CHARS]!r}"
        ) from exc
    if not isinstance(value, dict):
        raise ValueError(f"a line is {kind_of(value)}, not a JSON object")
    return value


async def parsed_pieces(
    pieces: AsyncIterator[bytes],
    parser: BodyParser,
    invalid: Callable[[ValueError], BaseException],
) -> AsyncIterator[list[Any]]:
    """What ``parser`` completes from each piece of a body, then at the body's end.

    A body that is not what ``parser`` expects (see the module docstring) raises
    ``invalid(error)``, once the values before the fault are handed out.
    """
    decoder = Utf8Decoder()
    async for piece in pieces:
        try:
            values: list[Any] = parser.feed(decoder.decode(piece))
        except ValueError as exc:
            raise invalid(exc) from exc
        if values:
            yield values
    # The body's end may complete values (compact JSON, or a last line without a newline).
    end_of_body: tuple[Callable[[], list[Any]], ...] = (
        lambda: parser.feed(decoder.decode(b"", final=True)),
        parser.close,
    )
    for step in end_of_body:
        try:
            values = step()
        except ValueError as exc:
            raise invalid(exc) from exc
        if values:
            yield values
