"""Bulk writes: many documents saved with POST /{db}/_bulk_docs, in batches.

Documents are collected in a context manager and sent on a clean exit, split into
batches by count and by bytes, a few batches at a time. Each result is matched to its
document by id (not by position), so every document ends in ``ok`` or ``error``.
"""

from __future__ import annotations

import asyncio
import warnings
from bisect import bisect_right
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import accumulate, count, repeat
from operator import add, attrgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _json, _paths, _snapshot
from ._answers import ARRAY_OF_OBJECTS
from ._bulk_loading import load_documents
from ._transport import JSON_CONTENT_TYPE
from ._write_confirmation import bulk_writes
from .cluster import check_quorum
from .document import Document
from .retry import AttemptLog, Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["BulkCreateOperation", "BulkOperation", "BulkUpdateOperation"]


_ID = attrgetter("id")
_new_document = Document._unchecked
"""Bound once: a class method looked up on its class is bound anew at every call."""

_Batch = tuple[list[Document], "list[bytes] | _snapshot.BatchState"]
"""The documents sent in one request, and the JSON of each (or the request body of new
documents encoded at once): their synced state once saved."""


class BulkOperation:
    """Collects documents; on a clean exit saves the changed ones with ``_bulk_docs``.

    ``batch_size`` and ``batch_bytes`` bound one request; ``concurrency`` bounds how many
    requests are in flight; ``w`` is the write quorum on a cluster (default: the client's
    :class:`~aiocouch.cluster.Quorum`, else the database's). After the exit, ``response``
    holds the server's items, ``ok`` the saved documents and ``error`` the refused ones,
    and ``accepted`` those of ``ok`` that fewer copies than ``w`` confirmed (their items
    carry ``"accepted": true``; the answer is 202); if the block raised, nothing is sent
    and all four stay None.
    """

    batch_size: int = 10_000
    batch_bytes: int = 16 * 1024 * 1024
    concurrency: int = 4

    def __init__(
        self,
        database: Database,
        *,
        batch_size: int | None = None,
        batch_bytes: int | None = None,
        concurrency: int | None = None,
        w: int | None = None,
    ) -> None:
        self._database = database
        self._w = check_quorum("w", w)
        self._docs: list[Document] = []
        self._ids: set[str] = set()
        self.response: list[JsonDict] | None = None
        self.ok: list[Document] | None = None
        self.error: list[Document] | None = None
        self.accepted: list[Document] | None = None
        if batch_size is not None:
            self.batch_size = _positive("batch_size", batch_size)
        if batch_bytes is not None:
            self.batch_bytes = _positive("batch_bytes", batch_bytes)
        if concurrency is not None:
            self.concurrency = _positive("concurrency", concurrency)

    def create(self, id: str, *, data: JsonDict | None = None) -> Document:
        """Adds a new local document ``id`` (ValueError if the id was added before)."""
        if (
            type(id) is str
            and id != ""
            and id[0] != "_"
            and id.isascii()
            and (data is None or type(data) is dict)
            and id not in self._ids
        ):
            # (the common case, which no check of Document() or append() refuses, checked
            # inline: bulk creation makes many)
            doc = _new_document(self._database, id, data)
            self._ids.add(id)
            self._docs.append(doc)
            return doc
        return self.append(Document(self._database, id, data=data))

    def append(self, doc: Document) -> Document:
        """Adds an existing document (ValueError if its id was added before).

        Raises BadRequestError for an id CouchDB refuses: it would fail the whole batch.
        """
        id = doc.id
        if not (type(id) is str and id != "" and id[0] != "_" and id.isascii()):
            _paths.check_document_id(id)
        if id in self._ids:
            raise ValueError(f"The document '{id}' is already part of this bulk operation")
        self._ids.add(id)
        self._docs.append(doc)
        return doc

    def _extend(self, docs: list[Document]) -> None:
        """Adds ``docs`` as :meth:`append` adds each, checked in one pass when all pass."""
        ids = [doc.id for doc in docs]
        unique = set(ids)
        if len(unique) == len(ids) and unique.isdisjoint(self._ids) and _plain_ids(ids):
            self._ids |= unique
            self._docs += docs
            return
        for doc in docs:
            self.append(doc)  # (the first refused id raises, as it would have one by one)

    def update(self, doc: Document) -> Document:
        """Deprecated alias of :meth:`append`."""
        warnings.warn("update() is deprecated, use append()", DeprecationWarning, stacklevel=2)
        return self.append(doc)

    @property
    def status(self) -> list[JsonDict] | None:
        """Deprecated alias of :attr:`response`."""
        warnings.warn("status is deprecated, use response", DeprecationWarning, stacklevel=2)
        return self.response

    async def __aiter__(self) -> AsyncIterator[Document]:
        for doc in self._docs:
            yield doc

    async def __aenter__(self) -> BulkOperation:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Unless the block raised: POST /{db}/_bulk_docs for the changed documents.

        Batches are serialised only when a request slot is free, so memory holds at most
        ``concurrency`` request bodies. If a request fails, no further batch is sent, the
        documents of unanswered batches go to ``error`` and the exception propagates.
        """
        if exc_type is not None:
            return
        self.response, self.ok, self.error, self.accepted = [], [], [], []
        batches = enumerate(self._batches())
        answered: dict[int, tuple[_Batch, list[JsonDict] | None]] = {}
        failures: list[BaseException] = []

        async def send_batches() -> None:
            for index, (batch, body) in batches:
                answered[index] = (batch, None)
                if failures:
                    continue
                try:
                    answered[index] = (batch, await self._post(body))
                except Exception as exc:
                    failures.append(exc)

        await asyncio.gather(*(send_batches() for _ in range(self.concurrency)))
        for index in sorted(answered):
            batch, items = answered[index]
            self._record(batch, items or [])
        if failures:
            raise failures[0]

    def _batches(self) -> Iterator[tuple[_Batch, bytes]]:
        """The changed documents in batches with their request bodies, built lazily.

        A batch takes documents in order while it holds fewer than ``batch_size`` and the
        next one's JSON fits into ``batch_bytes`` (a larger one goes alone); the changed
        documents of each ``batch_size`` of them are found and encoded at once, and the run
        of them that fits is taken as one slice. ``batch_size`` documents none of which was
        ever synced (a bulk creation's) are encoded in one piece, as their request body,
        when that fits.
        """
        docs: list[Document] = []
        encoded: list[bytes] = []
        size = 0
        batch_size, batch_bytes = self.batch_size, self.batch_bytes
        every = self._docs
        for start in range(0, len(every), batch_size):
            chunk = every[start : start + batch_size]
            if not docs:
                # (new documents only, as a bulk creation has them: one encoding of all,
                # which is the request body when it fits)
                body = Document._new_body(chunk)
                if body is not None and len(body) - _WRAPPING <= batch_bytes:
                    yield (chunk, _snapshot.BatchState(body)), body
                    continue
            # (each body is also the synced state its document takes once saved)
            dirty, bodies = Document._dirty_of(chunk)
            # ends[j]: the bytes of bodies[:j + 1], each with its separating comma
            ends = list(accumulate(map(add, map(len, bodies), repeat(1))))
            taken = 0
            while taken < len(dirty):
                before = ends[taken - 1] if taken else 0
                # (bodies[j] fits while size + ends[j] - before - 1 <= batch_bytes)
                fit = bisect_right(ends, batch_bytes - size + before + 1, taken) - taken
                fit = min(fit, batch_size - len(docs))
                if fit <= 0:
                    if docs:
                        yield (docs, encoded), _request_body(encoded)
                        docs, encoded, size = [], [], 0
                        continue
                    fit = 1
                end = taken + fit
                docs += dirty[taken:end]
                encoded += bodies[taken:end]
                size += ends[end - 1] - before
                taken = end
        if docs:
            yield (docs, encoded), _request_body(encoded)

    async def _post(self, body: bytes) -> list[JsonDict]:
        """POST /{db}/_bulk_docs with ``body``; repeated after a lost answer.

        Every document carries its ``_id``, so a repeat cannot write one twice: a
        document the lost attempt wrote comes back as a conflict, which becomes the ok it
        was if the server holds what was sent (see :mod:`._write_confirmation`).
        """
        database = self._database
        attempt_log = AttemptLog()
        _, items = await database._remote._request(
            "POST",
            f"{database.endpoint}/_bulk_docs",
            params=database._remote._quorum._write(self._w),
            data=body,
            headers=JSON_CONTENT_TYPE,
            subject=f"_bulk_docs in database '{database.id}'",
            expect=ARRAY_OF_OBJECTS,
            repetition=Repetition.CHECKED,
            attempt_log=attempt_log,
        )
        if attempt_log.uncertain:
            sent = _json.loads(body)["docs"]
            return await bulk_writes(database._remote, database.id, sent, list(items))
        return list(items)

    def _record(self, batch: _Batch, items: list[JsonDict]) -> None:
        """Matches the server's items to the batch's documents by id."""
        assert self.response is not None and self.ok is not None and self.error is not None
        assert self.accepted is not None
        docs, states = batch
        self.response.extend(items)
        ids = list(map(_ID, docs))
        in_order = list(map(dict.get, items, repeat("id"))) == ids
        results = items if in_order else _match_by_id(ids, items)
        ok, accepted, error = self.ok, self.accepted, self.error
        # (the state of each document: its own JSON, or its place in the shared body)
        sources: Iterable[bytes | _snapshot.BatchState]
        keys: Iterable[int | None]
        if isinstance(states, _snapshot.BatchState):
            sources, keys = repeat(states), count()
        else:
            sources, keys = states, repeat(None)
        for doc, source, key, result in zip(docs, sources, keys, results):
            if result is not None and "error" not in result and "rev" in result:
                doc._saved(source, result["rev"], key)
                ok.append(doc)
                if result.get("accepted") is True:
                    accepted.append(doc)
            else:
                error.append(doc)


_WRAPPING = len(b'{"docs":[]}')
"""The bytes of a request body around its documents (their commas are counted with them)."""


def _request_body(encoded: list[bytes]) -> bytes:
    """``{"docs":[...]}`` holding the documents ``encoded`` (at least one), copied once:
    the wrapper goes onto the first and the last, not around the joined megabytes."""
    if len(encoded) == 1:
        return b'{"docs":[' + encoded[0] + b"]}"
    return b",".join([b'{"docs":[' + encoded[0], *encoded[1:-1], encoded[-1] + b"]}"])


def _match_by_id(ids: list[str], items: list[JsonDict]) -> list[JsonDict | None]:
    """The item for each of the documents ``ids``, by id (in order for repeated ids), or
    None."""
    by_id = dict(zip(map(dict.get, items, repeat("id")), items))
    if len(by_id) == len(items) == len(ids):
        return list(map(by_id.get, ids))
    waiting: defaultdict[str, deque[JsonDict]] = defaultdict(deque)
    for item in items:
        waiting[item.get("id", "")].append(item)
    results: list[JsonDict | None] = []
    for id in ids:
        queue = waiting.get(id)
        results.append(queue.popleft() if queue else None)
    return results


class BulkCreateOperation(BulkOperation):
    """A bulk operation that starts with new empty documents for ``ids`` (no request)."""

    def __init__(self, database: Database, ids: list[str] | None = None, **options: Any) -> None:
        super().__init__(database, **options)
        self._initial_ids = list(ids or [])

    async def __aenter__(self) -> BulkCreateOperation:
        for id in self._initial_ids:
            self.create(id)
        return self


class BulkUpdateOperation(BulkOperation):
    """A bulk operation that starts with the documents ``ids``, loaded on enter.

    On enter: POST /{db}/_bulk_get (none for no ids; POST /{db}/_all_docs?include_docs=true
    when an id repeats or starts with ``_``, as ``db.docs(ids)``); missing or deleted ids
    raise NotFoundError, unless ``create=True`` makes them new documents.
    """

    def __init__(
        self,
        database: Database,
        ids: list[str] | None = None,
        *,
        create: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(database, **options)
        self._initial_ids = list(ids or [])
        self._create = create

    async def __aenter__(self) -> BulkUpdateOperation:
        ids = self._initial_ids
        if ids and set(map(type, ids)) == {str} and _plain_ids(ids) and len(set(ids)) == len(ids):
            # (ids no check refuses, each once: _extend would find nothing to refuse)
            self._extend(await load_documents(self._database, ids, create=self._create))
        else:
            documents = self._database.docs(ids, create=self._create)
            self._extend([doc async for doc in documents])
        return self


def _plain_ids(ids: list[str]) -> bool:
    """Whether every one of ``ids`` (all str) is non-empty, ASCII and starts with no
    ``_``: no check refuses those. One test of their joined text; when it fails (also for
    an id holding a line break next to ``_`` or another one), each id gets the full check."""
    joined = "\n".join(ids)
    return (
        joined.isascii()
        and joined[:1] not in ("", "_", "\n")
        and not joined.endswith("\n")
        and "\n\n" not in joined
        and "\n_" not in joined
    )


def _positive(name: str, value: int) -> int:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
