"""The changes feed of a database: events as the server sends them, and where it ended."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from ._resume import ChangesContinuation
from .event import BaseChangeEvent, event_for_change

if TYPE_CHECKING:
    from .database import Database

__all__ = ["ChangesFeed"]


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
            async for line in database._remote._lines(path, params=params, subject=subject):
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
        )
        async for change in rows:
            yield event_for_change(database, change)
        self.last_seq, self.pending = rows.meta.get("last_seq"), rows.meta.get("pending")

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
