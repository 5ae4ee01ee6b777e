"""Database maintenance: compaction, view cleanup, revision limits, purge and shards.

:class:`DatabaseMaintenance` holds these methods of :class:`~aiocouch.Database` (it is
one of its base classes): ``await db.compact(wait=True)``, ``await db.purge({id: [rev]})``,
``await db.shards()``... They need a server admin (or, for some, a database admin);
CouchDB answers others with 401 or 403 (UnauthorizedError, ForbiddenError).

Compaction is asynchronous: ``POST /{db}/_compact`` is answered at once (202) while the
work goes on. :meth:`DatabaseMaintenance.wait_for_compaction` polls until it is done,
within a time limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypedDict, cast

from . import _paths
from ._answers import is_strings
from ._remote_database import RemoteDatabase
from .exception import TimeLimitError

__all__ = [
    "DEFAULT_COMPACTION_TIMEOUT",
    "DatabaseMaintenance",
    "DocumentShard",
    "PurgeResult",
    "PurgedInfo",
]

DEFAULT_COMPACTION_TIMEOUT = 300.0
"""Seconds :meth:`DatabaseMaintenance.wait_for_compaction` waits by default."""

_FIRST_POLL_PAUSE = 0.05
_LONGEST_POLL_PAUSE = 1.0


class PurgeResult(TypedDict):
    """The answer of ``POST /{db}/_purge``."""

    purge_seq: Any
    """CouchDB 3 answers null (each shard keeps its own purge sequence)."""
    purged: dict[str, list[str]]
    """For each id asked for, the revisions that were purged (none for an unknown one)."""


class PurgedInfo(TypedDict):
    """One purge request that the database remembers (``GET /{db}/_purged_infos``)."""

    id: str
    revs: list[str]


class DocumentShard(TypedDict):
    """Where a document lives (``GET /{db}/_shards/{docid}``)."""

    range: str
    """The hash range of the shard, such as ``"00000000-7fffffff"``."""
    nodes: list[str]
    """The nodes holding a copy of that shard, such as ``["couchdb@127.0.0.1"]``."""


class DatabaseMaintenance(RemoteDatabase):
    """The maintenance methods of a database (a base class of :class:`~aiocouch.Database`)."""

    async def compact(
        self, *, wait: bool = False, timeout: float = DEFAULT_COMPACTION_TIMEOUT
    ) -> None:
        """Compacts the database file: POST /{db}/_compact (answered 202 at once).

        With ``wait``, then polls GET /{db} until the compaction is done (see
        :meth:`wait_for_compaction`; ``timeout`` is its time limit), first after 50 ms, the
        time CouchDB needs to start it. Raises ValueError for a ``timeout`` that is not a
        positive number (before any request), NotFoundError if the database does not
        exist, TimeLimitError if the compaction outlasts ``timeout``.
        """
        _check_timeout(timeout)
        await self._compact()
        if wait:
            await self._wait_for_compaction(None, timeout, _FIRST_POLL_PAUSE)

    async def compact_views(
        self, design_doc: str, *, wait: bool = False, timeout: float = DEFAULT_COMPACTION_TIMEOUT
    ) -> None:
        """Compacts the view index of ``_design/{design_doc}``: POST /{db}/_compact/{ddoc}.

        ``design_doc`` is the name without ``_design/``. With ``wait``, then polls GET
        /{db}/_design/{ddoc}/_info until the compaction is done (see
        :meth:`wait_for_compaction`), first after 50 ms. Raises ValueError or TypeError
        for a name that is not a non-empty str or a bad ``timeout`` (before any request),
        NotFoundError if the design document does not exist, TimeLimitError if the
        compaction outlasts ``timeout``.
        """
        _check_design_doc(design_doc)
        _check_timeout(timeout)
        await self._compact(design_doc)
        if wait:
            await self._wait_for_compaction(design_doc, timeout, _FIRST_POLL_PAUSE)

    async def wait_for_compaction(
        self, design_doc: str | None = None, *, timeout: float = DEFAULT_COMPACTION_TIMEOUT
    ) -> None:
        """Waits until no compaction of the database (or of ``design_doc``'s views) runs.

        Polls GET /{db} (GET /{db}/_design/{ddoc}/_info for a design document) until its
        ``compact_running`` is false, at once and then at growing intervals (50 ms to 1 s).
        A compaction asked for a moment ago may not show as running yet (CouchDB starts it
        on every shard after answering): :meth:`compact` with ``wait`` polls first after
        50 ms. A server that reports no ``compact_running``
        (pouchdb-server) is taken as having none running. Raises ValueError for a
        ``timeout`` that is not a positive number (before any request), TimeLimitError
        (an ``asyncio.TimeoutError``) once ``timeout`` seconds have passed.
        """
        if design_doc is not None:
            _check_design_doc(design_doc)
        _check_timeout(timeout)
        await self._wait_for_compaction(design_doc, timeout, 0.0)

    async def _wait_for_compaction(
        self, design_doc: str | None, timeout: float, first_pause: float
    ) -> None:
        what = "the database" if design_doc is None else f"the views of '{design_doc}'"
        try:
            await asyncio.wait_for(self._compaction_ended(design_doc, first_pause), timeout)
        except TimeLimitError:
            raise  # a poll's own time limit, not the wait's
        except asyncio.TimeoutError:
            raise TimeLimitError(
                f"The compaction of {what} in database '{self.id}' was still running after "
                f"{timeout} s"
            ) from None

    async def _compaction_ended(self, design_doc: str | None, first_pause: float) -> None:
        await asyncio.sleep(first_pause)
        pause = _FIRST_POLL_PAUSE
        while True:
            if design_doc is None:
                info = await self._get()
            else:
                info = (await self._design_info(design_doc))["view_index"]
            if not info.get("compact_running"):
                return
            await asyncio.sleep(pause)
            pause = min(2 * pause, _LONGEST_POLL_PAUSE)

    async def view_cleanup(self) -> None:
        """Deletes the index files no design document uses any more: POST /{db}/_view_cleanup.

        CouchDB answers 202 and cleans up in the background.
        """
        await self._command("/_view_cleanup")

    async def revs_limit(self) -> int:
        """How many revisions of a document the database remembers: GET /{db}/_revs_limit.

        CouchDB's default is 1000. Raises NotFoundError if the database does not exist.
        """
        return await self._get_limit("_revs_limit")

    async def set_revs_limit(self, limit: int) -> None:
        """Sets how many revisions of a document are remembered: PUT /{db}/_revs_limit.

        Raises TypeError or ValueError for a ``limit`` that is not a positive int (before
        any request).
        """
        await self._put_limit("_revs_limit", _check_count("A limit", limit))

    async def purged_infos_limit(self) -> int:
        """How many purge requests the database remembers: GET /{db}/_purged_infos_limit.

        CouchDB's default is 1000. Raises NotFoundError if the database does not exist.
        """
        return await self._get_limit("_purged_infos_limit")

    async def set_purged_infos_limit(self, limit: int) -> None:
        """Sets how many purge requests are remembered: PUT /{db}/_purged_infos_limit.

        Raises TypeError or ValueError for a ``limit`` that is not a positive int (before
        any request).
        """
        await self._put_limit("_purged_infos_limit", _check_count("A limit", limit))

    async def purged_infos(self) -> AsyncIterator[PurgedInfo]:
        """The purge requests the database remembers, streamed: GET /{db}/_purged_infos.

        They come in no promised order. An entry that is not ``{"id": str, "revs":
        [str, ...]}`` raises InvalidResponseError.
        """
        stream = self._purged_infos()
        async for batch in stream.batches():
            for info, _ in batch:
                if type(info.get("id")) is not str or not is_strings(info.get("revs")):
                    raise stream.invalid(ValueError(f"{info!r} is not a purged document"))
                yield cast(PurgedInfo, info)

    async def purge(
        self, revisions: Mapping[str, Sequence[str]], *, w: int | None = None
    ) -> PurgeResult:
        """Removes revisions of documents for good, as if never written: POST /{db}/_purge.

        ``revisions`` maps document ids to the revisions to purge (``{"id":
        ["1-abc"]}``); an empty mapping sends nothing. ``w``: how many copies of each
        shard must have purged before CouchDB answers (default: a majority). Purges are
        not replicated. The request is not repeated after a lost answer (a repeat would
        be recorded as a second purge). CouchDB refuses more than 100 ids or 1000
        revisions per request (``[purge] max_document_id_number``,
        ``max_revisions_number``) with BadRequestError. Raises TypeError or ValueError
        for ``revisions`` that are not ids mapped to lists of revisions, or a ``w`` that
        is not a positive int (before any request).
        """
        body = _check_revisions(revisions)
        if w is not None:
            _check_count("w", w)
        if not body:
            return {"purge_seq": None, "purged": {}}
        return cast(PurgeResult, await self._purge_revisions(body, w))

    async def shards(self) -> dict[str, list[str]]:
        """The shard ranges of the database and the nodes holding each: GET /{db}/_shards.

        For example ``{"00000000-7fffffff": ["couchdb@127.0.0.1"], ...}``.
        """
        shard_map: dict[str, list[str]] = (await self._shards())["shards"]
        return shard_map

    async def document_shard(self, doc_id: str) -> DocumentShard:
        """The shard that holds (or would hold) ``doc_id``: GET /{db}/_shards/{docid}.

        Raises TypeError or ValueError for an id that is not a non-empty str (before any
        request).
        """
        _paths.validate_document_id(doc_id)
        return cast(DocumentShard, await self._document_shard(doc_id))

    async def sync_shards(self) -> None:
        """Makes the copies of every shard exchange what they lack: POST /{db}/_sync_shards.

        CouchDB answers 202 and synchronises in the background.
        """
        await self._command("/_sync_shards")

    async def ensure_full_commit(self) -> None:
        """Asks that every write be on disk: POST /{db}/_ensure_full_commit.

        CouchDB 3 commits every write before answering it, so this only confirms that
        the database is there (NotFoundError otherwise).
        """
        await self._command("/_ensure_full_commit")


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")


def _check_design_doc(design_doc: str) -> None:
    if not isinstance(design_doc, str):
        raise TypeError(f"A design document name must be a str, not {type(design_doc).__name__}")
    if not design_doc:
        raise ValueError("A design document name must not be empty")


def _check_count(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} must be at least 1, not {value}")
    return value


def _check_revisions(revisions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """``revisions`` as the body of a purge; TypeError or ValueError for what is none."""
    if not isinstance(revisions, Mapping):
        raise TypeError(
            f"revisions must map document ids to revisions, not {type(revisions).__name__}"
        )
    body: dict[str, list[str]] = {}
    for doc_id, revs in revisions.items():
        _paths.validate_document_id(doc_id)
        # A str is a sequence too: "1-abc" would become ["1", "-", "a", ...].
        if isinstance(revs, (str, bytes)) or not isinstance(revs, Sequence):
            raise TypeError(f"The revisions of {doc_id!r} must be a list of str, not {revs!r}")
        if not revs or not all(isinstance(rev, str) and rev for rev in revs):
            raise ValueError(f"The revisions of {doc_id!r} must be non-empty strs: {revs!r}")
        body[doc_id] = list(revs)
    return body
