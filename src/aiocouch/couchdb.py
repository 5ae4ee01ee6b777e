"""The client object: one CouchDB server, its session and its databases."""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import aiohttp

from . import _paths
from .auth import Authentication
from .database import Database
from .exception import BadRequestError, NotFoundError, PreconditionFailedError
from .remote import RemoteServer
from .replication import Endpoint, Replication, Replications
from .retry import RetryPolicy
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

    Other keyword arguments go to :class:`aiohttp.ClientSession` (``connector=``, ...).
    Credentials never appear in a ``repr``, a log record or an exception.
    """

    def __init__(
        self,
        server: str,
        user: str | None = None,
        password: str | None = None,
        *,
        cookie: str | None = None,
        auth: aiohttp.BasicAuth | Authentication | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | bool = True,
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
