"""View queries with Python values: keys JSON-encoded for the caller, rows streamed.

aiocouch 4.0.1's ``View.get()``/``post()`` send their parameters verbatim (``key='"a"'``
is already JSON). ``View.query()`` takes Python values instead and encodes the keys
itself; ``View.queries()`` sends several queries in one request; ``ddoc.design_info()``
tells the state of a design document's view index::

    view = db.view("d", "by_value")
    rows = view.query(startkey=2, endkey=4, include_docs=True)
    async for row in rows:            # {"id": ..., "key": 2, "value": ..., "doc": {...}}
        ...
    rows.total_rows, rows.offset

    async for row in db.view("d", "count").query(group_level=1):   # reduced
        ...

    async for result in view.queries([ViewQuery(keys=[1, 5]), {"limit": 1}]):
        async for row in result:      # each result's rows as they arrive
            ...

The same works on ``db.all_docs`` (``/{db}/_all_docs`` and ``/{db}/_all_docs/queries``).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from typing_extensions import TypedDict

from . import _json
from ._results_parser import ResultEnd
from ._row_stream import RowStream
from .typing import JsonDict

if TYPE_CHECKING:
    from .view import View

__all__ = [
    "DesignDocumentInfo",
    "ViewIndexInfo",
    "ViewQuery",
    "ViewResults",
    "ViewRow",
    "ViewRows",
]


class _Absent(enum.Enum):
    ABSENT = "absent"


_ABSENT: Any = _Absent.ABSENT
"""The default of a key option: not given (None is a key, JSON's null)."""

_JSON_OPTIONS = ("key", "startkey", "start_key", "endkey", "end_key")
_TEXT_OPTIONS = ("startkey_docid", "start_key_doc_id", "endkey_docid", "end_key_doc_id")
_FLAG_OPTIONS = (
    "inclusive_end",
    "descending",
    "include_docs",
    "conflicts",
    "attachments",
    "att_encoding_info",
    "reduce",
    "group",
    "stable",
    "sorted",
    "update_seq",
)
_COUNT_OPTIONS = ("limit", "skip", "group_level")
_SPELLINGS = (
    ("key", "keys"),
    ("startkey", "start_key"),
    ("endkey", "end_key"),
    ("startkey_docid", "start_key_doc_id"),
    ("endkey_docid", "end_key_doc_id"),
)
_UPDATE_VALUES = {True: "true", False: "false", "lazy": "lazy"}


def _flag(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, repr=False)
class ViewQuery:
    """The options of one view (or ``_all_docs``) query, as Python values.

    Keys (``key``, ``keys``, ``startkey``/``start_key``, ``endkey``/``end_key``) are any
    JSON value, None included (JSON's null); they are JSON-encoded when sent.
    ``startkey_docid``/``endkey_docid`` (or ``start_key_doc_id``/``end_key_doc_id``) are
    document ids. ``update``: True (default), False (the index as it is), or ``"lazy"``
    (as it is, updated after the answer). Options left out are not sent. Building one
    raises TypeError or ValueError naming the first problem (a key that JSON cannot
    hold, two spellings of one option, ``key`` with ``keys``, a negative count...).
    """

    key: Any = _ABSENT
    keys: Sequence[Any] | None = None
    startkey: Any = _ABSENT
    start_key: Any = _ABSENT
    endkey: Any = _ABSENT
    end_key: Any = _ABSENT
    startkey_docid: str | None = None
    start_key_doc_id: str | None = None
    endkey_docid: str | None = None
    end_key_doc_id: str | None = None
    inclusive_end: bool | None = None
    descending: bool | None = None
    limit: int | None = None
    skip: int | None = None
    include_docs: bool | None = None
    conflicts: bool | None = None
    attachments: bool | None = None
    att_encoding_info: bool | None = None
    reduce: bool | None = None
    group: bool | None = None
    group_level: int | None = None
    update: bool | str | None = None
    stable: bool | None = None
    sorted: bool | None = None
    update_seq: bool | None = None

    def __post_init__(self) -> None:
        for name in _JSON_OPTIONS:
            value = getattr(self, name)
            if value is not _ABSENT:
                _check_json(name, value)
        if self.keys is not None:
            if isinstance(self.keys, (str, bytes, Mapping)) or not isinstance(self.keys, Sequence):
                raise TypeError(f"keys must be a list of keys, not {type(self.keys).__name__}")
            _check_json("keys", list(self.keys))
        for name in _TEXT_OPTIONS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a document id (str), not {type(value).__name__}")
        for name in _FLAG_OPTIONS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, not {value!r}")
        for name in _COUNT_OPTIONS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.update is not None and (
            not isinstance(self.update, (bool, str)) or self.update not in _UPDATE_VALUES
        ):
            raise ValueError(f'update must be True, False or "lazy", not {self.update!r}')
        for first, second in _SPELLINGS:
            if self._given(first) and self._given(second):
                raise ValueError(f"Give {first} or {second}, not both")

    def _given(self, name: str) -> bool:
        value = getattr(self, name)
        return value is not _ABSENT if name in _JSON_OPTIONS else value is not None

    def _options(self) -> dict[str, Any]:
        """The options given, by name, as given."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if self._given(field.name)
        }

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={value!r}" for name, value in self._options().items())
        return f"ViewQuery({given})"

    @property
    def keys_list(self) -> list[Any] | None:
        """``keys`` as a list (sent in a POST body), None if not given."""
        return None if self.keys is None else list(self.keys)

    def params(self) -> dict[str, str]:
        """The query string of the query, ``keys`` aside: keys JSON-encoded, flags as JSON."""
        params: dict[str, str] = {}
        for name, value in self._options().items():
            if name == "keys":
                continue
            if name in _JSON_OPTIONS:
                params[name] = _json.dumps(value).decode()
            elif name == "update":
                params[name] = _UPDATE_VALUES[value]
            elif isinstance(value, bool):
                params[name] = _flag(value)
            else:
                params[name] = str(value)
        return params

    def body(self) -> JsonDict:
        """The query as one object of a ``queries`` request: keys as JSON values."""
        body: JsonDict = {}
        for name, value in self._options().items():
            if name == "keys":
                body[name] = list(value)
            elif name == "update":
                # CouchDB takes update and stable only as strings there.
                body[name] = _UPDATE_VALUES[value]
            elif name == "stable":
                body[name] = _flag(value)
            else:
                body[name] = value
        return body


def _check_json(name: str, value: Any) -> None:
    try:
        _json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a JSON value: {exc}") from None


class ViewRow(TypedDict, total=False):
    """A row of a view: ``id`` (not in reduced rows), ``key``, ``value``; ``doc`` with
    ``include_docs``; ``error`` for a key of ``_all_docs`` that no document has."""

    id: str
    key: Any
    value: Any
    doc: JsonDict | None
    error: str


class ViewRows:
    """The rows of one view query, streamed: iterate with ``async for``.

    Each iteration sends the query: GET {view}?options, or POST {view} with ``{"keys":
    [...]}`` when ``keys`` were given; rows are handed out as they arrive (a broken
    answer is resumed after the last row handed out, where that is exact). After it:
    :attr:`total_rows`, :attr:`offset` (both None for reduced rows) and
    :attr:`update_seq` (with ``update_seq=True``). Iterating raises NotFoundError for a
    missing view or design document, BadRequestError for options the view refuses
    (``reduce`` on a map-only view, ``include_docs`` with reduce...).
    """

    def __init__(self, view: View, query: ViewQuery) -> None:
        self._view = view
        self.query = query
        """The options of the query."""
        self.total_rows: int | None = None
        """The rows the view holds (None for reduced rows, or before the end)."""
        self.offset: int | None = None
        """The position of the first row in the view (None for reduced rows)."""
        self.update_seq: Any = None
        """The database sequence the index reflects (with ``update_seq=True``)."""

    def _take_meta(self, meta: Mapping[str, Any]) -> None:
        """Takes the fields around the rows; ValueError if they are not a view's."""
        for name in ("total_rows", "offset"):
            value = meta.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"the {name!r} of the answer is not a number")
        self.total_rows = meta.get("total_rows")
        self.offset = meta.get("offset")
        self.update_seq = meta.get("update_seq")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._view._subject}: {self.query!r}>"

    async def __aiter__(self) -> AsyncIterator[ViewRow]:
        stream = self._view._rows(self.query.keys_list, **self.query.params())
        async for batch in stream.batches():
            for row, _ in batch:
                yield row
        try:
            self._take_meta(stream.meta)
        except ValueError as exc:
            raise stream.invalid(exc) from exc


class _ResultRows(ViewRows):
    """One result of a multi-query answer: its rows are read once, before the next result's."""

    def __init__(
        self, view: View, query: ViewQuery, events: AsyncIterator[Any], stream: RowStream
    ) -> None:
        super().__init__(view, query)
        self._events = events
        self._stream = stream
        self._started = False
        self._done = False

    async def _next_event(self) -> Any:
        try:
            return await self._events.__anext__()
        except StopAsyncIteration:
            raise self._stream.invalid(
                ValueError("the answer holds fewer results than queries were sent")
            ) from None

    def _end(self, end: ResultEnd) -> None:
        self._done = True
        try:
            self._take_meta(end.meta)
        except ValueError as exc:
            raise self._stream.invalid(exc) from exc

    async def __aiter__(self) -> AsyncIterator[ViewRow]:
        if self._started or self._done:
            raise RuntimeError(
                "The rows of one result of several queries can be read once, and only "
                "before the next result is taken"
            )
        self._started = True
        while not self._done:
            event = await self._next_event()
            if isinstance(event, ResultEnd):
                self._end(event)
            else:
                yield event

    async def _skip_rest(self) -> None:
        """Reads past the rows the caller left, to the end of this result."""
        self._started = True
        while not self._done:
            event = await self._next_event()
            if isinstance(event, ResultEnd):
                self._end(event)


class ViewResults:
    """The results of several queries of one view, sent in one request.

    Iterate with ``async for``: POST {view}/queries with ``{"queries": [...]}`` (nothing
    for no queries), then one :class:`ViewRows` per query, in order, each streaming its
    rows as they arrive; read a result's rows before taking the next (the rows left are
    skipped then). Raises as :class:`ViewRows` does, and InvalidResponseError if the
    answer holds another number of results than queries were sent. A broken answer is
    sent again only if nothing was handed out yet.
    """

    def __init__(self, view: View, queries: Sequence[ViewQuery | Mapping[str, Any]]) -> None:
        if isinstance(queries, (str, bytes, Mapping)) or not isinstance(queries, Sequence):
            raise TypeError("queries must be a list of ViewQuery objects or dicts of options")
        self._view = view
        self.queries = [
            query if isinstance(query, ViewQuery) else _query_of(query) for query in queries
        ]
        """The queries, as :class:`ViewQuery` objects."""

    def __repr__(self) -> str:
        return f"<ViewResults of {self._view._subject}: {len(self.queries)} queries>"

    async def __aiter__(self) -> AsyncIterator[ViewRows]:
        if not self.queries:
            return
        stream = self._view._multi_rows([query.body() for query in self.queries])
        events = _events(stream)
        try:
            for query in self.queries:
                result = _ResultRows(self._view, query, events, stream)
                yield result
                await result._skip_rest()
            async for _ in events:
                raise stream.invalid(
                    ValueError("the answer holds more results than queries were sent")
                )
        finally:
            await events.aclose()


def _query_of(options: Any) -> ViewQuery:
    if not isinstance(options, Mapping):
        raise TypeError(f"A query must be a ViewQuery or a dict, not {type(options).__name__}")
    return ViewQuery(**options)


async def _events(stream: RowStream) -> AsyncGenerator[Any, None]:
    """The rows and result ends of a multi-query answer, one by one."""
    async for batch in stream.batches():
        for value, _ in batch:
            yield value


class ViewIndexInfo(TypedDict, total=False):
    """The state of a design document's view index (``view_index`` of its ``_info``)."""

    signature: str
    language: str
    update_seq: Any
    purge_seq: Any
    sizes: dict[str, int]
    updater_running: bool
    compact_running: bool
    waiting_clients: int
    waiting_commit: bool
    updates_pending: dict[str, int]
    collator_versions: list[str]


@dataclass(frozen=True)
class DesignDocumentInfo:
    """What ``GET /{db}/_design/{ddoc}/_info`` tells: the name and the view index."""

    name: str
    """The design document's name, without ``_design/``."""
    view_index: ViewIndexInfo
    """Its view index: signature, sizes, update_seq, whether it is updating..."""
