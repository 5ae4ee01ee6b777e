"""Mango: queries whose results are plain JSON objects, query plans, and index management.

``db.mango`` (a :class:`Mango`, no request) holds what aiocouch 4.0.1's ``db.find()``
(whole :class:`~aiocouch.document.Document` objects, no ``fields``) and ``db.index()``
(index creation) leave out::

    query = db.mango.find({"type": "fruit"}, fields=["_id", "value"], execution_stats=True)
    async for row in query:          # {"_id": "apple", "value": 3}, ...
        ...
    query.bookmark, query.warnings, query.execution_stats

    plan = await db.mango.explain({"value": {"$gt": 2}}, sort=[{"value": "asc"}])
    for index in await db.mango.indexes():
        ...
    await db.mango.delete_index("idx", "by-value")

Server warnings (the ``warning`` field of a ``_find`` answer, such as "No matching index
found, create an index to optimize query time."): :class:`MangoQuery` issues each line
once per iteration as a :class:`MangoWarning` through Python's :mod:`warnings` module
(attributed to the caller's ``async for``; filter or escalate them like any warning) and
keeps them in :attr:`MangoQuery.warnings`. ``db.find()`` logs them to the
``aiocouch.mango`` logger at level WARNING instead, so that code written for aiocouch
4.0.1 sees no new warnings.

pouchdb-server differs (shared/couchdb/DIFF.md, summary 5): it sends no bookmark (pages
then continue with ``skip``), ignores ``execution_stats`` (:attr:`MangoQuery.execution_stats`
stays None), explains a query in another shape (only ``index`` and ``selector`` are
common) and cannot delete indexes.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _json
from .request import _DEFAULT_PAGE_SIZE, FindPages
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "ExecutionStats",
    "IndexDeletions",
    "Mango",
    "MangoIndex",
    "MangoQuery",
    "MangoWarning",
    "QueryPlan",
]

_DESIGN_PREFIX = "_design/"


class MangoWarning(UserWarning):
    """A warning the server sent with the results of a Mango query."""


@dataclass(frozen=True)
class ExecutionStats:
    """What the server did to answer a Mango query (``execution_stats=True``), all pages summed."""

    total_keys_examined: int = 0
    """Index keys examined."""
    total_docs_examined: int = 0
    """Documents read from the database or the index."""
    total_quorum_docs_examined: int = 0
    """Documents read again for a read quorum ``r`` above 1."""
    results_returned: int = 0
    """Results sent."""
    execution_time_ms: float = 0.0
    """Time the server spent, in milliseconds."""

    @classmethod
    def from_totals(cls, totals: dict[str, float]) -> ExecutionStats:
        """The statistics of ``totals`` (fields the server sends beyond these are left out)."""
        return cls(
            total_keys_examined=int(totals.get("total_keys_examined", 0)),
            total_docs_examined=int(totals.get("total_docs_examined", 0)),
            total_quorum_docs_examined=int(totals.get("total_quorum_docs_examined", 0)),
            results_returned=int(totals.get("results_returned", 0)),
            execution_time_ms=float(totals.get("execution_time_ms", 0.0)),
        )


@dataclass(frozen=True)
class MangoIndex:
    """An index that Mango queries can use, as ``GET /{db}/_index`` lists it."""

    ddoc: str | None
    """The id of its design document (``_design/...``); None for the ``_all_docs`` index."""
    name: str
    type: str
    """``json``, ``special`` (``_all_docs``), or ``text``/``nouveau`` with those services."""
    definition: JsonDict
    """The ``def`` object: the indexed ``fields`` (and a ``partial_filter_selector``)."""
    partitioned: bool | None = None
    """Whether it indexes partitions; None where the server does not say (pouchdb-server)."""

    @classmethod
    def from_json(cls, index: JsonDict) -> MangoIndex:
        """The index described by ``index`` (a checked index definition)."""
        return cls(
            ddoc=index.get("ddoc"),
            name=index["name"],
            type=index["type"],
            definition=index["def"],
            partitioned=index.get("partitioned"),
        )


@dataclass(frozen=True)
class QueryPlan:
    """How the server would answer a Mango query (``POST /{db}/_explain``)."""

    index: MangoIndex
    """The index the query would use."""
    selector: JsonDict
    """The selector as the server understood it."""
    json: JsonDict
    """The whole answer; CouchDB adds ``opts``, ``limit``, ``skip``, ``fields``,
    ``index_candidates`` (the indexes not chosen, and why), ``mrargs``, ``covering``..."""

    @classmethod
    def from_json(cls, plan: JsonDict) -> QueryPlan:
        """The plan of a checked ``_explain`` answer."""
        return cls(index=MangoIndex.from_json(plan["index"]), selector=plan["selector"], json=plan)


@dataclass(frozen=True)
class IndexDeletions:
    """What ``POST /{db}/_index/_bulk_delete`` did, by design document id."""

    deleted: list[str]
    """The design documents whose indexes were deleted."""
    failed: dict[str, Any]
    """The design documents whose indexes were not deleted, with CouchDB's ``error``."""


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _query_body(
    selector: Any,
    *,
    fields: Sequence[str] | None,
    sort: Sequence[Any] | None,
    skip: int | None,
    bookmark: str | None,
    use_index: str | Sequence[str] | None,
    options: dict[str, Any],
) -> JsonDict:
    """The ``_find``/``_explain`` body of a query (``limit`` aside); refuses bad input.

    Raises TypeError or ValueError naming the first problem.
    """
    if not isinstance(selector, dict):
        raise TypeError(f"A Mango selector must be a dict, not {type(selector).__name__}")
    body: JsonDict = {"selector": selector}
    if fields is not None:
        if isinstance(fields, str) or not all(isinstance(field, str) for field in fields):
            raise TypeError("fields must be a list of field names (str)")
        body["fields"] = list(fields)
    if sort is not None:
        if isinstance(sort, (str, dict)):
            raise TypeError('sort must be a list, e.g. [{"value": "asc"}]')
        body["sort"] = list(sort)
    if skip is not None:
        _check_int("skip", skip, 0)
        body["skip"] = skip
    if bookmark is not None:
        if not isinstance(bookmark, str):
            raise TypeError(f"bookmark must be a str, not {type(bookmark).__name__}")
        body["bookmark"] = bookmark
    if use_index is not None:
        if isinstance(use_index, str):
            body["use_index"] = use_index
        elif all(isinstance(part, str) for part in use_index):
            body["use_index"] = list(use_index)
        else:
            raise TypeError('use_index must be a design document or ["ddoc", "index name"]')
    body.update(options)
    try:
        _json.dumps(body)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"The query cannot be sent as JSON: {exc}") from None
    return body


class MangoQuery:
    """The results of a Mango query as plain JSON objects, streamed page by page.

    Iterate with ``async for``; each iteration sends the query anew: POST /{db}/_find
    with ``{"selector": ..., "limit": ..., ...}``, one request per page of ``page_size``
    results, each continuing with the bookmark of the page before (on a server without
    bookmarks, with ``skip``), until ``limit`` results were read or a page is short.
    ``limit=0`` sends nothing. Each page is handed out row by row as it arrives.

    After an iteration (or during one, for the pages read whole):

    - :attr:`bookmark`: the bookmark after the last page read whole: a query with
      ``bookmark=`` continues after it (results of a page left halfway come again);
    - :attr:`warnings`: the server's warnings, each line once (also issued as
      :class:`MangoWarning`, see the module);
    - :attr:`execution_stats`: with ``execution_stats=True``, the server's statistics
      summed over the pages (None if the server sent none).

    Iterating raises BadRequestError for a query the server refuses (an unknown operator,
    a ``sort`` no index supports, an invalid bookmark), NotFoundError if the database
    does not exist, InvalidResponseError for an answer that is not a ``_find`` answer.
    """

    def __init__(
        self,
        database: Database,
        selector: JsonDict,
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        skip: int | None = None,
        bookmark: str | None = None,
        use_index: str | Sequence[str] | None = None,
        execution_stats: bool = False,
        page_size: int = _DEFAULT_PAGE_SIZE,
        **options: Any,
    ) -> None:
        if limit is not None:
            _check_int("limit", limit, 0)
        _check_int("page_size", page_size, 1)
        if not isinstance(execution_stats, bool):
            raise TypeError("execution_stats must be True or False")
        if execution_stats:
            options["execution_stats"] = True
        self._database = database
        self._body = _query_body(
            selector,
            fields=fields,
            sort=sort,
            skip=skip,
            bookmark=bookmark,
            use_index=use_index,
            options=options,
        )
        self._limit = limit
        self._page_size = page_size
        self._pages: FindPages | None = None

    @property
    def bookmark(self) -> str | None:
        """The bookmark after the last page read whole (before any: the one given)."""
        if self._pages is None:
            bookmark: str | None = self._body.get("bookmark")
            return bookmark
        return self._pages.bookmark

    @property
    def warnings(self) -> list[str]:
        """The server's warnings in the last iteration, each line once."""
        return [] if self._pages is None else list(self._pages.warnings)

    @property
    def execution_stats(self) -> ExecutionStats | None:
        """The server's statistics of the last iteration, summed over its pages, or None."""
        totals = None if self._pages is None else self._pages.execution_stats
        return None if totals is None else ExecutionStats.from_totals(totals)

    def _warn(self, warning: str) -> None:
        # stacklevel 5: this method, FindPages._note, FindPages.batches, __aiter__, and
        # then the caller's ``async for``, where the warning belongs.
        warnings.warn(MangoWarning(warning), stacklevel=5)

    async def __aiter__(self) -> AsyncIterator[JsonDict]:
        pages = FindPages(
            self._database,
            self._body,
            page_size=self._page_size,
            limit=self._limit,
            on_warning=self._warn,
        )
        self._pages = pages
        if self._limit == 0:
            return
        async for batch in pages.batches():
            for row, _ in batch:
                yield row


class Mango:
    """The Mango queries and indexes of a database (``db.mango``; no request)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def find(
        self,
        selector: JsonDict,
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        skip: int | None = None,
        bookmark: str | None = None,
        use_index: str | Sequence[str] | None = None,
        execution_stats: bool = False,
        page_size: int = _DEFAULT_PAGE_SIZE,
        **options: Any,
    ) -> MangoQuery:
        """The results matching ``selector`` as plain JSON objects (no request yet).

        ``fields``: the fields of each result (default: whole documents); ``sort``: as
        CouchDB takes it (needs an index); ``limit``: the most results in all (default:
        every match); ``skip``: results left out first; ``bookmark``: continue after an
        earlier query's :attr:`MangoQuery.bookmark`; ``use_index``: a design document or
        ``[ddoc, name]``; ``execution_stats``: ask for :class:`ExecutionStats`;
        ``page_size``: results per request (10 000). Other ``options`` (``r``,
        ``conflicts``, ``update``, ``stable``, ``allow_fallback``...) go into the body as
        given. Iterating sends POST /{db}/_find, page by page (see :class:`MangoQuery`).
        Raises TypeError or ValueError at once for options that cannot make a query.
        """
        return MangoQuery(
            self._database,
            selector,
            fields=fields,
            sort=sort,
            limit=limit,
            skip=skip,
            bookmark=bookmark,
            use_index=use_index,
            execution_stats=execution_stats,
            page_size=page_size,
            **options,
        )

    async def explain(
        self,
        selector: JsonDict,
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        skip: int | None = None,
        use_index: str | Sequence[str] | None = None,
        **options: Any,
    ) -> QueryPlan:
        """How the server would answer the query: POST /{db}/_explain.

        Takes the options of :meth:`find` that shape the query. Raises TypeError or
        ValueError (no request) for options that cannot make a query, BadRequestError
        for a query the server refuses, InvalidResponseError for an answer without the
        ``index`` and ``selector``.
        """
        body = _query_body(
            selector,
            fields=fields,
            sort=sort,
            skip=skip,
            bookmark=None,
            use_index=use_index,
            options=options,
        )
        if limit is not None:
            _check_int("limit", limit, 0)
            body["limit"] = limit
        return QueryPlan.from_json(await self._database._explain(body))

    async def indexes(self) -> list[MangoIndex]:
        """Every index of the database, ``_all_docs`` first: GET /{db}/_index.

        Raises NotFoundError if the database does not exist.
        """
        answer = await self._database._indexes()
        return [MangoIndex.from_json(index) for index in answer["indexes"]]

    async def delete_index(self, ddoc: str, name: str, *, type: str = "json") -> None:
        """Deletes the index ``name`` of design document ``ddoc`` (with or without ``_design/``).

        Sends DELETE /{db}/_index/{ddoc}/{type}/{name}. Raises ValueError or TypeError
        (no request) for an empty or non-str part, NotFoundError if there is no such
        index.
        """
        for part, value in (("ddoc", ddoc), ("name", name), ("type", type)):
            if not isinstance(value, str):
                raise TypeError(f"The index {part} must be a str, not {value.__class__.__name__}")
        bare = ddoc[len(_DESIGN_PREFIX) :] if ddoc.startswith(_DESIGN_PREFIX) else ddoc
        if not (bare and name and type):
            raise ValueError("The design document, name and type of an index must not be empty")
        await self._database._delete_index(bare, type, name)

    async def delete_indexes(self, ddocs: Sequence[str], *, w: int | None = None) -> IndexDeletions:
        """Deletes every Mango index of the design documents ``ddocs``.

        Sends POST /{db}/_index/_bulk_delete with ``{"docids": ddocs}`` (and the write
        quorum ``w``); a design document without indexes is reported in ``failed``.
        Raises TypeError or ValueError (no request) for ids that are not non-empty str.
        """
        if isinstance(ddocs, str) or not all(isinstance(ddoc, str) and ddoc for ddoc in ddocs):
            raise TypeError("ddocs must be a list of design document ids (non-empty str)")
        options: JsonDict = {}
        if w is not None:
            _check_int("w", w, 1)
            options["w"] = w
        answer = await self._database._bulk_delete_indexes(list(ddocs), **options)
        return IndexDeletions(
            deleted=[item["id"] for item in answer["success"]],
            failed={item["id"]: item.get("error") for item in answer["fail"]},
        )
