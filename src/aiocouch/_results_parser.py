"""Incremental parsing of a multi-query answer, one row at a time, in bounded memory.

``POST .../queries`` (several view or ``_all_docs`` queries in one request) answers
``{"results": [R1, R2, ...]}``, each result an object such as one query answers alone:
``{"total_rows": 6, "offset": 0, "rows": [...]}``. :class:`ResultsParser` hands out each
row once it is complete and, after a result's last row, a :class:`ResultEnd` holding
that result's other fields; only the row being received is held. Any layout is read
(CouchDB writes one row per line; compact and pretty-printed JSON work too).

As with :class:`aiocouch._rows.RowParser`: every row must be a JSON object, a body that
is not the expected JSON raises ``ValueError`` saying what is wrong with it (at the
latest when the body ends), and the values before a fault are handed out first.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

from . import _json
from ._answers import kind_of
from ._rows import _BufferedParser, missing_array, object_after_array

__all__ = ["ResultEnd", "ResultsParser"]

_WHITESPACE_AND_COMMAS = " \t\r\n,"
# A result's fields around its rows, and the answer's around its results, are a few
# numbers and sequences; more than this without the array means another kind of body.
_MAX_FIELDS_CHARS = 1 << 20
_EXCERPT_CHARS = 60
_RESULTS_START = re.compile(r'"results"\s*:\s*\[')
_ROWS_START = re.compile(r'"rows"\s*:\s*\[')

Parsed = list[tuple[Any, str]]
"""Rows (each with its JSON text) and ResultEnd markers (with ``""``), in order."""


class ResultEnd:
    """The end of one result: :attr:`meta` holds its fields but ``rows``."""

    __slots__ = ("meta",)

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def __repr__(self) -> str:
        return f"ResultEnd({self.meta!r})"


class _Place(enum.Enum):
    BEFORE_RESULTS = "before the 'results' array"
    BETWEEN_RESULTS = "inside the 'results' array"
    RESULT_HEAD = "inside a result, before its 'rows' array"
    ROWS = "inside the 'rows' array of a result"
    RESULT_TAIL = "inside a result, after its 'rows' array"
    AFTER_RESULTS = "after the 'results' array"


class ResultsParser(_BufferedParser):
    """Splits a streamed ``{"results": [...]}`` answer into rows and result ends."""

    def __init__(self) -> None:
        super().__init__()
        self._place = _Place.BEFORE_RESULTS
        self._answer_head = ""
        self._result_head = ""
        self._answer_tail: list[str] = []
        self._scanner = json.JSONDecoder()
        self._meta: dict[str, Any] = {}

    def feed(self, text: str) -> Parsed:
        """Takes the next piece of the body; returns the rows and result ends it completed.

        Raises ValueError for a body that is not a multi-query answer.
        """
        self._raise_fault()
        if self._place is _Place.AFTER_RESULTS:
            self._answer_tail.append(text)
            return []
        if not self._ready(text):
            return []
        return self._parse_pending()

    def close(self) -> Parsed:
        """Ends the body; returns its last rows and result ends (then see :meth:`meta`).

        Raises ValueError if the body is not a complete multi-query answer.
        """
        self._raise_fault()
        parsed = self._parse_pending()
        if self._fault is not None:
            return parsed
        try:
            self._meta = self._answer_without_results()
        except ValueError as fault:
            return self._fail(fault, parsed)
        return parsed

    def meta(self) -> dict[str, Any]:
        """After :meth:`close`: the answer's fields but ``results`` (none from CouchDB)."""
        self._raise_fault()
        return self._meta

    def _consume(self, text: str, parsed: Parsed) -> str:
        """Parses what ``text`` completes into ``parsed``; returns the incomplete rest."""
        position = 0
        length = len(text)
        loads = json.loads if _json.has_long_number(text) else _json.loads_unchecked
        while True:
            place = self._place
            if place is _Place.BEFORE_RESULTS:
                match = _RESULTS_START.search(text)
                if match is None:
                    return self._keep(text, "no 'results' array")
                self._answer_head = text[: match.end()]
                position = match.end()
                self._place = _Place.BETWEEN_RESULTS
            elif place is _Place.AFTER_RESULTS:
                self._answer_tail.append(text[position:])
                return ""
            else:
                while position < length and text[position] in _WHITESPACE_AND_COMMAS:
                    position += 1
                if position == length:
                    return ""
                if place is _Place.BETWEEN_RESULTS:
                    position = self._next_result(text, position)
                elif place is _Place.RESULT_HEAD:
                    rows_start = self._rows_start(text, position)
                    if rows_start is None:
                        return self._keep(text[position:], "a result has no 'rows' array")
                    position = rows_start
                elif place is _Place.ROWS:
                    if text[position] == "]":
                        self._place = _Place.RESULT_TAIL
                        continue
                    end = self._row(text, position, loads, parsed)
                    if end < 0:
                        return text[position:]
                    position = end
                else:
                    end = self._result_end(text, position, parsed)
                    if end < 0:
                        return self._keep(text[position:], "a result does not end")
                    position = end

    def _next_result(self, text: str, position: int) -> int:
        """At the next element of ``results``: a result starts, or the array ends."""
        if text[position] == "]":
            self._place = _Place.AFTER_RESULTS
            return position
        if text[position] != "{":
            raise ValueError(
                f"an element of the 'results' array is not a JSON object, starting "
                f"{text[position : position + _EXCERPT_CHARS]!r}"
            )
        self._place = _Place.RESULT_HEAD
        return position

    def _rows_start(self, text: str, position: int) -> int | None:
        """Past the ``"rows": [`` of the result at ``position``; None while it has not come."""
        match = _ROWS_START.search(text, position)
        if match is None:
            return None
        head = text[position : match.end()]
        try:
            # The head must be the start of one object, not a whole object without rows
            # followed by the next result's head.
            _json.loads(head + "]}")
        except ValueError:
            raise ValueError(
                "an element of the 'results' array is not a JSON object with a 'rows' "
                f"array, starting {head[:_EXCERPT_CHARS]!r}"
            ) from None
        self._result_head = head
        self._place = _Place.ROWS
        return match.end()

    def _row(self, text: str, position: int, loads: Any, parsed: Parsed) -> int:
        """Parses the row at ``position``; returns where it ends, -1 if it is incomplete."""
        line_end = text.find("\n", position)
        if line_end != -1:
            line = text[position:line_end].rstrip(_WHITESPACE_AND_COMMAS)
            try:
                row = loads(line)
            except ValueError:
                pass  # not one row on this line: scan it
            else:
                self._add_row(row, line, parsed)
                return line_end + 1
        try:
            row, end = self._scanner.raw_decode(text, position)
        except ValueError:
            return -1
        self._add_row(row, text[position:end], parsed)
        return end

    @staticmethod
    def _add_row(row: Any, text: str, parsed: Parsed) -> None:
        if type(row) is not dict:
            raise ValueError(f"an element of a 'rows' array is {kind_of(row)}, not a JSON object")
        parsed.append((row, text))

    def _result_end(self, text: str, position: int, parsed: Parsed) -> int:
        """Past the object whose ``rows`` ended at ``position``; -1 while it is incomplete."""
        head = self._result_head
        try:
            result, end = self._scanner.raw_decode(head + text[position:])
        except ValueError:
            return -1
        del result["rows"]
        parsed.append((ResultEnd(result), ""))
        self._place = _Place.BETWEEN_RESULTS
        return position + end - len(head)

    def _keep(self, rest: str, problem: str) -> str:
        """``rest``, to be parsed with what follows; ValueError once it is too long."""
        if len(rest) > _MAX_FIELDS_CHARS:
            raise ValueError(f"{problem} in its first {_MAX_FIELDS_CHARS} characters")
        return rest

    def _answer_without_results(self) -> dict[str, Any]:
        if self._place is not _Place.AFTER_RESULTS:
            if self._place is _Place.BEFORE_RESULTS:
                raise ValueError(missing_array("".join(self._pending), "results"))
            raise ValueError(f"the body ended {self._place.value}")
        meta = object_after_array(self._answer_head + "".join(self._answer_tail), "results")
        del meta["results"]
        return meta
