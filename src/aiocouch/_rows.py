"""Incremental parsing of streamed responses, one row at a time, in bounded memory.

``_all_docs``, views, ``_find`` and normal ``_changes`` answer one JSON object holding one
large array (``rows``, ``docs`` or ``results``). CouchDB writes one array element per line,
pouchdb-server all of them on one line; :class:`RowParser` reads the bytes as they arrive,
finds each element by the separator between elements (or the end of its line) and decodes
it with one call, and falls back to a general scanner for any other layout (a row across
lines), so only the row being received is held in memory. The rows of one piece come out
a few dozen at a time (:meth:`RowParser.more`): a caller that drops each row frees it
before the next ones are decoded, and the garbage collector has nothing to walk.
Continuous feeds are newline-delimited JSON, split by :class:`LineParser` with no limit on
the length of a line.

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
_SEPARATOR_CHARS = _WHITESPACE_AND_COMMAS.encode()
_SEPARATOR_BYTES = frozenset(_SEPARATOR_CHARS)
_LINE_END_CHARS = b" \t\r,"
_CLOSING_BRACKET = ord("]")
# How often a separator found inside an element is skipped before the scanner reads it.
_MAX_MISSES = 4
# Elements decoded per call. A piece of the body holds hundreds; decoded all at once they
# would be thousands of live objects, and the garbage collector walks the young ones
# whenever 700 more were made than freed: a third of the CPU of iterating. Handed out a
# few dozen at a time, they are freed before the next ones are made.
_MAX_ELEMENTS = 64
_SCAN_WINDOW = 1 << 14
_MIN_RETRY_CHARS = 1 << 16
# CouchDB writes a few fields before the array (total_rows, offset, update_seq); more than
# this without the array means the body is something else (an HTML page, say).
_MAX_HEAD_CHARS = 1 << 20
_EXCERPT_CHARS = 60

_T = TypeVar("_T")


class BodyParser(Protocol):
    """A parser of a streamed body: the values each piece completes, then those at its end."""

    def feed(self, text: Any) -> list[Any]: ...

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


class RowParser(_Parser):
    """Splits a streamed JSON object into the elements of one array and the other fields.

    It takes the body's bytes as they arrive (no decoding to text first) and decodes each
    element on its own. The elements must be JSON objects (rows, documents or changes).
    Once two elements were read, the bytes between them (``},{"id":`` or ``},\\r\\n{"id":``)
    are taken for the separator of the others: each element is then found with one search
    and decoded with one call. Any other layout (pretty-printed, an element across lines)
    is read by a general scanner, so the result never depends on the layout or on where
    the body was cut into pieces.
    """

    def __init__(self, array_key: str) -> None:
        super().__init__()
        self._array_start = re.compile(rb'"' + re.escape(array_key.encode()) + rb'"\s*:\s*\[')
        self._array_key = array_key
        self._in_array = False
        self._after_array = False
        self._head = b""
        self._tail: list[bytes] = []
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._retry_at = 0
        self._separator: bytes | None = None
        self._gap = 0
        # where the separator's only line break is in it (-1: it has none, or several)
        self._line_break = -1
        self._scanner = json.JSONDecoder()
        self._meta: dict[str, Any] = {}
        # bytes holding more elements than one call returns, and where the next one starts
        self._held: bytes | None = None
        self._held_at = 0
        self._held_line_end = -1
        self._loads: Callable[[bytes], Any] = _json.loads

    def feed(self, piece: bytes) -> list[tuple[Any, bytes]]:
        """Takes the next piece of the body; returns the elements it completed.

        Each element comes with its JSON text, for callers that keep the server's copy.
        Raises ValueError for an element that is not a JSON object, or a body that is not
        JSON (or not UTF-8) at all.
        """
        self._raise_fault()
        self._release_held()
        if self._after_array:
            self._tail.append(piece)
            return []
        self._pending.append(piece)
        self._pending_bytes += len(piece)
        separator = self._separator
        if not (
            b"\n" in piece
            or self._pending_bytes >= self._retry_at
            or (separator is not None and separator in piece)
        ):
            return []
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        return self._parse(data, 0, _MAX_ELEMENTS)

    def more(self) -> list[tuple[Any, bytes]]:
        """The next elements of what was fed, ``[]`` once :meth:`feed` is needed again.

        One call returns at most a few dozen elements; call this until it returns ``[]``
        before the next :meth:`feed` (or :meth:`close`, which also returns the rest).
        """
        self._raise_fault()
        held = self._held
        if held is None:
            return []
        self._held = None
        return self._parse(held, self._held_at, _MAX_ELEMENTS)

    def close(self) -> list[tuple[Any, bytes]]:
        """Ends the body; returns its last elements (then see :meth:`meta`).

        Raises ValueError if the body is not a complete JSON object with the array.
        """
        self._raise_fault()
        self._release_held()
        rest = b"".join(self._pending)
        self._pending.clear()
        rows: list[tuple[Any, bytes]] = []
        try:
            if not self._after_array:
                rest = self._consume(rest, 0, rows, None)
            self._meta = self._object_without_array(rest)
        except ValueError as fault:
            return self._fail(fault, rows)
        return rows

    def _parse(self, data: bytes, position: int, limit: int) -> list[tuple[Any, bytes]]:
        """At most ``limit`` elements of ``data`` from ``position`` on; the rest held (if
        it holds more) or pending (if incomplete)."""
        rows: list[tuple[Any, bytes]] = []
        try:
            rest = self._consume(data, position, rows, limit)
        except ValueError as fault:
            return self._fail(fault, rows)
        if rest:
            self._pending.append(rest)
        self._pending_bytes = len(rest)
        self._retry_at = max(2 * len(rest), _MIN_RETRY_CHARS)
        return rows

    def _release_held(self) -> None:
        """Puts what :meth:`more` did not hand out yet back before the pending bytes."""
        if self._held is not None:
            self._pending.insert(0, self._held[self._held_at :])
            self._pending_bytes += len(self._pending[0])
            self._held = None

    def meta(self) -> dict[str, Any]:
        """After :meth:`close`: the object without the array (``total_rows``, ``last_seq``...).

        Raises the ValueError that :meth:`close` held back behind its last elements.
        """
        self._raise_fault()
        return self._meta

    def _object_without_array(self, rest: bytes) -> dict[str, Any]:
        if not self._in_array:
            raise ValueError(missing_array(_text(self._head + rest), self._array_key))
        if not self._after_array:
            raise ValueError(self._broken_array(rest))
        return object_after_array(_text(self._head + b"".join(self._tail) + rest), self._array_key)

    def _broken_array(self, rest: bytes) -> str:
        """Why the array did not end: the body stopped, or an element is not JSON."""
        text = _text(rest).lstrip(_WHITESPACE_AND_COMMAS)
        if not text:
            return f"the body ended inside the {self._array_key!r} array"
        detail = ""
        try:
            self._scanner.raw_decode(text)
        except ValueError as exc:
            detail = f" ({exc})"
        return (
            f"an element of the {self._array_key!r} array is not valid or complete "
            f"JSON{detail}, starting {text[:_EXCERPT_CHARS]!r}"
        )

    def _not_an_object(self, value: Any) -> ValueError:
        return ValueError(
            f"an element of the {self._array_key!r} array is {kind_of(value)}, not a JSON object"
        )

    def _consume(
        self, data: bytes, position: int, rows: list[tuple[Any, bytes]], limit: int | None
    ) -> bytes:
        """Parses what ``data`` completes from ``position`` on into ``rows``; returns the
        incomplete rest. Once ``rows`` holds ``limit`` elements, the rest is held for
        :meth:`more` instead."""
        if not self._in_array:
            data = data[position:]
            head = self._head + data
            match = self._array_start.search(head)
            if match is None:
                if len(head) > _MAX_HEAD_CHARS:
                    raise ValueError(missing_array(_text(head, final=False), self._array_key))
                self._head = head
                return b""
            self._head = head[: match.end()]
            data, self._in_array = head[match.end() :], True
            position = 0
        if position == 0:
            # (once per piece: held bytes resumed by more() were checked when they came)
            self._loads = _json.loads if _json.has_long_number(data) else _json.loads_unchecked
        loads = self._loads
        length = len(data)
        previous_end = -1
        # the end of a line that holds more than one element (or part of one)
        mixed_line_end = self._held_line_end if position else -1
        while True:
            while position < length and data[position] in _SEPARATOR_BYTES:
                position += 1
            if position == length:
                return b""
            if data[position] == _CLOSING_BRACKET:
                self._after_array = True
                self._tail.append(data[position:])
                return b""
            if limit is not None and len(rows) >= limit:
                self._held, self._held_at, self._held_line_end = data, position, mixed_line_end
                return b""
            if self._separator is not None:
                position = self._split(data, position, loads, rows, limit)
                if limit is not None and len(rows) >= limit:
                    continue
            elif previous_end >= 0:
                self._learn(data[previous_end:position], data, position)
            row: Any = None
            if position > mixed_line_end:
                line_end = data.find(b"\n", position)
                if line_end != -1:
                    element = data[position:line_end].rstrip(_LINE_END_CHARS)
                    try:
                        row = loads(element)
                    except ValueError:
                        mixed_line_end = line_end
            if row is None:
                scanned = self._scan(data, position)
                if scanned is None:
                    return data[position:]
                row, element = scanned
            if type(row) is not dict:
                raise self._not_an_object(row)
            rows.append((row, element))
            position = previous_end = position + len(element)

    def _split(
        self,
        data: bytes,
        position: int,
        loads: Callable[[bytes], Any],
        rows: list[tuple[Any, bytes]],
        limit: int | None,
    ) -> int:
        """Decodes the elements from ``position`` on that the separator ends (until ``rows``
        holds ``limit``); returns where the first element not decoded begins.

        The separator may also occur inside an element (in an array of objects): the
        bytes up to it are then no JSON value, and the next occurrence is tried, a few
        times, before the slower ways take over.
        """
        separator = self._separator
        assert separator is not None
        step = 1 + self._gap
        line_break = self._line_break
        search = position
        misses = 0
        append = rows.append
        find = data.find
        starts_with = data.startswith
        left = -1 if limit is None else limit - len(rows)  # (-1: no limit)
        while True:
            if line_break < 0:
                found = find(separator, search)
                if found == -1:
                    return position
            else:
                # CouchDB's layout, one element per line: a line break (found by memchr)
                # with the separator around it, a fraction of the cost of searching for
                # the whole separator in every byte.
                found = find(b"\n", search + line_break)
                if found == -1:
                    return position
                found -= line_break
                if not starts_with(separator, found):
                    search = found + 1  # (a line break within an element)
                    continue
            element = data[position : found + 1]
            try:
                row = loads(element)
            except ValueError:
                misses += 1
                if misses > _MAX_MISSES:
                    return position
                search = found + 1
                continue
            append((row, element))
            position = search = found + step
            misses = 0
            left -= 1
            if not left:
                return position

    def _scan(self, data: bytes, position: int) -> tuple[Any, bytes] | None:
        """The element at ``position``, read by the general scanner, with its bytes; None
        if ``data`` ends inside it. Raises UnicodeDecodeError for bytes that are no UTF-8.

        It decodes a window of the bytes that grows until it holds the element, so that
        reading many elements of one large piece this way costs no more than the piece.
        """
        window = _SCAN_WINDOW
        while True:
            piece = data[position : position + window]
            fault: UnicodeDecodeError | None = None
            try:
                text = codecs.utf_8_decode(piece, "strict", False)[0]
            except UnicodeDecodeError as exc:
                text, fault = piece[: exc.start].decode(), exc
            try:
                row, end = self._scanner.raw_decode(text)
            except ValueError:
                if fault is not None:
                    raise fault from None
                if position + window >= len(data):
                    return None
                window *= 4
                continue
            return row, text[:end].encode()

    def _learn(self, gap: bytes, data: bytes, start: int) -> None:
        """Takes the bytes between two elements and the start of the second up to its first
        colon (``},{"id":``) for the separator of the elements that follow."""
        colon = data.find(b":", start)
        if gap.count(b",") != 1 or gap.strip(_SEPARATOR_CHARS) or colon == -1:
            return
        self._separator = b"}" + gap + data[start : colon + 1]
        self._gap = len(gap)
        if self._separator.count(b"\n") == 1:
            self._line_break = self._separator.index(b"\n")


def _text(data: bytes, *, final: bool = True) -> str:
    """``data`` decoded as UTF-8 (UnicodeDecodeError if it is not); unless ``final``, a
    character cut short at its end is left out."""
    return codecs.utf_8_decode(data, "strict", final)[0]


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

    A :class:`RowParser` gets the bytes as they are and gives a few dozen elements per
    value (see :meth:`RowParser.more`); the others get text, decoded here. A body that is
    not what ``parser`` expects (see the module docstring) raises ``invalid(error)``, once
    the values before the fault are handed out.
    """
    if isinstance(parser, RowParser):
        more = parser.more
        async for piece in pieces:
            try:
                values: list[Any] = parser.feed(piece)
            except ValueError as exc:
                raise invalid(exc) from exc
            while values:
                yield values
                try:
                    values = more()
                except ValueError as exc:
                    raise invalid(exc) from exc
        end_of_body: tuple[Callable[[], list[Any]], ...] = (parser.close,)
    else:
        decoder = Utf8Decoder()
        async for piece in pieces:
            try:
                values = parser.feed(decoder.decode(piece))
            except ValueError as exc:
                raise invalid(exc) from exc
            if values:
                yield values
        # The body's end may complete values (compact JSON, or a last line without a newline).
        end_of_body = (lambda: parser.feed(decoder.decode(b"", final=True)), parser.close)
    for step in end_of_body:
        try:
            values = step()
        except ValueError as exc:
            raise invalid(exc) from exc
        if values:
            yield values
