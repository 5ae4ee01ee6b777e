"""Mango queries: POST /{db}/_find, page by page, each page streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._resume import Continuation
from .document import Document
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["FindRequest", "FindRequestChunk"]

_DEFAULT_PAGE_SIZE = 10_000


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


class FindRequest:
    """The documents matching ``selector``; iterate with ``async for``.

    Sends POST /{db}/_find with ``{"selector": ..., "limit": page, **params}``, then
    again with the returned ``bookmark`` until a page is short (a server that returns no
    bookmark is paged with ``skip``). With ``limit``, one page.
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
        page_size = self._limit if self._limit is not None else _DEFAULT_PAGE_SIZE
        body: JsonDict = {"selector": self._selector, "limit": page_size, **self._params}
        while True:
            count = 0
            rows = database._remote._rows(
                "POST",
                f"{self._scope}/_find",
                "docs",
                json=body,
                subject=f"_find in {self._scope_subject}",
                # A page's bookmark comes at its end: a page that broke after some
                # documents were handed out cannot continue, only one that broke before.
                continuation=Continuation,
            )
            async for batch in rows.batches():
                for doc, source in batch:
                    count += 1
                    yield Document._from_server(database, doc, source, source_key=None)
            if self._limit is not None or count < page_size:
                return
            bookmark = rows.meta.get("bookmark")
            if bookmark:
                body["bookmark"] = bookmark
            else:
                # A server without bookmarks (pouchdb-server) still honours skip: page on
                # rather than silently stop after the first page.
                body["skip"] = body.get("skip", 0) + page_size
