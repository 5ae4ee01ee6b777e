"""Mango queries: POST /{db}/_find, page by page, each page streamed.

:class:`FindPages` sends the pages of one query and notes what each page said besides its
documents (bookmark, ``warning``, ``execution_stats``); it serves aiocouch 4.0.1's
:class:`FindRequest` (whole documents) and :class:`aiocouch.mango.MangoQuery` (plain JSON
objects, ``fields`` allowed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Callable

from ._resume import Continuation
from .document import Document
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["FindRequest", "FindRequestChunk"]

_DEFAULT_PAGE_SIZE = 10_000
_STATS_FIELDS = (
    "total_keys_examined",
    "total_docs_examined",
    "total_quorum_docs_examined",
    "results_returned",
    "execution_time_ms",
)

logger = logging.getLogger("aiocouch.mango")
"""Where :class:`FindRequest` (``Database.find()``) reports the server's warnings."""

Batch = list[tuple[JsonDict, str]]


class FindRequestChunk:
    """One page of a ``_find`` answer: its documents, bookmark and whether it is the last."""

    def __init__(self, database: Database, *, data: JsonDict, pagination_size: int) -> None:
        self._database = database
        self._data = data
        self._pagination_size = pagination_size

    @property
    async def docs(self) -> AsyncIterator[Document]:
        """The documents of the page (no request)."""
        for doc in self._data.get("docs", []):
            yield Document._from_server(self._database, doc)

    @property
    def bookmark(self) -> str | None:
        """The bookmark that continues after this page."""
        bookmark: str | None = self._data.get("bookmark")
        return bookmark

    @property
    def is_last_chunk(self) -> bool:
        """True if the page held fewer documents than asked for."""
        return len(self._data.get("docs", [])) < self._pagination_size


class FindPages:
    """The pages of one Mango query: POST {db}/_find, each page streamed as it arrives.

    ``scope`` is the quoted path the query's path starts with and how messages name it
    (default: the database's; a partition's: ``/{db}/_partition/{p}``).

    Each page asks for ``page_size`` results (fewer when ``limit``, the most results in
    all, is nearer), continuing with the bookmark of the page before, until a page is
    short or ``limit`` is reached. A server that sends no bookmark (pouchdb-server) is
    paged with ``skip``. With ``skip_every_page`` the caller's ``skip`` is sent again with
    every bookmark, as aiocouch 4.0.1 did; otherwise only with the first page.

    After each page: :attr:`bookmark` is its bookmark, :attr:`warnings` gained its new
    ``warning`` lines (each also handed to ``on_warning``), and :attr:`execution_stats`
    adds its statistics up (None until a page brought some).
    """

    def __init__(
        self,
        database: Database,
        body: JsonDict,
        *,
        scope: tuple[str, str] | None = None,
        page_size: int = _DEFAULT_PAGE_SIZE,
        limit: int | None = None,
        skip_every_page: bool = False,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self._database = database
        self._body = body
        self._scope = scope or (database.endpoint, f"database '{database.id}'")
        self._page_size = page_size
        self._limit = limit
        self._skip_every_page = skip_every_page
        self._on_warning = on_warning
        self.bookmark: str | None = body.get("bookmark")
        self.warnings: list[str] = []
        self.execution_stats: dict[str, float] | None = None

    async def batches(self) -> AsyncIterator[Batch]:
        """The results as they arrive, a list per read, each with its JSON text."""
        database = self._database
        body = dict(self._body)
        left = self._limit
        while True:
            size = self._page_size if left is None else min(self._page_size, left)
            body["limit"] = size
            rows = database._remote._rows(
                "POST",
                f"{self._scope[0]}/_find",
                "docs",
                json=dict(body),
                subject=f"_find in {self._scope[1]}",
                # A page's bookmark comes at its end: a page that broke after some
                # documents were handed out cannot continue, only one that broke before.
                continuation=Continuation,
            )
            count = 0
            async for batch in rows.batches():
                count += len(batch)
                yield batch
            try:
                self._note(rows.meta)
            except ValueError as exc:
                raise rows.invalid(exc) from exc
            if left is not None:
                left -= count
            if count < size or left == 0:
                return
            if self.bookmark:
                body["bookmark"] = self.bookmark
                if not self._skip_every_page:
                    body.pop("skip", None)
            else:
                # A server without bookmarks (pouchdb-server) still honours skip: page on
                # rather than silently stop after the first page.
                body["skip"] = body.get("skip", 0) + count

    def _note(self, meta: JsonDict) -> None:
        """Takes a page's bookmark, warnings and statistics; ValueError if malformed."""
        bookmark = meta.get("bookmark")
        if bookmark is not None and not isinstance(bookmark, str):
            raise ValueError("the 'bookmark' is not a string")
        self.bookmark = bookmark
        warning = meta.get("warning")
        if warning is not None:
            if not isinstance(warning, str):
                raise ValueError("the 'warning' is not a string")
            for line in warning.splitlines():
                if line and line not in self.warnings:
                    self.warnings.append(line)
                    if self._on_warning is not None:
                        self._on_warning(line)
        stats = meta.get("execution_stats")
        if stats is not None:
            self._add_stats(stats)

    def _add_stats(self, stats: Any) -> None:
        if not isinstance(stats, dict):
            raise ValueError("the 'execution_stats' is not a JSON object")
        total: dict[str, float] = self.execution_stats or dict.fromkeys(_STATS_FIELDS, 0)
        for name, value in stats.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"the execution statistic {name!r} is not a number")
            total[name] = total.get(name, 0) + value
        self.execution_stats = total


class FindRequest:
    """The documents matching ``selector``; iterate with ``async for``.

    Sends POST /{db}/_find with ``{"selector": ..., "limit": page, **params}``, then
    again with the returned ``bookmark`` until a page is short (a server that returns no
    bookmark is paged with ``skip``). With ``limit``, one page. The server's warnings
    (such as "No matching index found") are logged to the ``aiocouch.mango`` logger at
    level WARNING, once per iteration.
    """

    def __init__(
        self, database: Database, selector: Any, *, limit: int | None = None, **params: Any
    ) -> None:
        self._database = database
        self._selector = selector
        self._limit = limit
        self._params = params

    @property
    def _scope(self) -> str:
        """The quoted path the query's path starts with: the database's (or a partition's)."""
        return self._database.endpoint

    @property
    def _scope_subject(self) -> str:
        return f"database '{self._database.id}'"

    async def __aiter__(self) -> AsyncIterator[Document]:
        if "fields" in self._params:
            raise ValueError("find() returns whole documents: fields= is not supported")
        database = self._database
        pages = FindPages(
            database,
            scope=(self._scope, self._scope_subject),
            body={"selector": self._selector, **database._remote._quorum._read(), **self._params},
            page_size=self._limit if self._limit is not None else _DEFAULT_PAGE_SIZE,
            limit=self._limit,
            skip_every_page=True,
            on_warning=lambda warning: logger.warning(
                "_find in database %r: %s", database.id, warning
            ),
        )
        async for batch in pages.batches():
            for doc, source in batch:
                yield Document._from_server(database, doc, source, source_key=None)
