"""Database events of the whole server (``/_db_updates``): read once, or followed.

Each event says that a database was ``created``, ``updated`` or ``deleted``.
``couchdb.db_updates()`` reads the feed once (a normal feed, or a longpoll that waits for
the next event); ``couchdb.follow_db_updates()`` follows it until stopped, through dropped
connections, stalls and restarts, as :class:`~aiocouch.follower.ChangesFollower` follows a
database. Both are for server admins.

CouchDB reads these events from the ``_global_changes`` database, which keeps one record
per database and kind of event: a database updated many times since ``since`` shows up
once, with its latest sequence. A single node has no ``_global_changes`` database unless
one creates it (``PUT /_global_changes``); without it every read raises NotFoundError.
pouchdb-server answers every ``/_db_updates`` request with an empty 400.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from ._feed_following import check_options
from ._resume import ChangesContinuation
from .follower import FeedFollower, FeedSource
from .typing import JsonDict

if TYPE_CHECKING:
    from ._row_stream import RowStream
    from .couchdb import CouchDB

__all__ = ["DatabaseUpdate", "DbUpdatesFeed", "DbUpdatesFollower"]

_PATH = "/_db_updates"
_ONE_SHOT_FEEDS = ("normal", "longpoll")
_LONGPOLL_GRACE = 60.0
"""Seconds a longpoll answer may be late past its ``timeout`` before it counts as lost."""


@dataclass
class DatabaseUpdate:
    """One event of ``/_db_updates``, as the server sent it in ``json``."""

    json: JsonDict

    @property
    def db_name(self) -> str:
        """The database the event is about."""
        name: str = self.json["db_name"]
        return name

    @property
    def type(self) -> str:
        """What happened to it: ``created``, ``updated`` or ``deleted``."""
        kind: str = self.json["type"]
        return kind

    @property
    def seq(self) -> Any:
        """The event's sequence: pass it as ``since`` to read what came after it."""
        return self.json.get("seq")


class _DbUpdatesSource(FeedSource[DatabaseUpdate]):
    """``/_db_updates`` as a follower reads it."""

    marker = "db_name"

    def __init__(self, couchdb: CouchDB, *, feed: str, heartbeat: float) -> None:
        super().__init__(
            couchdb._server,
            _PATH,
            _PATH,
            params={"feed": feed, "heartbeat": math.ceil(heartbeat * 1000)},
        )

    def event(self, row: JsonDict) -> DatabaseUpdate:
        return DatabaseUpdate(row)

    def key(self, row: JsonDict) -> Hashable:
        return row.get("db_name"), row.get("type"), row.get("seq")


class DbUpdatesFollower(FeedFollower[DatabaseUpdate]):
    """Follows ``/_db_updates`` until stopped: ``async for update in follower``.

    Made by :meth:`aiocouch.CouchDB.follow_db_updates`. It sends GET
    /_db_updates?feed=...&heartbeat=...&since=... again and again, ``since`` the last
    event read, as :class:`~aiocouch.follower.FeedFollower` says; a status that does not
    pass (404 without a ``_global_changes`` database, 401 for a client that is no server
    admin) is raised. :attr:`last_seq` is where to go on from later.
    """

    def __init__(
        self,
        couchdb: CouchDB,
        *,
        since: Any = None,
        feed: str = "continuous",
        heartbeat: float = 10.0,
        max_retry_delay: float = 10.0,
        error_tolerance: float | None = None,
    ) -> None:
        check_options(
            since=since,
            feed=feed,
            doc_ids=None,
            selector=None,
            filter=None,
            view=None,
            heartbeat=heartbeat,
            max_retry_delay=max_retry_delay,
            error_tolerance=error_tolerance,
            params={},
        )
        super().__init__(
            _DbUpdatesSource(couchdb, feed=feed, heartbeat=heartbeat),
            since=since,
            heartbeat=heartbeat,
            max_retry_delay=max_retry_delay,
            error_tolerance=error_tolerance,
        )

    def __repr__(self) -> str:
        return f"<DbUpdatesFollower last_seq={self.last_seq!r}>"


class DbUpdatesFeed:
    """One read of ``/_db_updates``: ``async for update in feed``, then :attr:`last_seq`.

    Made by :meth:`aiocouch.CouchDB.db_updates`. The events are streamed as they arrive;
    an answer that breaks is resumed ``since`` the last event handed out, as the client's
    retry policy allows.
    """

    def __init__(
        self,
        couchdb: CouchDB,
        *,
        feed: str = "normal",
        since: Any = None,
        limit: int | None = None,
        descending: bool = False,
        timeout: float | None = None,
    ) -> None:
        if feed not in _ONE_SHOT_FEEDS:
            raise ValueError(
                f"feed must be one of {', '.join(_ONE_SHOT_FEEDS)} (follow_db_updates() "
                f"follows a continuous feed), not {feed!r}"
            )
        if since is not None and (isinstance(since, bool) or not isinstance(since, (str, int))):
            raise TypeError(f"since must be a sequence (str or int) or 'now', not {since!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValueError(f"limit must be an int >= 0, not {limit!r}")
        if timeout is not None and not (
            isinstance(timeout, (int, float))
            and not isinstance(timeout, bool)
            and math.isfinite(timeout)
            and timeout >= 0
        ):
            raise ValueError(f"timeout must be seconds >= 0, not {timeout!r}")
        self._couchdb = couchdb
        self._feed = feed
        self._timeout = timeout
        self._params: dict[str, Any] = {
            "feed": feed,
            "since": since,
            "limit": limit,
            "descending": descending or None,
            "timeout": None if timeout is None else math.ceil(timeout * 1000),
        }
        self._rows: RowStream | None = None
        self.last_seq: Any = None
        """Where the feed ended (None until it did): pass it as ``since`` to read on."""

    def __repr__(self) -> str:
        return f"<DbUpdatesFeed feed={self._feed!r} last_seq={self.last_seq!r}>"

    async def __aiter__(self) -> AsyncIterator[DatabaseUpdate]:
        rows = self._couchdb._server._rows(
            "GET",
            _PATH,
            "results",
            params=self._params,
            subject=_PATH,
            continuation=ChangesContinuation,
            timeout=self._longpoll_timeout(),
        )
        async for row in rows:
            yield DatabaseUpdate(row)
        self.last_seq = rows.meta.get("last_seq")

    def _longpoll_timeout(self) -> aiohttp.ClientTimeout | None:
        """A longpoll waits for an event: no total limit, and a silence as long as its
        ``timeout`` (CouchDB's default 60 s) plus a minute. None (the client's limits)
        for a normal feed."""
        if self._feed != "longpoll":
            return None
        client = self._couchdb._server._http.stream_timeout
        wait = 60.0 if self._timeout is None else self._timeout
        return aiohttp.ClientTimeout(
            total=None,
            connect=client.connect,
            sock_connect=client.sock_connect,
            sock_read=wait + _LONGPOLL_GRACE,
        )
