"""Writing a backup: every document's leaf revisions, with history and attachment bytes.

The documents are listed by ``_changes?style=all_docs&include_docs=true&attachments=
true``, which names each document once with all its leaves (deleted ones included) and
brings the winning revision's body with its attachments' bytes, a page (a batch) at a
time. A document whose only leaf is that body, a first revision (``1-h``), is written
from the feed as it is: the history of ``1-h`` is ``{"start": 1, "ids": ["h"]}``, nothing
else. Those are most documents of most databases, and the feed costs the server about
what a plain ``_all_docs?include_docs=true`` read does. The leaves of the other documents
(edited, deleted or conflicted) are read with ``_bulk_get?revs=true&attachments=true``,
each leaf by its revision: one request per batch, and one more for each further leaf of
the batch's most conflicted document (a request names each document once: some servers
merge the requests for one id, answering them out of their order). A leaf gone since
the feed listed it (a document changed, then compacted) has its document read again
with ``GET /{db}/{id}?open_revs=all&revs=true&attachments=true``. A document changed
after the feed listed it comes again later in the feed, so its newest state is written
too.

The next page is asked for as soon as a page has arrived, before it is decoded (its
end says where the next one starts), so the server builds the next page while this one
is decoded, read and written; several batches are read at once and written in feed
order, so memory holds a few batches at most, whatever the size of the database. A
checkpoint (the file's length and the feed's ``seq``) follows the batches written, once
the file is on disk: at most every second, and when the backup stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable

from . import _backup_checkpoint as checkpoints
from . import _backup_format as backup_format
from . import _json
from ._answers import describe_problem, kind_of
from .document import Document
from .exception import InvalidResponseError, NotFoundError
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["BackupCounts", "write_backup"]

_OPEN_REVS_AT_ONCE = 8
"""The open_revs requests one batch sends at once (for documents changed since the feed
listed them)."""

_CHECKPOINT_INTERVAL = 1.0
"""Seconds between checkpoints: each costs two fsyncs, which would otherwise take a
good part of the time of a large backup."""

Report = Callable[[int, "int | None"], None]
"""Called after each batch with the documents written so far and the expected total."""


@dataclass
class BackupCounts:
    """What a backup wrote, counted over all its runs."""

    backup_id: str
    documents: int = 0
    revisions: int = 0
    bytes: int = 0
    resumed: bool = False


@dataclass(frozen=True)
class _Batch:
    rows: list[JsonDict]
    last_seq: Any


async def write_backup(
    database: Database,
    path: Path,
    *,
    compress: bool | None,
    batch_size: int,
    in_flight: int,
    resume: bool,
    overwrite: bool,
    report: Report,
) -> BackupCounts:
    """Backs ``database`` up into ``path`` (see :func:`aiocouch.backup.backup`)."""
    checkpoint_path = checkpoints.backup_checkpoint_path(path)
    checkpoint = checkpoints.load(checkpoint_path) if resume else None
    if checkpoint is not None:
        counts, since, compress = _resumed(database, path, checkpoint)
    else:
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists: pass overwrite=True to replace it")
        compress = path.name.endswith(".gz") if compress is None else compress
        counts, since = BackupCounts(uuid.uuid4().hex), None
    info = await database.info()  # NotFoundError before any file is touched
    total = int(info.get("doc_count", 0)) + int(info.get("doc_del_count", 0))
    with open(path, "wb" if checkpoint is None else "r+b") as file:
        if checkpoint is not None:
            # what was written after the checkpoint is written again
            file.truncate(counts.bytes)
            file.seek(counts.bytes)
        else:
            _append(file, backup_format.header_line(counts.backup_id, database.id), compress)
            counts.bytes = file.tell()
            _save(file, checkpoint_path, _checkpoint(database, counts, since, compress))
        report(counts.documents, max(total, counts.documents))
        written = saved = _checkpoint(database, counts, since, compress)
        saved_at = time.monotonic()

        async def write(batch: _Batch, lines: list[bytes]) -> None:
            nonlocal written, saved, saved_at
            counts.bytes += _append(file, b"".join(lines), compress)
            counts.revisions += len(lines)
            counts.documents += len(batch.rows)
            written = _checkpoint(database, counts, batch.last_seq, compress)
            if time.monotonic() - saved_at >= _CHECKPOINT_INTERVAL:
                await asyncio.to_thread(_save, file, checkpoint_path, written)
                saved, saved_at = written, time.monotonic()
            report(counts.documents, max(total, counts.documents))

        try:
            await _in_order(
                _batches(database, since, batch_size),
                lambda batch: _read(database, batch.rows),
                write,
                in_flight,
            )
        except BaseException:
            if written is not saved:
                # a later run goes on after the batches written, not after fewer
                with contextlib.suppress(OSError):
                    _save(file, checkpoint_path, written)
            raise
        end = backup_format.end_line(counts.revisions, counts.documents)
        counts.bytes += _append(file, end, compress)
        _sync(file)
    checkpoints.remove(checkpoint_path)
    return counts


def _resumed(
    database: Database, path: Path, checkpoint: JsonDict
) -> tuple[BackupCounts, Any, bool]:
    """The counts, feed position and compression a checkpoint holds, once checked."""
    where = checkpoints.backup_checkpoint_path(path)
    if checkpoint.get("database") != database.id:
        raise ValueError(
            f"{where} belongs to a backup of {checkpoint.get('database')!r}, not of "
            f"{database.id!r}: delete it (and {path}) to start over"
        )
    if not path.exists() or path.stat().st_size < checkpoint["bytes"]:
        raise ValueError(f"{path} is shorter than {where} says: delete both to start over")
    header = backup_format.read_header(path)
    if header["backup_id"] != checkpoint["backup_id"]:
        raise ValueError(f"{where} belongs to another backup than {path}: delete both")
    counts = BackupCounts(
        checkpoint["backup_id"],
        documents=checkpoint["documents"],
        revisions=checkpoint["revisions"],
        bytes=checkpoint["bytes"],
        resumed=True,
    )
    return counts, checkpoint["since"], bool(checkpoint["compressed"])


def _checkpoint(database: Database, counts: BackupCounts, since: Any, compress: bool) -> JsonDict:
    return {
        "backup_id": counts.backup_id,
        "database": database.id,
        "since": since,
        "bytes": counts.bytes,
        "documents": counts.documents,
        "revisions": counts.revisions,
        "compressed": compress,
    }


def _append(file: IO[bytes], data: bytes, compress: bool) -> int:
    """Writes ``data`` (a gzip member of its own if ``compress``); its length."""
    if compress:
        data = gzip.compress(data, compresslevel=6)
    file.write(data)
    return len(data)


def _sync(file: IO[bytes]) -> None:
    """Puts what was written to ``file`` on disk."""
    file.flush()
    os.fsync(file.fileno())


def _save(file: IO[bytes], checkpoint_path: Path, checkpoint: JsonDict) -> None:
    """Saves ``checkpoint`` once the file it describes is on disk."""
    _sync(file)
    checkpoints.save(checkpoint_path, checkpoint)


async def _batches(database: Database, since: Any, batch_size: int) -> AsyncGenerator[_Batch, None]:
    """The rows of GET /{db}/_changes?style=all_docs&include_docs=true&attachments=true&
    limit=batch_size&since=, page after page until one is empty (a page at a time keeps
    memory small: a whole feed arrives faster than the documents are written).

    The next page is asked for as soon as a page has arrived, before it is decoded, and
    read while this one is used: the ``last_seq`` at the end of the body says where it
    starts (see :func:`_last_seq_at_end`), and the decoded page must say the same.
    """
    upcoming = asyncio.ensure_future(_page(database, since, batch_size))
    try:
        while True:
            body = await upcoming
            ahead = _last_seq_at_end(body)
            if ahead is not _UNKNOWN:
                upcoming = asyncio.ensure_future(_page(database, ahead, batch_size))
            try:
                rows, last_seq = _decoded_page(body)
            except ValueError as exc:
                raise _invalid_page(database, since, batch_size, exc) from exc
            del body  # (not kept beside its rows while they are used)
            if not rows:
                return
            if ahead is _UNKNOWN or ahead != last_seq:
                upcoming.cancel()
                upcoming = asyncio.ensure_future(_page(database, last_seq, batch_size))
            since = last_seq
            yield _Batch(rows, last_seq)
    finally:
        upcoming.cancel()
        await asyncio.gather(upcoming, return_exceptions=True)


_UNKNOWN: Any = object()
"""What :func:`_last_seq_at_end` returns for a body whose end it cannot read alone."""


def _changes_params(since: Any, batch_size: int) -> JsonDict:
    params: JsonDict = {
        "style": "all_docs",
        "include_docs": True,
        "attachments": True,
        "limit": batch_size,
    }
    if since is not None:
        params["since"] = since
    return params


async def _page(database: Database, since: Any, batch_size: int) -> bytes:
    """The body of one page of the feed: GET /{db}/_changes (repeated as a read, with the
    limits of a stream: a page of large attachments takes its time)."""
    http = database._remote._http
    raw = await http.request(
        "GET",
        f"{database.endpoint}/_changes",
        params=_changes_params(since, batch_size),
        subject=f"_changes of database '{database.id}'",
        timeout=http.stream_limits(),
    )
    return raw.body


def _last_seq_at_end(body: bytes) -> Any:
    """The ``last_seq`` that ends a page of changes holding some, read from the end of
    ``body`` alone; :data:`_UNKNOWN` if the body does not end as CouchDB's pages do
    (``...}],"last_seq":...}``, maybe with blanks, and more fields after it).

    ``{`` and what follows the last ``"last_seq"`` decode as an object only if that key
    is the body's own: one inside a change would leave the change's brackets unclosed.
    """
    at = body.rfind(b'"last_seq"')
    before = body[max(at - 64, 0) : at].rstrip()
    if at < 0 or not before.endswith(b","):
        return _UNKNOWN
    before = before[:-1].rstrip()
    if not before.endswith(b"]") or not before[:-1].rstrip().endswith(b"}"):
        return _UNKNOWN  # (no changes: "[]", or not a page)
    try:
        end = _json.loads(b"{" + body[at:])
    except ValueError:
        return _UNKNOWN
    return end["last_seq"] if type(end) is dict and "last_seq" in end else _UNKNOWN


def _decoded_page(body: bytes) -> tuple[list[JsonDict], Any]:
    """The changes of a page's ``body`` and where the feed goes on after them (its
    ``last_seq``, else the last change's ``seq``); ValueError if it is not a page."""
    try:
        page = _json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the body is not valid JSON ({exc}), starting {body[:80]!r}") from exc
    if type(page) is not dict or type(page.get("results")) is not list:
        raise ValueError(f"expected a JSON object with a 'results' array, got {kind_of(page)}")
    rows: list[JsonDict] = page["results"]
    for row in rows:
        if type(row) is not dict:
            raise ValueError(f"a change must be a JSON object, not {kind_of(row)}")
    return rows, page.get("last_seq", rows[-1].get("seq") if rows else None)


def _invalid_page(
    database: Database, since: Any, batch_size: int, exc: ValueError
) -> InvalidResponseError:
    """The error for a page of the feed (asked for ``since``) that is not one."""
    return database._remote._http.invalid_answer(
        describe_problem(exc),
        "GET",
        f"{database.endpoint}/_changes",
        _changes_params(since, batch_size),
        None,
        f"_changes of database '{database.id}'",
    )


async def _read(database: Database, rows: list[JsonDict]) -> list[bytes]:
    """The lines of the leaf revisions of the documents ``rows`` name, in their order: from
    the feed's body, with _bulk_get, or with open_revs (see the module's docstring)."""
    first: dict[str, bytes] = {}
    # rounds[i]: the i-th leaf of each document with more than i leaves
    rounds: list[list[JsonDict]] = []
    for row in rows:
        doc = _first_revision(row)
        if doc is not None:
            # encoded at once, so that the body is freed: a page's bodies kept to the end
            # would cost the garbage collector more than the encoding itself; adding the
            # newline copies orjson's answer, whose buffer is larger (kept, orjson's answers
            # made a backup of 100,000 documents peak at 82 MB instead of 53)
            first[row["id"]] = _json.dumps(doc) + b"\n"
            continue
        for i, leaf in enumerate(row["changes"]):
            if i == len(rounds):
                rounds.append([])
            rounds[i].append({"id": row["id"], "rev": leaf["rev"]})
    if not rounds:
        return list(first.values())
    read: list[dict[str, JsonDict]] = [{} for _ in rounds]
    again: dict[str, list[JsonDict]] = {}

    async def read_round(requests: list[JsonDict], leaves: dict[str, JsonDict]) -> None:
        async for result in database.bulk_get(requests, revs=True, attachments=True):
            if result.doc is None:
                # changed (and compacted) since the feed listed it: read its leaves as they are
                again[result.id] = []
            else:
                leaves[result.id] = result.doc

    await asyncio.gather(*(read_round(requests, leaves) for requests, leaves in zip(rounds, read)))
    slots = asyncio.Semaphore(_OPEN_REVS_AT_ONCE)

    async def read_leaves(id: str) -> None:
        async with slots:
            try:
                leaves = await Document(database, id).open_revs("all", revs=True, attachments=True)
            except NotFoundError:
                return  # purged since the feed listed it
        again[id] = [leaf.doc for leaf in leaves if leaf.doc is not None]

    await asyncio.gather(*(read_leaves(id) for id in again))
    revisions: list[bytes] = []
    for row in rows:
        id = row["id"]
        if id in first:
            revisions.append(first[id])
        else:
            others = again[id] if id in again else [leaves[id] for leaves in read if id in leaves]
            revisions.extend(text + b"\n" for text in _json.dumps_each(others))
    return revisions


def _first_revision(row: JsonDict) -> JsonDict | None:
    """The document of the feed's ``row``, with its history, made from the body the row
    holds, if that is the document's only leaf, live, and a first revision; else None.

    A first revision ``1-h`` has no ancestors: its history is ``{"start": 1, "ids":
    ["h"]}``. The body must hold every attachment's bytes (a server that sent stubs
    has the document read again).
    """
    doc, leaves = row.pop("doc", None), row["changes"]  # the body goes into the line only
    if len(leaves) != 1 or row.get("deleted") or type(doc) is not dict:
        return None
    rev = leaves[0]["rev"]
    if (
        doc.get("_rev") != rev
        or type(rev) is not str
        or rev[:2] != "1-"
        or doc.get("_id") != row["id"]
        or "_deleted" in doc
    ):
        return None
    attachments = doc.get("_attachments")
    if attachments is not None and not _has_bytes(attachments):
        return None
    doc["_revisions"] = {"start": 1, "ids": [rev[2:]]}
    return doc


def _has_bytes(attachments: Any) -> bool:
    """True if every attachment of ``attachments`` holds its bytes (not a stub)."""
    return isinstance(attachments, dict) and all(
        isinstance(attachment, dict) and isinstance(attachment.get("data"), str)
        for attachment in attachments.values()
    )


async def _in_order(
    batches: AsyncGenerator[_Batch, None],
    read: Callable[[_Batch], Any],
    write: Callable[[_Batch, list[bytes]], Any],
    in_flight: int,
) -> None:
    """Reads up to ``in_flight`` batches at once and writes them in their order.

    If anything fails, the reads still running are cancelled and the failure propagates.
    """
    pending: deque[tuple[_Batch, asyncio.Task[list[bytes]]]] = deque()
    try:
        async for batch in batches:
            pending.append((batch, asyncio.ensure_future(read(batch))))
            if len(pending) >= in_flight:
                done, task = pending.popleft()
                await write(done, await task)
        while pending:
            done, task = pending.popleft()
            await write(done, await task)
    finally:
        for _, task in pending:
            task.cancel()
        await asyncio.gather(*(task for _, task in pending), return_exceptions=True)
        await batches.aclose()
