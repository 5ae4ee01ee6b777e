"""Replication: copying a database's documents to another database, once or continuously.

Two ways to start one, both through :attr:`CouchDB.replications
<aiocouch.CouchDB.replications>` (or :meth:`CouchDB.replicate <aiocouch.CouchDB.replicate>`):

- :meth:`Replications.replicate` (``POST /_replicate``): a one-shot replication answers
  when it is done; a continuous one runs until cancelled or the server restarts.
- :meth:`Replications.create` (a ``_replicator`` document): the server keeps it,
  restarts it after a restart, and reports its state; deleting the document cancels it.

:meth:`Replication.progress` and :meth:`ReplicationDocument.progress` poll the scheduler
until the replication has finished, yielding what it has copied; ``wait()`` returns the
last of those.

A source or target is a database name on this client's server, a :class:`~aiocouch.Database`
(of any client: its server and credentials are used), a URL (``http://user:password@host/db``),
a :class:`ReplicationEndpoint` (a URL and credentials apart), or CouchDB's own endpoint
object (a dict with ``url`` and ``headers`` or ``auth``), sent as given. The server makes
the requests of the replication itself, so it needs credentials for both: a name or a
Database gets those of its client. Credentials never appear in a ``repr``, a log record or
an exception.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from . import _paths
from ._remote_replication import RemoteReplicator, check_replicator_db
from ._replication_endpoints import Endpoint, ReplicationEndpoint, replication_body
from ._replication_status import (
    ReplicationProgress,
    ReplicationResult,
    SchedulerDocument,
    SchedulerJob,
)
from ._secret_values import secrets_hidden
from .database import Database
from .document import Document
from .exception import ConflictError, NotFoundError
from .typing import JsonDict

if TYPE_CHECKING:
    from .couchdb import CouchDB

__all__ = [
    "Endpoint",
    "Replication",
    "ReplicationDocument",
    "ReplicationEndpoint",
    "ReplicationError",
    "ReplicationProgress",
    "ReplicationResult",
    "Replications",
    "SchedulerDocument",
    "SchedulerJob",
]

FIRST_POLL_INTERVAL = 0.1
"""Seconds between the first two polls of :meth:`Replication.progress`; each later pause
is twice as long, up to ``max_interval`` (default :data:`MAX_POLL_INTERVAL`)."""
MAX_POLL_INTERVAL = 2.0
_CANCEL_ATTEMPTS = 5


class ReplicationError(RuntimeError):
    """The replication failed for good (state ``failed``); ``progress`` says why."""

    def __init__(self, message: str, progress: ReplicationProgress) -> None:
        super().__init__(message)
        self.progress = progress


class Replications:
    """The replications of one server: start them, find them, read the scheduler.

    Obtained as :attr:`CouchDB.replications <aiocouch.CouchDB.replications>`; sends no
    request until a method is called.
    """

    def __init__(self, couchdb: CouchDB) -> None:
        self._couchdb = couchdb
        self._replicator = RemoteReplicator(couchdb._server)

    def __repr__(self) -> str:
        return f"<Replications of {self._couchdb!r}>"

    async def replicate(
        self,
        source: Endpoint,
        target: Endpoint,
        *,
        continuous: bool = False,
        create_target: bool = False,
        doc_ids: Sequence[str] | None = None,
        selector: JsonDict | None = None,
        filter: str | None = None,
        query_params: JsonDict | None = None,
        **options: Any,
    ) -> Replication:
        """Replicates ``source`` to ``target``: POST /_replicate.

        One-shot (the default): the answer comes when the replication is done, so the
        call lasts as long as it does, within the client's time limits (raise them with
        ``couchdb.timeouts(...)``, or use :meth:`create` for long replications); its
        :attr:`Replication.result` says what was copied. ``continuous=True``: the answer
        comes at once (202) and the replication runs until cancelled
        (:meth:`Replication.cancel`). ``create_target`` creates a missing target;
        ``doc_ids``, ``selector`` or ``filter`` (``"ddoc/name"``, with ``query_params``)
        choose the documents; other ``options`` (``since_seq``, ``use_checkpoints``,
        ``winning_revs_only``...) go into the request as given.

        Raises ValueError or TypeError for an invalid endpoint or option (before any
        request); for what the server refuses, the exception of its answer (CouchDB
        answers 500 ``db_not_found`` for a missing source, 401/403 for credentials the
        endpoint's server refused); none of them shows a credential.
        """
        body, secrets, shown = replication_body(
            self._couchdb._server._http,
            source,
            target,
            continuous=continuous,
            create_target=create_target,
            doc_ids=doc_ids,
            selector=selector,
            filter=filter,
            query_params=query_params,
            options=options,
        )
        status, answer = await self._replicator._replicate(body, secrets)
        replication_id = answer.get("_local_id")
        return Replication(
            self._replicator,
            id=replication_id if isinstance(replication_id, str) else None,
            continuous=continuous,
            source=shown[0],
            target=shown[1],
            result=None if continuous else ReplicationResult.from_answer(answer),
            status=status,
        )

    async def create(
        self,
        source: Endpoint,
        target: Endpoint,
        *,
        id: str | None = None,
        replicator_db: str = "_replicator",
        continuous: bool = False,
        create_target: bool = False,
        doc_ids: Sequence[str] | None = None,
        selector: JsonDict | None = None,
        filter: str | None = None,
        query_params: JsonDict | None = None,
        **options: Any,
    ) -> ReplicationDocument:
        """Starts a replication the server keeps: PUT /{replicator_db}/{id}.

        ``id`` names the ``_replicator`` document (default: a new UUID); the other
        arguments are those of :meth:`replicate`. Returns at once; follow it with
        :meth:`ReplicationDocument.progress` or :meth:`ReplicationDocument.wait`.

        Raises ValueError or TypeError for an invalid endpoint, option, ``id`` or
        ``replicator_db`` (before any request), ConflictError if the document ``id``
        exists; no exception shows a credential.
        """
        check_replicator_db(replicator_db)
        doc_id = uuid.uuid4().hex if id is None else _replication_document_id(id)
        body, secrets, _ = replication_body(
            self._couchdb._server._http,
            source,
            target,
            continuous=continuous,
            create_target=create_target,
            doc_ids=doc_ids,
            selector=selector,
            filter=filter,
            query_params=query_params,
            options=options,
        )
        document = Document(Database(self._couchdb, replicator_db), doc_id, data=body)
        with secrets_hidden(secrets):
            await document.save()
        return ReplicationDocument(self, doc_id, replicator_db=replicator_db)

    def document(self, id: str, *, replicator_db: str = "_replicator") -> ReplicationDocument:
        """The replication of the document ``id`` in ``replicator_db`` (no request)."""
        check_replicator_db(replicator_db)
        return ReplicationDocument(self, _replication_document_id(id), replicator_db=replicator_db)

    async def jobs(self, **params: Any) -> AsyncIterator[SchedulerJob]:
        """The replications running now, streamed: GET /_scheduler/jobs?params
        (``limit``, ``skip``)."""
        async for row in self._replicator._scheduler_jobs(**params):
            yield SchedulerJob.from_row(row)

    async def docs(
        self, replicator_db: str | None = None, **params: Any
    ) -> AsyncIterator[SchedulerDocument]:
        """The replication documents and their states, streamed: GET /_scheduler/docs, or
        GET /_scheduler/docs/{replicator_db} for one replicator database (``limit``,
        ``skip``, ``states``).

        Raises ValueError for a ``replicator_db`` that is not ``_replicator`` and does not
        end in ``/_replicator`` (before any request).
        """
        rows = self._replicator._scheduler_docs(replicator_db, **params)
        async for row in rows:
            yield SchedulerDocument.from_row(row)

    async def status(self, id: str, *, replicator_db: str = "_replicator") -> SchedulerDocument:
        """The scheduler's view of the replication document ``id``:
        GET /_scheduler/docs/{replicator_db}/{docid}.

        Raises NotFoundError if the scheduler does not know it (yet).
        """
        return SchedulerDocument.from_row(
            await self._replicator._scheduler_doc(replicator_db, _replication_document_id(id))
        )


class Replication:
    """A replication started with ``POST /_replicate`` (see :meth:`Replications.replicate`).

    ``id`` is the server's replication id (a continuous replication's, to cancel it by;
    None for a one-shot one, and on servers that give none); ``result`` what a one-shot
    replication copied; ``source`` and ``target`` are shown without credentials.
    """

    def __init__(
        self,
        replicator: RemoteReplicator,
        *,
        id: str | None,
        continuous: bool,
        source: str | None,
        target: str | None,
        result: ReplicationResult | None,
        status: int,
    ) -> None:
        self._replicator = replicator
        self.id = id
        self.continuous = continuous
        self.source = source
        self.target = target
        self.result = result
        self.status = status
        """The answer's HTTP status: 200 (one-shot, done), 202 (continuous, started)."""
        self._listed = False  # seen among the scheduler's jobs: gone from there = ended
        self._cancelled = False

    def __repr__(self) -> str:
        kind = "continuous" if self.continuous else "one-shot"
        return f"<Replication {kind} {self.source} -> {self.target} id={self.id!r}>"

    async def cancel(self) -> None:
        """Stops a continuous replication: POST /_replicate with its ``replication_id`` and
        ``"cancel": true``.

        Raises ValueError if there is no id to cancel by (a one-shot replication has ended
        already; some servers, such as pouchdb-server, give none), NotFoundError if the
        server runs no such replication (any more).
        """
        if self.id is None:
            raise ValueError(
                "This replication has no replication id to cancel it by: a one-shot "
                "replication has ended when replicate() returns, and the server gave none"
            )
        await self._replicator._cancel(self.id)
        self._cancelled = True

    async def progress(
        self, *, interval: float = FIRST_POLL_INTERVAL, max_interval: float = MAX_POLL_INTERVAL
    ) -> AsyncIterator[ReplicationProgress]:
        """Where the replication stands, once per poll of GET /_scheduler/jobs.

        A one-shot replication yields its result once. A continuous one yields until the
        scheduler no longer runs it (cancelled; at once, without a request, after
        :meth:`cancel`); until the scheduler lists it, polls yield nothing. Polls are
        ``interval`` seconds apart at first, twice as long each time, at most
        ``max_interval``. Each request has the client's time limits. Raises ValueError
        for a continuous replication without id.
        """
        _check_intervals(interval, max_interval)
        if self.result is not None:
            yield self.result.progress
            return
        if self.id is None:
            raise ValueError("The server gave no replication id to follow this replication by")
        async for pause in _pauses(interval, max_interval):
            if self._cancelled:
                return
            job = await self._job()
            if job is None:
                if self._listed:
                    return
            else:
                self._listed = True
                yield job.progress
            await asyncio.sleep(pause)

    async def wait(
        self, *, interval: float = FIRST_POLL_INTERVAL, max_interval: float = MAX_POLL_INTERVAL
    ) -> ReplicationProgress | None:
        """Polls as :meth:`progress` until a continuous replication has caught up (runs
        with no change pending); returns that progress (a one-shot one's result at once),
        or None if it was cancelled first. Bound it with ``asyncio.wait_for``."""
        async for progress in self.progress(interval=interval, max_interval=max_interval):
            if progress.caught_up or progress.finished:
                return progress
        return None

    async def _job(self) -> SchedulerJob | None:
        found = None
        # Read to the end: leaving the stream early would leave its response open.
        async for row in self._replicator._scheduler_jobs():
            if row.get("id") == self.id:
                found = SchedulerJob.from_row(row)
        return found


class ReplicationDocument:
    """A replication the server keeps, as a document of a replicator database.

    ``id`` is the document's id, ``replicator_db`` its database. Constructing it (see
    :meth:`Replications.create` and :meth:`Replications.document`) sends no request.
    """

    def __init__(
        self, replications: Replications, id: str, *, replicator_db: str = "_replicator"
    ) -> None:
        self._replications = replications
        self.id = id
        self.replicator_db = replicator_db

    def __repr__(self) -> str:
        return f"<ReplicationDocument {self.id!r} in {self.replicator_db!r}>"

    @property
    def _database(self) -> Database:
        return Database(self._replications._couchdb, self.replicator_db)

    async def fetch(self) -> JsonDict:
        """The document as the server holds it: GET /{replicator_db}/{docid}.

        It holds the credentials of its endpoints as they were given: keep it to yourself.
        Raises NotFoundError if it does not exist (cancelled).
        """
        document = await self._database.get(self.id)
        return dict(document._data)

    async def status(self) -> SchedulerDocument:
        """The scheduler's view: GET /_scheduler/docs/{replicator_db}/{docid}.

        Raises NotFoundError if the scheduler does not know the document (yet).
        """
        return await self._replications.status(self.id, replicator_db=self.replicator_db)

    async def progress(
        self, *, interval: float = FIRST_POLL_INTERVAL, max_interval: float = MAX_POLL_INTERVAL
    ) -> AsyncIterator[ReplicationProgress]:
        """Where the replication stands, once per poll, until it has completed.

        Each poll sends GET /_scheduler/docs/{replicator_db}/{docid}; while the scheduler
        does not know the document (just created, or a server without a scheduler), GET
        /{replicator_db}/{docid} instead, whose ``_replication_state`` the replicator
        writes (state None before it does). Polls are ``interval`` seconds apart at first,
        twice as long each time, at most ``max_interval``; each request has the client's
        time limits. A continuous replication never completes: break when you have seen
        enough (or use :meth:`wait`).

        Raises ReplicationError when it failed (state ``failed``), NotFoundError if the
        document is gone (cancelled). States ``crashing`` and ``error`` are yielded: the
        server retries those.
        """
        _check_intervals(interval, max_interval)
        async for pause in _pauses(interval, max_interval):
            progress = await self._poll()
            if progress.state == "failed":
                raise ReplicationError(
                    f"The replication of document '{self.id}' in '{self.replicator_db}' "
                    f"failed: {progress.error}",
                    progress,
                )
            yield progress
            if progress.state == "completed":
                return
            await asyncio.sleep(pause)

    async def wait(
        self, *, interval: float = FIRST_POLL_INTERVAL, max_interval: float = MAX_POLL_INTERVAL
    ) -> ReplicationProgress:
        """Polls as :meth:`progress` until the replication has completed, or, when it is
        continuous, caught up (runs with no change pending); returns the last progress.

        Raises what :meth:`progress` raises. A replication that keeps crashing (a
        missing source, refused credentials) is retried by the server, so this waits on:
        bound it with ``asyncio.wait_for``.
        """
        async for progress in self.progress(interval=interval, max_interval=max_interval):
            if progress.caught_up or progress.finished:
                return progress
        raise AssertionError("progress() ends only after a final state")  # pragma: no cover

    async def cancel(self) -> None:
        """Stops the replication by deleting its document: GET, then DELETE
        /{replicator_db}/{docid}?rev= (again if the replicator changed it in between).

        Raises NotFoundError if the document does not exist (cancelled already).
        """
        database = self._database
        for _ in range(_CANCEL_ATTEMPTS - 1):
            document = await database.get(self.id)
            try:
                await document.delete()
            except ConflictError:
                continue  # the replicator wrote its state into the document meanwhile
            return
        await (await database.get(self.id)).delete()

    async def _poll(self) -> ReplicationProgress:
        try:
            return (await self.status()).progress
        except NotFoundError:
            pass
        document = await self._database.get(self.id)
        return ReplicationProgress.from_replication_document(document._data)


async def _pauses(interval: float, max_interval: float) -> AsyncIterator[float]:
    """The pauses after each poll: ``interval``, doubled each time, at most ``max_interval``."""
    while True:
        yield interval
        interval = min(interval * 2, max_interval)


def _check_intervals(interval: float, max_interval: float) -> None:
    for name, value in (("interval", interval), ("max_interval", max_interval)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    if max_interval < interval:
        raise ValueError("max_interval must not be shorter than interval")


def _replication_document_id(doc_id: str) -> str:
    _paths.validate_document_id(doc_id)
    if doc_id.startswith(("_design/", "_local/")):
        raise ValueError(
            f"Invalid replication document id {doc_id!r}: the replicator ignores design "
            "and _local documents"
        )
    _paths.check_document_id(doc_id)
    return doc_id
