"""Writing a backup: every document's leaf revisions, with history and attachment bytes.

The documents are listed by ``_changes?style=all_docs&include_docs=true&attachments=
true``, which names each document once with all its leaves (deleted ones included) and
brings the winning revision's body with its attachments' bytes, a page (a batch) at a
time. A document whose only leaf is that body, a first revision (``1-h``), is written
from the feed as it is: the history of ``1-h`` is ``{"start": 1, "ids": ["h"]}``, nothing
else. Those are most documents of most databases, and the feed costs the server about
what a plain ``_all_docs?include_docs=true`` read does. The other documents with one leaf
(edited or deleted) are read with one ``_bulk_get?revs=true&attachments=true`` per
batch; those with several leaves with ``GET /{db}/{id}?open_revs=all&revs=true&
attachments=true`` each, since pouchdb-server's ``_bulk_get`` merges the requests for one
id. A document changed after the feed listed it comes again later in the feed, so its
newest state is written too.

The next page is asked for while a batch is read; several batches are read at once and
written in feed order, so memory holds a few batches at most, whatever the size of the
database. A checkpoint (the file's length and the feed's ``seq``) follows the batches
written, once the file is on disk: at most every second, and when the backup stops.
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
from ._resume import ChangesContinuation
from .document import Document
from .exception import NotFoundError
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["BackupCounts", "write_backup"]

_OPEN_REVS_AT_ONCE = 8
"""The open_revs requests one batch sends at once."""

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
                _prefetched(_batches(database, since, batch_size)),
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
    memory small: a whole feed arrives faster than the documents are written)."""
    while True:
        params: JsonDict = {
            "style": "all_docs",
            "include_docs": True,
            "attachments": True,
            "limit": batch_size,
        }
        if since is not None:
            params["since"] = since
        rows = database._remote._rows(
            "GET",
            f"{database.endpoint}/_changes",
            "results",
            params=params,
            subject=f"_changes of database '{database.id}'",
            continuation=ChangesContinuation,
        )
        batch = [row async for pieces in rows.batches() for row, _ in pieces]
        if not batch:
            return
        since = rows.meta.get("last_seq", batch[-1].get("seq"))
        yield _Batch(batch, since)


async def _prefetched(batches: AsyncGenerator[_Batch, None]) -> AsyncGenerator[_Batch, None]:
    """The batches of ``batches``, the next one asked for while the current one is used
    (the server works on the next page meanwhile)."""

    async def following() -> _Batch | None:
        try:
            return await batches.__anext__()
        except StopAsyncIteration:
            return None

    upcoming = asyncio.ensure_future(following())
    try:
        while (batch := await upcoming) is not None:
            upcoming = asyncio.ensure_future(following())
            yield batch
    finally:
        upcoming.cancel()
        await asyncio.gather(upcoming, return_exceptions=True)
        await batches.aclose()


async def _read(database: Database, rows: list[JsonDict]) -> list[bytes]:
    """The lines of the leaf revisions of the documents ``rows`` name, in their order: from
    the feed's body, with _bulk_get, or with open_revs (see the module's docstring)."""
    lines: dict[str, list[bytes]] = {}
    single: list[JsonDict] = []
    several: list[str] = []
    for row in rows:
        id, leaves = row["id"], row["changes"]
        line = _first_revision_line(row)
        lines[id] = [] if line is None else [line]
        if line is None and len(leaves) == 1:
            single.append({"id": id, "rev": leaves[0]["rev"]})
        elif line is None:
            several.append(id)
    async for result in database.bulk_get(single, revs=True, attachments=True):
        if result.doc is None:
            # changed (and compacted) since the feed listed it: read its leaves as they are
            several.append(result.id)
        else:
            lines[result.id].append(_json.dumps(result.doc) + b"\n")
    slots = asyncio.Semaphore(_OPEN_REVS_AT_ONCE)

    async def read_leaves(id: str) -> None:
        async with slots:
            try:
                leaves = await Document(database, id).open_revs("all", revs=True, attachments=True)
            except NotFoundError:
                return  # purged since the feed listed it
        lines[id] = [_json.dumps(leaf.doc) + b"\n" for leaf in leaves if leaf.doc is not None]

    await asyncio.gather(*(read_leaves(id) for id in several))
    return [line for id_lines in lines.values() for line in id_lines]


def _first_revision_line(row: JsonDict) -> bytes | None:
    """The line of the document of the feed's ``row`` made from the body the row holds,
    if that is the document's only leaf, live, and a first revision; else None.

    A first revision ``1-h`` has no ancestors: its history is ``{"start": 1, "ids":
    ["h"]}``. The body must hold every attachment's bytes (a server that sent stubs
    has the document read again).
    """
    doc, leaves = row.pop("doc", None), row["changes"]  # the body goes into the line only
    if len(leaves) != 1 or row.get("deleted") or not isinstance(doc, dict):
        return None
    rev = leaves[0]["rev"]
    if (
        doc.get("_rev") != rev
        or not isinstance(rev, str)
        or rev[:2] != "1-"
        or doc.get("_id") != row["id"]
        or "_deleted" in doc
    ):
        return None
    attachments = doc.get("_attachments")
    if attachments is not None and not _has_bytes(attachments):
        return None
    doc["_revisions"] = {"start": 1, "ids": [rev[2:]]}
    return _json.dumps(doc) + b"\n"


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
