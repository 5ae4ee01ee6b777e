"""Incremental parsing of a ``/queries`` answer: the rows of several results, as they arrive.

``POST /{db}/_all_docs/queries`` (and the other ``/queries`` endpoints) answers
``{"results": [result, ...]}``, each result an object like the answer to one query
(``total_rows``, ``offset``, ``rows``). :class:`QueriesParser` hands out each result's
rows as they arrive, through a :class:`~aiocouch._rows.RowParser` per result, and each
result's other fields once its object ends; only the row being received is held in
memory. A body that is not such an object raises ``ValueError`` (after the events
completed before the fault), at the latest when the body ends.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Union

from . import _json
from ._answers import kind_of
from ._rows import RowParser, _Parser

__all__ = ["QueriesParser", "QueryEvent", "ResultEnd", "ResultRows"]

_RESULTS_START = re.compile(r'"results"\s*:\s*\[')
_WHITESPACE_AND_COMMAS = " \t\r\n,"
# A result's fields after its rows, or the answer's before its results, are a few
# characters; more than this is something else (an HTML page, say).
_MAX_FIELDS_CHARS = 1 << 20
_EXCERPT_CHARS = 60


@dataclass(frozen=True)
class ResultRows:
    """Rows of result ``index``, each with its JSON text."""

    index: int
    rows: list[tuple[Any, str]]


@dataclass(frozen=True)
class ResultEnd:
    """Result ``index`` ended; ``meta`` is its object without the rows."""

    index: int
    meta: dict[str, Any]


QueryEvent = Union[ResultRows, ResultEnd]


class _ResultParser(RowParser):
    """The parser of one element of ``results``: its rows, then where its object ends."""

    def __init__(self, index: int) -> None:
        super().__init__("rows")
        self.index = index

    def end(self) -> str | None:
        """Once the rows and the object ended: the text after the object (its fields are
        then in :meth:`meta`); None while they have not."""
        if not self._after_array:
            return None
        tail = "".join(self._tail)
        close = _object_close(tail)
        if close is None:
            if len(tail) > _MAX_FIELDS_CHARS:
                raise ValueError(f"result {self.index} does not end after its 'rows' array")
            self._tail = [tail]
            return None
        self._tail = [tail[: close + 1]]
        self._meta = self._object_without_array("")
        return tail[close + 1 :]

    def _missing_rows(self) -> str:
        """Why the result, which the rest of the body follows, has no rows."""
        head = "".join(self._head)
        try:
            value, _ = self._scanner.raw_decode(head)
        except ValueError:
            return self._missing_array(head)
        return self._missing_array(_json.dumps(value).decode())

    def flush(self) -> list[tuple[Any, str]]:
        """The body ended: the rows held back for more text; ValueError if the rows did not end."""
        self._raise_fault()
        rest = "".join(self._pending)
        self._pending.clear()
        rows: list[tuple[Any, str]] = []
        try:
            if not self._after_array:
                rest = self._consume(rest, rows)
            if not self._in_array:
                raise ValueError(f"result {self.index}: {self._missing_rows()}")
            if not self._after_array:
                raise ValueError(f"result {self.index}: {self._broken_array(rest)}")
        except ValueError as fault:
            return self._fail(fault, rows)
        return rows


class _Place(enum.Enum):
    BEFORE_RESULTS = "before the results"
    BETWEEN_RESULTS = "between results"
    IN_RESULT = "in a result"
    AFTER_RESULTS = "after the results"


class QueriesParser(_Parser):
    """Splits a streamed ``{"results": [...]}`` answer into the rows and ends of its results."""

    def __init__(self) -> None:
        super().__init__()
        self._place = _Place.BEFORE_RESULTS
        self._head: list[str] = []
        self._tail: list[str] = []
        self._result: _ResultParser | None = None
        self._count = 0
        self.meta: dict[str, Any] = {}
        """After :meth:`close`: the answer without its results."""

    def feed(self, text: str) -> list[QueryEvent]:
        """Takes the next piece of the body; returns the events it completed."""
        self._raise_fault()
        events: list[QueryEvent] = []
        try:
            self._take(text, events)
        except ValueError as fault:
            return self._fail(fault, events)
        return events

    def close(self) -> list[QueryEvent]:
        """Ends the body; returns its last events. ValueError if it is not complete."""
        self._raise_fault()
        events: list[QueryEvent] = []
        try:
            if self._result is not None:
                result = self._result
                self._add_rows(result.flush(), events)
                rest = self._result_end(events)
                if rest is None:
                    raise ValueError(f"the body ended inside result {result.index}")
                self._take(rest, events)
            if self._place is _Place.BEFORE_RESULTS:
                raise ValueError(self._missing_results("".join(self._head)))
            if self._place is not _Place.AFTER_RESULTS:
                raise ValueError("the body ended inside the 'results' array")
            meta = _json.loads("".join(self._head) + "".join(self._tail))
            if not isinstance(meta, dict):
                raise ValueError(
                    f"expected a JSON object with a 'results' array, got {kind_of(meta)}"
                )
            self.meta = meta
        except ValueError as fault:
            return self._fail(fault, events)
        return events

    def _take(self, text: str, events: list[QueryEvent]) -> None:
        while text:
            if self._place is _Place.BEFORE_RESULTS:
                text = self._find_results(text)
            elif self._place is _Place.BETWEEN_RESULTS:
                text = text.lstrip(_WHITESPACE_AND_COMMAS)
                if text.startswith("]"):
                    self._place = _Place.AFTER_RESULTS
                elif text and not text.startswith("{"):
                    raise ValueError(
                        "an element of the 'results' array is not a JSON object, starting "
                        f"{text[:_EXCERPT_CHARS]!r}"
                    )
                elif text:
                    self._result = _ResultParser(self._count)
                    self._count += 1
                    self._place = _Place.IN_RESULT
            elif self._place is _Place.IN_RESULT:
                assert self._result is not None
                self._add_rows(self._result.feed(text), events)
                text = self._result_end(events) or ""
            else:
                self._tail.append(text)
                if sum(map(len, self._tail)) > _MAX_FIELDS_CHARS:
                    raise ValueError("the answer goes on after its 'results' array")
                return

    def _find_results(self, text: str) -> str:
        """The text after ``"results": [`` once it arrived, else "" (kept as the head)."""
        head = "".join(self._head) + text
        match = _RESULTS_START.search(head)
        if match is None:
            self._head = [head]
            if len(head) > _MAX_FIELDS_CHARS:
                raise ValueError(self._missing_results(head))
            return ""
        self._head = [head[: match.end()]]
        self._place = _Place.BETWEEN_RESULTS
        return head[match.end() :]

    def _add_rows(self, rows: list[tuple[Any, str]], events: list[QueryEvent]) -> None:
        if rows:
            assert self._result is not None
            events.append(ResultRows(self._result.index, rows))

    def _result_end(self, events: list[QueryEvent]) -> str | None:
        """The text after the current result if it ended (its end added to ``events``)."""
        assert self._result is not None
        rest = self._result.end()
        if rest is not None:
            events.append(ResultEnd(self._result.index, self._result.meta()))
            self._result = None
            self._place = _Place.BETWEEN_RESULTS
        return rest

    @staticmethod
    def _missing_results(head: str) -> str:
        try:
            value = _json.loads(head)
        except ValueError as exc:
            return f"the body is not valid JSON ({exc}), starting {head[:_EXCERPT_CHARS]!r}"
        if not isinstance(value, dict):
            return f"expected a JSON object with a 'results' array, got {kind_of(value)}"
        return "the JSON object has no 'results' array"


def _object_close(tail: str) -> int | None:
    """The index of the ``}`` that closes the object whose array ``tail`` starts closing
    (``tail`` begins with that array's ``]``), or None if it has not arrived."""
    depth = 1
    in_string = False
    escaped = False
    for index in range(1, len(tail)):
        character = tail[index]
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "{[":
            depth += 1
        elif character in "}]":
            depth -= 1
            if depth == 0:
                return index
    return None
