"""A changes follower: every change of a database, through dropped connections, stalls and restarts.

``database.follow(...)`` returns a :class:`ChangesFollower`. Beside
``database.changes(...)`` (one feed, as in aiocouch 4.0.1), it keeps following: when the
connection drops, the server stops sending (no heartbeat for a few heartbeats), or the
server restarts, it asks again ``since`` the last change it read, after a short, growing,
jittered pause. Changes come in the server's order, at least once; a change the server
sends again after a resume (a CouchDB cluster may replay a shard's changes) is handed out
again and counted in :attr:`ChangesFollower.duplicates`. The machinery
(:class:`FeedFollower`, :mod:`aiocouch._feed_following`) is the same for every feed of
this kind: ``couchdb.follow_db_updates()`` (:mod:`aiocouch.db_updates`) reads
``/_db_updates`` with it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._feed_following import (
    FEEDS,
    FIRST_RETRY_DELAY,
    SILENT_HEARTBEATS,
    FeedFollower,
    FeedSource,
    check_options,
)
from ._transport import NO_BODY
from .event import BaseChangeEvent, event_for_change
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "FEEDS",
    "FIRST_RETRY_DELAY",
    "SILENT_HEARTBEATS",
    "ChangesFollower",
    "FeedFollower",
    "FeedSource",
]


class _ChangesSource(FeedSource[BaseChangeEvent]):
    """The changes feed of a database, with the follower's filter."""

    marker = "id"

    def __init__(
        self,
        database: Database,
        *,
        feed: str,
        doc_ids: Sequence[str] | None,
        selector: JsonDict | None,
        filter: str | None,
        view: str | None,
        include_docs: bool,
        heartbeat: float,
        params: Mapping[str, Any],
    ) -> None:
        own: dict[str, Any] = {"feed": feed, "heartbeat": math.ceil(heartbeat * 1000)}
        body: Any = NO_BODY
        if doc_ids is not None:
            own["filter"] = "_doc_ids"
            body = {"doc_ids": list(doc_ids)}
        elif selector is not None:
            own["filter"] = "_selector"
            body = {"selector": selector}
        elif view is not None:
            own["filter"] = "_view"
            own["view"] = view
        elif filter is not None:
            own["filter"] = filter
        if include_docs:
            own["include_docs"] = True
        super().__init__(
            database._remote,
            f"{database.endpoint}/_changes",
            f"_changes of database '{database.id}'",
            params={**own, **params},
            body=body,
        )
        self._database = database

    def event(self, row: JsonDict) -> BaseChangeEvent:
        return event_for_change(self._database, row)

    def key(self, row: JsonDict) -> Hashable:
        changes = row.get("changes") or [{}]
        return row.get("id"), changes[0].get("rev")


class ChangesFollower(FeedFollower[BaseChangeEvent]):
    """Follows the changes of a database until stopped: ``async for event in follower``.

    Made by :meth:`aiocouch.Database.follow`; see there for the options. It sends
    GET (or, with ``doc_ids``/``selector``, POST) /{db}/_changes?feed=...&since=...&heartbeat=...
    again and again, as :class:`FeedFollower` says: it raises the server's error for a
    status that does not pass (404 when the database is gone, 400 for a bad filter...).
    """

    def __init__(
        self,
        database: Database,
        *,
        since: Any = None,
        feed: str = "continuous",
        doc_ids: Sequence[str] | None = None,
        selector: JsonDict | None = None,
        filter: str | None = None,
        view: str | None = None,
        include_docs: bool = False,
        heartbeat: float = 10.0,
        max_retry_delay: float = 10.0,
        error_tolerance: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        params = dict(params or {})
        check_options(
            since=since,
            feed=feed,
            doc_ids=doc_ids,
            selector=selector,
            filter=filter,
            view=view,
            heartbeat=heartbeat,
            max_retry_delay=max_retry_delay,
            error_tolerance=error_tolerance,
            params=params,
        )
        self._database = database
        source = _ChangesSource(
            database,
            feed=feed,
            doc_ids=doc_ids,
            selector=selector,
            filter=filter,
            view=view,
            include_docs=include_docs,
            heartbeat=heartbeat,
            params=params,
        )
        super().__init__(
            source,
            since=since,
            heartbeat=heartbeat,
            max_retry_delay=max_retry_delay,
            error_tolerance=error_tolerance,
        )

    def __repr__(self) -> str:
        return f"<ChangesFollower of {self._database.id!r} last_seq={self.last_seq!r}>"
