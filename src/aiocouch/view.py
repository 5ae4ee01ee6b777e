"""Views and ``_all_docs``: queries whose rows are streamed as the server sends them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from . import _json
from ._answers import is_document
from .document import Document
from .exception import NotFoundError
from .remote import RemoteView, RowStream
from .typing import JsonDict
from .view_query import ViewQuery, ViewResults, ViewRows

if TYPE_CHECKING:
    from .database import Database

__all__ = ["AllDocsView", "View", "ViewResponse"]


def _row_document(
    database: Database,
    row: JsonDict,
    source: bytes | str | None,
    *,
    create: bool,
    include_ddocs: bool,
    document_class: type[Document] = Document,
) -> Document | None:
    """The document of a row fetched with ``include_docs``; None for a skipped design doc.

    A missing or deleted id raises NotFoundError, or gives an empty unsaved document
    with ``create``; a ``doc`` that is not a document raises ValueError.
    """
    doc = row.get("doc")
    if doc is not None and not is_document(doc):
        raise ValueError(f"the 'doc' of row {row.get('id')!r} is not a JSON object with an '_id'")
    if "error" in row or doc is None:
        key = str(row["id"] if "id" in row else row["key"])
        if not create:
            raise NotFoundError(
                f"The document '{key}' does not exist in the database {database.id}."
            )
        return document_class(database, key)
    if include_ddocs or not doc["_id"].startswith("_design/"):
        return document_class._from_server(database, doc, source)
    return None


@dataclass(frozen=True)
class ViewResponse:
    """The answer of a view query; reduced results have no ``offset``/``total_rows``."""

    _database: Database
    rows: list[JsonDict] = field(default_factory=list)
    offset: int | None = None
    total_rows: int | None = None
    update_seq: Any | None = None

    @classmethod
    def from_json(cls, database: Database, response: JsonDict) -> ViewResponse:
        """Builds the response from CouchDB's JSON, ignoring fields it does not know."""
        known = {f.name for f in fields(cls)}
        return cls(_database=database, **{k: v for k, v in response.items() if k in known})

    def keys(self) -> Iterator[str]:
        """The document ids of the rows (not the view keys), skipping error rows (no request)."""
        return (row["id"] for row in self.rows if "error" not in row)

    def values(self) -> Iterator[Any]:
        """The values of the rows (no request)."""
        return (row["value"] for row in self.rows)

    def items(self) -> Iterator[tuple[Any, Any]]:
        """The ``(key, value)`` pairs of the rows (no request)."""
        return ((row["key"], row["value"]) for row in self.rows)

    def docs(self, *, create: bool = False, include_ddocs: bool = False) -> Iterator[Document]:
        """The documents of the rows, a plain generator (no request).

        The query must have used ``include_docs=true`` (else KeyError). A missing or
        deleted id raises NotFoundError, or gives an empty unsaved document with
        ``create``; design documents are skipped unless ``include_ddocs``.
        """
        if self.rows and "doc" not in self.rows[0] and "error" not in self.rows[0]:
            raise KeyError("The view was queried without include_docs=true")
        for row in self.rows:
            document = _row_document(
                self._database, row, None, create=create, include_ddocs=include_ddocs
            )
            if document is not None:
                yield document


class View(RemoteView):
    """The view ``id`` of design document ``design_doc`` (name without ``_design/``)."""

    _document_class: ClassVar[type[Document]] = Document
    """What :meth:`docs` makes of the rows' documents."""

    def __init__(self, database: Database, design_doc: str, id: str) -> None:
        super().__init__(database, design_doc, id)

    @property
    def prefix_sentinel(self) -> str:
        """The character appended to a prefix to make the end key of a range."""
        return "\uffff"

    async def get(self, **params: Any) -> ViewResponse:
        """Queries the view: GET {view}?params (values sent verbatim)."""
        return ViewResponse.from_json(self._database, await self._get(**params))

    async def post(self, keys: list[Any], **params: Any) -> ViewResponse:
        """Queries the view for ``keys``: POST {view}?params with body ``{"keys": keys}``."""
        return ViewResponse.from_json(self._database, await self._post(keys, **params))

    def query(self, **options: Any) -> ViewRows:
        """The rows for ``options`` (those of :class:`ViewQuery`, keys as Python values).

        Iterating streams GET {view}?options (POST with ``{"keys": [...]}`` for ``keys``).
        Raises TypeError or ValueError at once for options that cannot make a query.
        """
        return ViewRows(self, ViewQuery(**options))

    def queries(self, queries: Sequence[ViewQuery | Mapping[str, Any]]) -> ViewResults:
        """Several queries in one request: iterating sends POST {view}/queries.

        Each query is a :class:`ViewQuery` or a dict of its options; see :class:`ViewResults`.
        """
        return ViewResults(self, queries)

    def _stream(self, keys: list[Any] | None, params: dict[str, Any]) -> RowStream:
        return self._rows(keys, **params)

    async def akeys(self, **params: Any) -> AsyncIterator[str]:
        """The document ids of the rows, streamed: GET {view}?params."""
        async for row in self._stream(None, params):
            if "error" not in row:
                yield row["id"]

    async def avalues(self, **params: Any) -> AsyncIterator[Any]:
        """The values of the rows, streamed: GET {view}?params."""
        async for row in self._stream(None, params):
            yield row["value"]

    async def aitems(self, **params: Any) -> AsyncIterator[tuple[Any, Any]]:
        """The ``(key, value)`` pairs of the rows, streamed: GET {view}?params."""
        async for row in self._stream(None, params):
            yield row["key"], row["value"]

    def _range(self, prefix: str | None, params: dict[str, Any]) -> dict[str, Any]:
        if "key" in params or "keys" in params:
            raise AttributeError("Use ids= instead of key= or keys= here")
        if prefix is not None:
            params["startkey"] = _json.dumps(prefix).decode()
            params["endkey"] = _json.dumps(prefix + self.prefix_sentinel).decode()
        return params

    async def ids(
        self, ids: list[str] | None = None, *, prefix: str | None = None, **params: Any
    ) -> AsyncIterator[str]:
        """The document ids of the rows: GET {view}, or POST with ``{"keys": ids}``.

        Raises AttributeError for ``key``/``keys`` (use ``ids``), ValueError for ``prefix``
        together with ``ids``; missing ids are skipped.
        """
        if prefix is not None and ids is not None:
            raise ValueError("Cannot use prefix and ids together")
        async for row in self._stream(ids, self._range(prefix, params)):
            if "error" not in row:
                yield row["id"]

    async def docs(
        self,
        ids: list[str] | None = None,
        *,
        create: bool = False,
        prefix: str | None = None,
        include_ddocs: bool = False,
        **params: Any,
    ) -> AsyncIterator[Document]:
        """The documents of the rows, streamed: GET {view}?include_docs=true, or POST ids.

        Missing ids raise NotFoundError mid-iteration, or yield an empty unsaved document
        with ``create=True``. Design documents are skipped unless ``include_ddocs``.
        """
        if prefix is not None and (ids is not None or create):
            raise ValueError("Cannot use prefix together with ids or create")
        params = self._range(prefix, params)
        params["include_docs"] = True
        database = self._database
        document_class = self._document_class
        from_server = document_class._from_server
        stream = self._stream(ids, params)
        async for batch in stream.batches():
            for row, source in batch:
                doc = row.get("doc")
                # (the common row, checked as _row_document checks it, without the call)
                if type(doc) is dict and type(doc.get("_id")) is str and "error" not in row:
                    if include_ddocs or not doc["_id"].startswith("_design/"):
                        yield from_server(database, doc, source)
                    continue
                try:
                    document = _row_document(
                        database,
                        row,
                        source,
                        create=create,
                        include_ddocs=include_ddocs,
                        document_class=document_class,
                    )
                except ValueError as exc:
                    raise stream.invalid(exc) from exc
                if document is not None:
                    yield document


class AllDocsView(View):
    """``/{db}/_all_docs``: every document, keyed by id."""

    _rows_by_id = True

    def __init__(self, database: Database) -> None:
        super().__init__(database, "", "_all_docs")

    @property
    def endpoint(self) -> str:
        """``/{db}/_all_docs``."""
        return f"{self._scope}/_all_docs"

    @property
    def _subject(self) -> str:
        return f"_all_docs of {self._scope_subject}"

    @property
    def prefix_sentinel(self) -> str:
        """The end-of-range character for ids (the highest code point CouchDB sorts)."""
        return chr(0x10FFFE)
