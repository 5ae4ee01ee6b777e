"""The changes feed of a database: events as the server sends them, and where it ended."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import aiohttp

from ._resume import ChangesContinuation
from .event import BaseChangeEvent, event_for_change

if TYPE_CHECKING:
    from .database import Database

__all__ = ["ChangesFeed"]

_DEFAULT_HEARTBEAT_MS = 60_000
"""What CouchDB takes ``heartbeat=true`` for."""


class ChangesFeed:
    """An async generator of change events from GET /{db}/_changes.

    Iterate it with ``async for``. When the server ends the feed, :attr:`last_seq` and
    :attr:`pending` hold its final ``last_seq``/``pending`` (None until then), which is
    where a later feed can resume (``since=feed.last_seq``).
    """

    def __init__(
        self, database: Database, *, last_event_id: str | None = None, **params: Any
    ) -> None:
        self._database = database
        params["last-event-id"] = last_event_id
        if params.get("feed") == "continuous":
            params.setdefault("heartbeat", True)
        self._params = params
        self.last_seq: Any = None
        self.pending: int | None = None
        self._events = self._generate()

    async def _generate(self) -> AsyncGenerator[BaseChangeEvent, None]:
        database, params = self._database, self._params
        path = f"{database.endpoint}/_changes"
        subject = f"_changes of database '{database.id}'"
        if params.get("feed") == "continuous":
            lines = database._remote._lines(
                path, params=params, subject=subject, timeout=self._feed_timeout()
            )
            async for line in lines:
                if "last_seq" in line and "id" not in line:
                    self.last_seq, self.pending = line["last_seq"], line.get("pending")
                    return
                yield event_for_change(database, line)
            return
        rows = database._remote._rows(
            "GET",
            path,
            "results",
            params=params,
            subject=subject,
            continuation=ChangesContinuation,
            timeout=self._feed_timeout(),
        )
        async for change in rows:
            yield event_for_change(database, change)
        self.last_seq, self.pending = rows.meta.get("last_seq"), rows.meta.get("pending")

    def _feed_timeout(self) -> aiohttp.ClientTimeout | None:
        """The limits of a feed that waits for changes: none but its silences.

        Like 4.0.1, a continuous or longpoll feed has no total limit. It may be silent
        three heartbeats long (``heartbeat=true`` means CouchDB's 60 s), or, without
        heartbeats, a longpoll's ``timeout`` (CouchDB's default 60 s) plus a minute; with
        neither, as long as the client's ``sock_read``. None for a normal feed: the
        client's limits.
        """
        params = self._params
        if params.get("feed") not in ("continuous", "longpoll"):
            return None
        client = self._database._remote._http.stream_timeout
        heartbeat, wait = params.get("heartbeat"), params.get("timeout")
        silence = client.sock_read
        if heartbeat:
            silence = 3 * (_DEFAULT_HEARTBEAT_MS if heartbeat is True else float(heartbeat)) / 1000
        elif params.get("feed") == "longpoll" and wait is not None:
            silence = float(wait) / 1000 + 60
        return aiohttp.ClientTimeout(
            total=None,
            connect=client.connect,
            sock_connect=client.sock_connect,
            sock_read=silence,
        )

    def __aiter__(self) -> ChangesFeed:
        return self

    async def __anext__(self) -> BaseChangeEvent:
        return await self._events.__anext__()

    async def asend(self, value: None) -> BaseChangeEvent:
        """Part of the async generator protocol."""
        return await self._events.asend(value)

    async def athrow(self, *args: Any) -> BaseChangeEvent:
        """Part of the async generator protocol."""
        return await self._events.athrow(*args)

    async def aclose(self) -> None:
        """Stops the feed and releases its response."""
        await self._events.aclose()
