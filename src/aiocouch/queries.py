"""Several queries in one request (``POST .../queries``), each result streamed.

``async for result in db.all_docs.queries([{"keys": ["a", "b"]}, {"limit": 10}])`` gives
one :class:`QueryResult` per query, in the order of the queries, as soon as its first row
arrives; ``async for row in result`` gives that query's rows as they arrive. Only the row
being received is held in memory, however large the results.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from ._answers import describe_problem
from ._query_rows import QueriesParser, QueryEvent, ResultEnd
from ._rows import parsed_pieces
from ._transport import JSON_CONTENT_TYPE
from .exception import InvalidResponseError
from .typing import JsonDict

if TYPE_CHECKING:
    from ._client import HTTPClient

__all__ = ["QueryResult", "QueryResults", "checked_queries"]


def checked_queries(queries: Iterable[Mapping[str, Any]]) -> list[JsonDict]:
    """``queries`` as the list of objects a ``/queries`` body holds.

    Raises TypeError for queries that are not a list of mappings with str keys.
    """
    if isinstance(queries, (str, bytes, Mapping)) or not isinstance(queries, Iterable):
        raise TypeError(f"queries must be a list of mappings, not {type(queries).__name__}")
    checked = []
    for query in queries:
        if not isinstance(query, Mapping) or not all(isinstance(key, str) for key in query):
            raise TypeError(f"Each query must be a mapping with str keys, not {query!r}")
        checked.append(dict(query))
    return checked


class _Events:
    """The events of one answer, taken one at a time, with a look at the next."""

    def __init__(self, source: AsyncIterator[QueryEvent]) -> None:
        self._source = source
        self._next: QueryEvent | None = None
        self._ended = False

    async def peek(self) -> QueryEvent | None:
        """The next event without taking it; None after the last."""
        if self._next is None and not self._ended:
            try:
                self._next = await self._source.__anext__()
            except StopAsyncIteration:
                self._ended = True
        return self._next

    async def take(self) -> QueryEvent | None:
        """The next event; None after the last."""
        event = await self.peek()
        self._next = None
        return event


class QueryResult:
    """The answer to one query of several: its rows, streamed once, then its other fields.

    ``total_rows``, ``offset`` and ``update_seq`` (and :attr:`meta`, all fields but the
    rows) are known once the rows are read. Rows not read when the iteration of the
    results moves on are skipped; reading them after that raises RuntimeError.
    """

    def __init__(self, events: _Events, index: int, query: JsonDict) -> None:
        self._events = events
        self.index = index
        """The position of the query among the queries sent."""
        self.query = query
        """The query as sent."""
        self.meta: JsonDict = {}
        """Once the rows are read: the answer to the query without its rows."""
        self._reading = False
        self._ended = False

    @property
    def total_rows(self) -> int | None:
        """The number of rows of the whole view, once the rows are read (or None)."""
        total: int | None = self.meta.get("total_rows")
        return total

    @property
    def offset(self) -> int | None:
        """The position of the first row in the whole view, once the rows are read."""
        offset: int | None = self.meta.get("offset")
        return offset

    @property
    def update_seq(self) -> Any:
        """The sequence the rows reflect (with ``update_seq: true``), once they are read."""
        return self.meta.get("update_seq")

    async def __aiter__(self) -> AsyncIterator[JsonDict]:
        if self._reading:
            raise RuntimeError(f"The rows of result {self.index} were read or skipped already")
        self._reading = True
        while True:
            rows = await self._next_rows()
            if rows is None:
                return
            for row, _ in rows:
                yield row

    async def _next_rows(self) -> list[tuple[Any, str]] | None:
        """The next rows of this result; None once it ended (then :attr:`meta` is set)."""
        if self._ended:
            return None
        event = await self._events.take()
        # The parser raises for an answer that ends inside a result, so an answer's
        # events for this result end with its ResultEnd.
        if event is None or isinstance(event, ResultEnd):
            self.meta = event.meta if event is not None else {}
            self._ended = True
            return None
        return event.rows

    async def _skip(self) -> None:
        """Reads the rest of the rows (nobody else will)."""
        self._reading = True
        while await self._next_rows() is not None:
            pass

    def __repr__(self) -> str:
        return f"<QueryResult {self.index} {self.query!r}>"


class QueryResults:
    """The results of ``queries`` sent in one request (POST ``path`` ``{"queries": [...]}``).

    Each iteration sends the request and gives one :class:`QueryResult` per query, in
    their order. No queries: no request. An answer with another number of results, or
    that is not the JSON of such an answer, raises InvalidResponseError once the rows
    before the fault are handed out. A failure while the answer opens is retried as the
    client's policy allows; a break after that raises (the answer is not resumed).
    """

    def __init__(
        self,
        client: HTTPClient,
        path: str,
        queries: list[JsonDict],
        *,
        subject: str,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self._client = client
        self._path = path
        self._queries = queries
        self._subject = subject
        self._timeout = timeout
        self.meta: JsonDict = {}
        """After the iteration: the answer without its results."""

    async def __aiter__(self) -> AsyncIterator[QueryResult]:
        if not self._queries:
            return
        parser = QueriesParser()
        source = self._events(parser)
        events = _Events(source)
        try:
            count = len(self._queries)
            for index, query in enumerate(self._queries):
                if await events.peek() is None:
                    raise self._invalid(f"the answer holds {index} results for {count} queries")
                result = QueryResult(events, index, query)
                yield result
                await result._skip()
            if await events.peek() is not None:
                raise self._invalid(f"the answer holds more results than the {count} queries")
        finally:
            await source.aclose()
        self.meta = parser.meta

    async def _events(self, parser: QueriesParser) -> AsyncGenerator[QueryEvent, None]:
        async with self._client.stream(
            "POST",
            self._path,
            json={"queries": self._queries},
            subject=self._subject,
            coalesce=True,
            timeout=self._timeout,
        ) as pieces:
            async for events in parsed_pieces(pieces, parser, self._invalid):
                for event in events:
                    yield event

    def _invalid(self, problem: ValueError | str) -> InvalidResponseError:
        """The error for an answer that ``problem`` (a parser's complaint) shows is wrong."""
        if isinstance(problem, ValueError):
            problem = describe_problem(problem)
        return self._client.invalid_answer(
            problem, "POST", self._path, None, JSON_CONTENT_TYPE, self._subject
        )
