"""The client object: one CouchDB server, its session and its databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import aiohttp

from . import _paths
from .auth import Authentication
from .cluster import Failover, NodeStatus, Quorum
from .database import Database
from .db_updates import DbUpdatesFeed, DbUpdatesFollower
from .exception import BadRequestError, NotFoundError, PreconditionFailedError
from .node import LOCAL_NODE, Node
from .remote import RemoteServer
from .replication import Endpoint, Replication, Replications
from .resharding import Resharding
from .retry import RetryPolicy
from .server import DBS_INFO_PAGE_SIZE, DatabaseInfoRow, Membership, UpStatus, dbs_info
from .session import Login, SessionInfo
from .typing import JsonDict
from .users import Users

__all__ = ["CouchDB", "JsonDict"]


class CouchDB:
    """A CouchDB server; use it as ``async with CouchDB(url, user, password) as couchdb``.

    Constructing it sends no request. Authentication, one of (default: none, anonymous):

    - ``user`` and ``password``, by position (as aiocouch's documentation does) or by
      keyword, or in the URL (``http://user:password@host:5984``): basic authentication
      (UTF-8), used when both are non-empty;
    - ``cookie``: a fixed ``AuthSession`` cookie, never renewed;
    - ``auth``: an :class:`aiohttp.BasicAuth`, or a strategy of :mod:`aiocouch.auth`:
      :class:`~aiocouch.auth.SessionAuth` (a cookie session: one ``POST /_session``,
      renewed before it expires and on a 401), :class:`~aiocouch.auth.JWTAuth` (a fixed
      token, or a callable returning fresh ones) or :class:`~aiocouch.auth.ProxyAuth`.
      A strategy cannot be combined with the other ways (``ValueError``).

    ``timeout``, an :class:`aiohttp.ClientTimeout`, sets the time limits of every call
    (default :data:`aiocouch._client.DEFAULT_TIMEOUT`: 30 s to connect, 60 s to get a
    pooled connection, 120 s of silence at most, 300 s for a whole answer; a streamed
    iteration has no total limit unless ``timeout`` gives one); :meth:`timeouts` changes
    them for a block of calls. ``retry``, a :class:`~aiocouch.retry.RetryPolicy`, ``True``
    (the default policy) or ``False`` (each call sent once, as 4.0.1 did), says how failed
    calls are repeated: only where repeating cannot write twice.

    ``server`` is one URL, or a list of the URLs of a cluster's nodes (or of a primary and
    its fallback) in order of preference: each attempt goes to a healthy node, and a node
    that failed is checked again as ``failover`` (a :class:`~aiocouch.cluster.Failover`)
    says. ``quorum``, a :class:`~aiocouch.cluster.Quorum`, sets the ``w`` and ``r`` sent
    with every document write and read (see :mod:`aiocouch.cluster`).

    ``ssl`` is the TLS choice for ``https://`` servers, as aiohttp takes it: omitted or
    ``True``, the certificate is verified against the system's CAs and must name the
    host; an :class:`ssl.SSLContext` is used as given (a private CA, a client
    certificate); ``False`` switches verification off; an :class:`aiohttp.Fingerprint`
    pins the certificate. A certificate that fails raises
    :class:`aiohttp.ClientConnectorCertificateError` before anything is sent.

    Other keyword arguments go to :class:`aiohttp.ClientSession` (``connector=``, ...).
    Credentials never appear in a ``repr``, a log record or an exception.
    """

    def __init__(
        self,
        server: str | Sequence[str],
        user: str | None = None,
        password: str | None = None,
        *,
        cookie: str | None = None,
        auth: aiohttp.BasicAuth | Authentication | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | bool = True,
        failover: Failover | None = None,
        quorum: Quorum | None = None,
        **kwargs: Any,
    ) -> None:
        self._server = RemoteServer(
            server,
            user=user,
            password=password,
            cookie=cookie,
            auth=auth,
            timeout=timeout,
            retry=retry,
            failover=failover,
            quorum=quorum,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"<CouchDB {self._server._http.base_url}>"

    async def __aenter__(self) -> CouchDB:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def timeouts(self, timeout: aiohttp.ClientTimeout) -> AbstractContextManager[None]:
        """``with couchdb.timeouts(aiohttp.ClientTimeout(...)):`` limits for a block of calls.

        Every call of this client made inside the block (in this task, and in tasks
        started from it) uses ``timeout`` instead of the client's limits, streamed
        iterations included. Sends no request.
        """
        return self._server._http.timeouts_within(timeout)

    @property
    def nodes(self) -> tuple[NodeStatus, ...]:
        """The nodes of this client and their health, in order of preference (no request)."""
        return self._server._http.node_statuses()

    async def close(self) -> None:
        """Closes the HTTP session (no request)."""
        await self._server.close()

    async def check_credentials(self) -> None:
        """Checks the credentials: GET /_session.

        Raises UnauthorizedError (401) or ForbiddenError (403).
        """
        await self._server._check_session()

    async def create(self, id: str, *, exists_ok: bool = False, **params: Any) -> Database:
        """Creates the database ``id``: PUT /{db}?params (``q``, ``n``, ``partitioned``).

        Raises BadRequestError for an invalid name (before any request) and
        PreconditionFailedError if it exists, unless ``exists_ok``.
        """
        _check_database_name(id)
        database = Database(self, id)
        try:
            await database._put(**params)
        except PreconditionFailedError:
            if not exists_ok:
                raise
        return database

    def __getitem__(self, id: str) -> Awaitable[Database]:
        """``await couchdb[id]``: the existing database ``id``; HEAD /{db}.

        Raises NotFoundError if it does not exist.
        """
        return self._existing_database(id)

    async def _existing_database(self, id: str) -> Database:
        try:
            _paths.validate_database_name(id)
        except ValueError as exc:
            # No database can have such a name: it does not exist (a KeyError, as before).
            raise NotFoundError(f"The database '{id}' does not exist: {exc}") from None
        database = Database(self, id)
        if not await database._exists():
            raise NotFoundError(f"The database '{id}' does not exist.")
        return database

    async def keys(self, **params: Any) -> list[str]:
        """The names of all databases: GET /_all_dbs?params."""
        return await self._server._all_dbs(**params)

    async def info(self) -> JsonDict:
        """The server's welcome object: GET /."""
        return await self._server._info()

    async def up(self) -> UpStatus:
        """The node's health, ``{"status": "ok", ...}``: GET /_up (needs no login).

        Raises NotFoundError (404) when the node is in maintenance mode or, on CouchDB's
        ``nolb`` setting, asks load balancers to leave it out.
        """
        return await self._server._up()

    async def uuids(self, count: int = 1) -> list[str]:
        """``count`` new UUIDs from the server: GET /_uuids?count=...

        Raises ValueError for a count that is not a positive int (before any request),
        BadRequestError for more than the server gives at once (``[uuids] max_count``).
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, not {count!r}")
        return await self._server._uuids(count)

    async def membership(self) -> Membership:
        """The nodes of the cluster: GET /_membership."""
        return await self._server._membership()

    async def active_tasks(self) -> list[JsonDict]:
        """The tasks running on the cluster (compactions, indexing, replications,
        resharding), one object each: GET /_active_tasks (server admins only)."""
        return await self._server._active_tasks()

    def dbs_info(
        self,
        names: Iterable[str] | None = None,
        *,
        start_key: str | None = None,
        end_key: str | None = None,
        page_size: int = DBS_INFO_PAGE_SIZE,
    ) -> AsyncIterator[DatabaseInfoRow]:
        """``async for row in couchdb.dbs_info()``: the info of each database, paged.

        With ``names``: POST /_dbs_info ``{"keys": [...]}``, ``page_size`` names per
        request; a missing database gives a row with ``"error": "not_found"``. Without:
        every database (between ``start_key`` and ``end_key``), in name order, by GET
        /_dbs_info?limit=...&start_key=... Raises ValueError, TypeError or
        BadRequestError (an invalid name) before any request.
        """
        return dbs_info(
            self._server, names, start_key=start_key, end_key=end_key, page_size=page_size
        )

    async def cluster_setup(self, ensure_dbs_exist: Sequence[str] | None = None) -> str:
        """The cluster's set-up state, e.g. ``"single_node_enabled"``: GET /_cluster_setup.

        ``ensure_dbs_exist``: the system databases to check (CouchDB's default: _users
        and _replicator); the state says ``..._disabled`` while one is missing. Raises
        TypeError for a str in its place (before any request).
        """
        params: dict[str, Any] = {}
        if ensure_dbs_exist is not None:
            if isinstance(ensure_dbs_exist, str):
                raise TypeError("ensure_dbs_exist takes a list of database names, not a str")
            params["ensure_dbs_exist"] = list(ensure_dbs_exist)
        return (await self._server._cluster_setup(params))["state"]

    def db_updates(
        self,
        *,
        feed: str = "normal",
        since: Any = None,
        limit: int | None = None,
        descending: bool = False,
        timeout: float | None = None,
    ) -> DbUpdatesFeed:
        """``async for update in couchdb.db_updates()``: the databases created, updated
        or deleted ``since`` a sequence (all, by default), read once: GET
        /_db_updates?feed=...&since=...

        ``feed="longpoll"`` waits up to ``timeout`` seconds (CouchDB's default 60) for
        the next event; ``since="now"`` only sees later events. The feed's
        :attr:`~aiocouch.db_updates.DbUpdatesFeed.last_seq` is where to read on. Raises
        ValueError or TypeError for other values (before any request), NotFoundError
        where the server keeps no ``_global_changes`` database (see
        :mod:`aiocouch.db_updates`).
        """
        return DbUpdatesFeed(
            self, feed=feed, since=since, limit=limit, descending=descending, timeout=timeout
        )

    def follow_db_updates(
        self,
        *,
        since: Any = None,
        feed: str = "continuous",
        heartbeat: float = 10.0,
        max_retry_delay: float = 10.0,
        error_tolerance: float | None = None,
    ) -> DbUpdatesFollower:
        """A follower of ``/_db_updates``, through dropped connections, stalls and restarts.

        Sends GET /_db_updates?feed=continuous&heartbeat=...&since=... (``feed=
        "longpoll"``: one such request per batch), again after every break, ``since``
        the last event read; ``since="now"`` is fixed on start (GET
        /_db_updates?since=now). The options mean what they mean for
        :meth:`aiocouch.Database.follow`. Raises ValueError or TypeError for options
        that cannot make a follower, before any request.
        """
        return DbUpdatesFollower(
            self,
            since=since,
            feed=feed,
            heartbeat=heartbeat,
            max_retry_delay=max_retry_delay,
            error_tolerance=error_tolerance,
        )

    def node(self, name: str = LOCAL_NODE) -> Node:
        """The node ``name`` (``"_local"``: the one that answers), to read its statistics
        and configuration (see :mod:`aiocouch.node`); sends no request."""
        return Node(self, name)

    def resharding(self) -> Resharding:
        """The cluster's resharder: its state and shard splitting jobs (see
        :mod:`aiocouch.resharding`); sends no request."""
        return Resharding(self)

    async def session(self) -> SessionInfo:
        """Who the client's requests authenticate as: GET /_session."""
        return await self._server._session_info()

    async def login(self, name: str, password: str) -> Login:
        """Logs ``name`` in and returns the session with its cookie: POST /_session.

        The client itself goes on authenticating as before (see :mod:`aiocouch.session`).
        Raises UnauthorizedError for a wrong name or password (CouchDB locks an account
        for a while after 5 failed logins), ValueError for an empty name or password.
        """
        for what, value in (("name", name), ("password", password)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"login() needs a non-empty {what} (a str)")
        return await self._server._login(name, password)

    async def logout(self) -> None:
        """Ends the client's cookie session: DELETE /_session.

        CouchDB keeps no sessions: a cookie stays valid until it expires, and the answer
        only tells the client to drop it. A client with :class:`~aiocouch.auth.SessionAuth`
        does, and logs in again on its next request.
        """
        await self._server._logout()

    async def replicate(
        self, source: Endpoint, target: Endpoint, *, continuous: bool = False, **options: Any
    ) -> Replication:
        """Replicates ``source`` to ``target``: POST /_replicate.

        See :meth:`Replications.replicate <aiocouch.replication.Replications.replicate>`.
        """
        return await self.replications.replicate(source, target, continuous=continuous, **options)

    @property
    def replications(self) -> Replications:
        """The server's replications and scheduler (no request): :mod:`aiocouch.replication`."""
        return Replications(self)

    @property
    def users(self) -> Users:
        """The server's user accounts (no request): :mod:`aiocouch.users`."""
        return Users(self)


def _check_database_name(name: str) -> None:
    try:
        _paths.validate_database_name(name)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
