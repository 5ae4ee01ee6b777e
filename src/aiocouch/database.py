"""Databases: documents, queries, bulk operations, security, the changes feed,
partitions and maintenance."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import conflicts
from .bulk import BulkCreateOperation, BulkUpdateOperation
from .changes import ChangesFeed
from .cluster import check_quorum
from .design_document import DesignDocsView, DesignDocument
from .document import Document, SecurityDocument
from .exception import ConflictError, NotFoundError
from .follower import ChangesFollower
from .local_document import LocalDocsView, LocalDocument
from .maintenance import DatabaseMaintenance
from .mango import Mango
from .partition import Partition
from .remote import RemoteDatabase
from .request import FindRequest
from .revisions import RevisionResult, Revisions, RevsDiff
from .typing import JsonDict
from .view import AllDocsView, View

if TYPE_CHECKING:
    from .couchdb import CouchDB

__all__ = ["Database"]


class Database(DatabaseMaintenance, RemoteDatabase):
    """The database ``id`` on the server of ``couchdb``; constructing it sends no request.

    Its maintenance methods (compaction, purge, limits, shards) are those of
    :class:`~aiocouch.maintenance.DatabaseMaintenance`.
    """

    def __init__(self, couchdb: CouchDB, id: str) -> None:
        super().__init__(couchdb._server, id)
        self._couchdb = couchdb

    def __repr__(self) -> str:
        return f"<Database {self.id!r}>"

    async def create(
        self, id: str, *, exists_ok: bool = False, data: JsonDict | None = None
    ) -> Document:
        """A new local document ``id`` holding ``data``; nothing is written until save().

        Without ``exists_ok``: HEAD /{db}/{docid}, and ConflictError if it exists.
        With ``exists_ok``: GET /{db}/{docid}; an existing document's data replaces ``data``.
        """
        document = Document(self, id, data=data)
        if exists_ok:
            with contextlib.suppress(NotFoundError):
                await document.fetch(discard_changes=True)
        elif await document._exists():
            raise ConflictError(
                f"The document '{id}' does already exist in the database '{self.id}'"
            )
        return document

    async def post(self, data: JsonDict, *, w: int | None = None) -> Document:
        """Saves ``data`` as a new document under a new id: POST /{db}[?w=] (``w``: as for
        :meth:`Document.save`).

        The id, a random UUID (32 hex digits; ``data["_id"]`` if given), is made here,
        before the request, so the request can be repeated after a lost answer without
        writing a second document. ``data`` itself is not changed. Returns the saved
        document (``rev`` set, no unsaved changes). Raises TypeError if ``data`` is not a
        dict, ValueError if it holds a ``_rev`` (update with ``save()``), ConflictError if
        a document with the given ``_id`` exists.
        """
        if not isinstance(data, dict):
            raise TypeError(f"The data of a document must be a dict, not {type(data).__name__}")
        if "_rev" in data:
            raise ValueError("post() writes new documents: data must not hold a _rev")
        check_quorum("w", w)
        id = data["_id"] if "_id" in data else uuid.uuid4().hex
        document = Document(self, id, data=dict(data))
        change = document._encode_if_dirty()
        assert change is not None  # a document never saved is always a change
        body, state = change
        _, result = await self._post_document(id, body, w)
        document._saved(state, result["rev"])
        return document

    async def delete(self) -> None:
        """Deletes the database: DELETE /{db}. Raises NotFoundError if it does not exist."""
        await self._delete()

    async def get(
        self,
        id: str,
        *,
        default: JsonDict | None = None,
        rev: str | None = None,
        r: int | None = None,
    ) -> Document:
        """The document ``id``: GET /{db}/{docid}[?rev=][&r=] (``r``: as for
        :meth:`Document.fetch`).

        Raises NotFoundError, unless ``default`` is given: then an unsaved document
        holding ``default`` is returned.
        """
        document = Document(self, id, data=None if default is None else dict(default))
        # (Document.fetch(discard_changes=True, rev=rev, r=r), inlined: one coroutine and
        # its parameters' dict less per read)
        params = self._remote._quorum._read(r)  # (a new dict: checks r)
        if rev:
            params["rev"] = rev
        try:
            response, data = await document._get_answer(params)
        except NotFoundError:
            if default is None:
                raise
            return document
        document._update_cache(data, response._body)
        return document

    def __getitem__(self, id: str) -> Awaitable[Document]:
        """``await db[id]``: the same as ``await db.get(id)``."""
        return self.get(id)

    def docs(
        self,
        ids: list[str] | None = None,
        *,
        create: bool = False,
        prefix: str | None = None,
        include_ddocs: bool = False,
        **params: Any,
    ) -> AsyncIterator[Document]:
        """The documents, streamed: GET /{db}/_all_docs?include_docs=true, or POST ``ids``.

        ``ids=[]`` sends nothing. Design documents are skipped unless ``include_ddocs``.
        Missing ids raise NotFoundError mid-iteration, unless ``create=True``.
        """
        if ids is not None and len(ids) == 0:
            return _no_documents()
        return self.all_docs.docs(
            ids, create=create, prefix=prefix, include_ddocs=include_ddocs, **params
        )

    def values(self, **params: Any) -> AsyncIterator[Document]:
        """Every document, streamed: GET /{db}/_all_docs?include_docs=true&params."""
        return self.all_docs.docs(**params)

    def akeys(self, **params: Any) -> AsyncIterator[str]:
        """The document ids, streamed: GET /{db}/_all_docs (POST with ``ids=``)."""
        return self.all_docs.ids(**params)

    @property
    def all_docs(self) -> AllDocsView:
        """The ``_all_docs`` view (no request)."""
        return AllDocsView(self)

    @property
    def design_docs(self) -> DesignDocsView:
        """The ``_design_docs`` view: the design documents (no request)."""
        return DesignDocsView(self)

    @property
    def local_docs(self) -> LocalDocsView:
        """The ``_local_docs`` view: the local documents (no request)."""
        return LocalDocsView(self)

    def local(self, name: str, *, data: JsonDict | None = None) -> LocalDocument:
        """The local document ``_local/{name}``, holding ``data`` until fetched (no request)."""
        return LocalDocument(self, name, data=data)

    def bulk_get(
        self, docs: Iterable[str | Mapping[str, Any]], *, revs: bool = False, **params: Any
    ) -> AsyncIterator[RevisionResult]:
        """Documents or revisions, streamed: POST /{db}/_bulk_get (see
        :meth:`Revisions.bulk_get <aiocouch.revisions.Revisions.bulk_get>`)."""
        return Revisions(self).bulk_get(docs, revs=revs, **params)

    async def revs_diff(self, revs: Mapping[str, Iterable[str]]) -> dict[str, RevsDiff]:
        """The revisions this database lacks: POST /{db}/_revs_diff (see
        :meth:`Revisions.revs_diff <aiocouch.revisions.Revisions.revs_diff>`)."""
        return await Revisions(self).revs_diff(revs)

    async def missing_revs(self, revs: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        """The revisions this database lacks: POST /{db}/_missing_revs (see
        :meth:`Revisions.missing_revs <aiocouch.revisions.Revisions.missing_revs>`)."""
        return await Revisions(self).missing_revs(revs)

    async def save_revision(self, doc: Mapping[str, Any]) -> JsonDict:
        """Stores a revision as it is: PUT /{db}/{docid}?new_edits=false (see
        :meth:`Revisions.save_revision <aiocouch.revisions.Revisions.save_revision>`)."""
        return await Revisions(self).save_revision(doc)

    async def save_revisions(self, docs: Iterable[Mapping[str, Any]]) -> list[JsonDict]:
        """Stores revisions as they are: POST /{db}/_bulk_docs with new_edits false (see
        :meth:`Revisions.save_revisions <aiocouch.revisions.Revisions.save_revisions>`)."""
        return await Revisions(self).save_revisions(docs)

    async def edit(
        self,
        id: str,
        edit: conflicts.EditFunction,
        *,
        create: bool = True,
        attempts: int = conflicts.DEFAULT_ATTEMPTS,
        w: int | None = None,
    ) -> Document:
        """Reads, edits with ``edit`` and saves document ``id``, again after a conflict: GET,
        PUT (see :func:`aiocouch.conflicts.edit`)."""
        return await conflicts.edit(self, id, edit, create=create, attempts=attempts, w=w)

    async def edit_many(
        self,
        ids: Iterable[str],
        edit: conflicts.EditFunction,
        *,
        create: bool = True,
        attempts: int = conflicts.DEFAULT_ATTEMPTS,
        w: int | None = None,
    ) -> conflicts.EditResults:
        """Reads, edits with ``edit`` and saves many documents, again the conflicted ones:
        POST _all_docs, POST _bulk_docs (see :func:`aiocouch.conflicts.edit_many`)."""
        return await conflicts.edit_many(self, ids, edit, create=create, attempts=attempts, w=w)

    async def conflicting_revisions(self, id: str) -> conflicts.ConflictingRevisions:
        """The winning and conflicting revisions of document ``id``, with bodies: GET
        ?conflicts=true, ?open_revs=[...] (see :func:`aiocouch.conflicts.conflicting_revisions`)."""
        return await conflicts.conflicting_revisions(self, id)

    async def resolve_conflicts(
        self,
        id: str,
        choose: conflicts.ChooseFunction,
        *,
        attempts: int = conflicts.DEFAULT_ATTEMPTS,
    ) -> conflicts.Resolution:
        """Writes the body ``choose`` picks and deletes the other leaves of document ``id``:
        POST _bulk_docs (see :func:`aiocouch.conflicts.resolve_conflicts`)."""
        return await conflicts.resolve_conflicts(self, id, choose, attempts=attempts)

    def resolve_all_conflicts(
        self,
        choose: conflicts.ChooseFunction,
        *,
        view: View | None = None,
        include_ddocs: bool = False,
        attempts: int = conflicts.DEFAULT_ATTEMPTS,
    ) -> AsyncIterator[conflicts.Resolution]:
        """Resolves every conflicted document, streamed: GET _all_docs?conflicts=true or
        ``view`` (see :func:`aiocouch.conflicts.resolve_all_conflicts`)."""
        return conflicts.resolve_all_conflicts(
            self, choose, view=view, include_ddocs=include_ddocs, attempts=attempts
        )

    def view(self, design_doc: str, view: str) -> View:
        """The view ``view`` of ``_design/{design_doc}`` (no request)."""
        return View(self, design_doc, view)

    def partition(self, name: str) -> Partition:
        """The partition ``name`` of this partitioned database (no request).

        Raises TypeError or BadRequestError for an impossible name; see :mod:`aiocouch.partition`.
        """
        return Partition(self, name)

    async def design_doc(self, id: str, *, exists_ok: bool = False) -> DesignDocument:
        """The design document ``_design/{id}``.

        Without ``exists_ok``: HEAD, and ConflictError if it exists. With ``exists_ok``:
        GET, keeping the server's copy if there is one.
        """
        document = DesignDocument(self, id)
        if exists_ok:
            with contextlib.suppress(NotFoundError):
                await document.fetch(discard_changes=True)
        elif await document._exists():
            raise ConflictError(
                f"The design document '{id}' does already exist in the database '{self.id}'"
            )
        return document

    def find(
        self, selector: Any, *, limit: int | None = None, **params: Any
    ) -> AsyncIterator[Document]:
        """Documents matching a Mango ``selector``: POST /{db}/_find, page by page.

        Other ``params`` go into the request body as given (``r=``: the copies each
        document is read from on a cluster; default: the client's
        :class:`~aiocouch.cluster.Quorum`). Raises ValueError for ``fields=`` (documents
        are always whole) on iteration.
        """
        return FindRequest(self, selector, limit=limit, **params).__aiter__()

    async def index(self, index: JsonDict, **kwargs: Any) -> JsonDict:
        """Creates a Mango index: POST /{db}/_index with ``{"index": index, **kwargs}``."""
        return await self._index(index, **kwargs)

    @property
    def mango(self) -> Mango:
        """Mango queries as plain JSON objects, query plans, indexes (no request)."""
        return Mango(self)

    def update_docs(
        self,
        ids: list[str] | None = None,
        *,
        create: bool = False,
        batch_size: int | None = None,
        batch_bytes: int | None = None,
        concurrency: int | None = None,
        w: int | None = None,
    ) -> BulkUpdateOperation:
        """A bulk update of the documents ``ids`` (loaded on enter, saved on exit).

        On enter it sends POST /{db}/_bulk_get (the winning revision of each id), on exit
        POST /{db}/_bulk_docs with the documents that changed: see BulkUpdateOperation.
        ``batch_size``, ``batch_bytes``, ``concurrency`` and ``w`` go to the operation.
        """
        return BulkUpdateOperation(
            self,
            ids if ids is not None else [],
            create=create,
            batch_size=batch_size,
            batch_bytes=batch_bytes,
            concurrency=concurrency,
            w=w,
        )

    def create_docs(
        self,
        ids: list[str] | None = None,
        *,
        batch_size: int | None = None,
        batch_bytes: int | None = None,
        concurrency: int | None = None,
        w: int | None = None,
    ) -> BulkCreateOperation:
        """A bulk creation of new documents (saved in batches on exit).

        ``batch_size``, ``batch_bytes``, ``concurrency`` and ``w`` go to the operation.
        """
        return BulkCreateOperation(
            self,
            ids if ids is not None else [],
            batch_size=batch_size,
            batch_bytes=batch_bytes,
            concurrency=concurrency,
            w=w,
        )

    update_docs.__returns_acontextmanager__ = True  # type: ignore[attr-defined]
    create_docs.__returns_acontextmanager__ = True  # type: ignore[attr-defined]

    async def security(self) -> SecurityDocument:
        """The security object: GET /{db}/_security."""
        document = SecurityDocument(self)
        await document.fetch(discard_changes=True)
        return document

    async def info(self) -> JsonDict:
        """The database's information: GET /{db}."""
        return await self._get()

    def changes(self, *, last_event_id: str | None = None, **params: Any) -> ChangesFeed:
        """The changes feed: GET /{db}/_changes?params, one event per change.

        ``feed="continuous"`` streams until the server ends the response (``heartbeat``
        defaults to true); otherwise one response is read row by row. After the
        iteration, ``last_seq`` and ``pending`` of the returned feed hold the server's
        values.
        """
        return ChangesFeed(self, last_event_id=last_event_id, **params)

    def follow(
        self,
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
        **params: Any,
    ) -> ChangesFollower:
        """A follower of the changes, through dropped connections, stalls and restarts.

        Sends GET /{db}/_changes?feed=continuous&heartbeat=...&since=... (``feed=
        "longpoll"``: one such request per batch), again after every break, ``since``
        the last change read. ``since``: a sequence, ``"now"`` (fixed on start with GET
        /{db}/_changes?since=now), or None for every change. Filters, one at a time:
        ``doc_ids`` (POST ?filter=_doc_ids with ``{"doc_ids": [...]}``), ``selector``
        (POST ?filter=_selector with ``{"selector": ...}``), ``view="ddoc/view"``
        (?filter=_view&view=...), ``filter="ddoc/filter"`` (a design document's filter;
        its own query parameters go in ``params``). ``heartbeat``: seconds between the
        server's keep-alive newlines; a silence of 3 heartbeats counts as a dropped
        connection. Other ``params`` (``style``, ``conflicts``...) are sent as given.

        Raises ValueError or TypeError for options that cannot make a follower, before
        any request; see :class:`~aiocouch.follower.ChangesFollower` for what it raises
        while it runs.
        """
        return ChangesFollower(
            self,
            since=since,
            feed=feed,
            doc_ids=doc_ids,
            selector=selector,
            filter=filter,
            view=view,
            include_docs=include_docs,
            heartbeat=heartbeat,
            max_retry_delay=max_retry_delay,
            error_tolerance=error_tolerance,
            params=params,
        )


async def _no_documents() -> AsyncIterator[Document]:
    """An async iterator that yields nothing (and sends nothing)."""
    nothing: tuple[Document, ...] = ()
    for document in nothing:
        yield document
