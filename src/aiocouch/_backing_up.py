"""Writing a backup: every document's leaf revisions, with history and attachment bytes.

The documents are listed by ``_changes?style=all_docs``, which names each document once
with all its leaves (deleted ones included), a page (a batch) at a time. A batch's
documents with one live leaf are read with one ``_bulk_get?revs=true&attachments=true``;
the others (conflicted or deleted) with ``GET /{db}/{id}?open_revs=all&revs=true&
attachments=true`` each, since pouchdb-server's ``_bulk_get`` merges the requests for one
id and answers a deletion with ``{}``. Several batches are read at once; they are written
in feed order, each followed by a checkpoint (the file's length and the feed's ``seq``),
so memory holds ``in_flight`` batches at most, whatever the size of the database.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator
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
            checkpoints.save(checkpoint_path, _checkpoint(database, counts, since, compress))
        report(counts.documents, max(total, counts.documents))

        async def write(batch: _Batch, lines: list[bytes]) -> None:
            counts.bytes += _append(file, b"".join(lines), compress)
            counts.revisions += len(lines)
            counts.documents += len(batch.rows)
            checkpoint = _checkpoint(database, counts, batch.last_seq, compress)
            checkpoints.save(checkpoint_path, checkpoint)
            report(counts.documents, max(total, counts.documents))

        batches = _batches(database, since, batch_size)
        await _in_order(batches, lambda batch: _read(database, batch.rows), write, in_flight)
        end = backup_format.end_line(counts.revisions, counts.documents)
        counts.bytes += _append(file, end, compress)
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
    """Writes ``data`` durably (a gzip member of its own if ``compress``); its length."""
    if compress:
        data = gzip.compress(data, compresslevel=6)
    file.write(data)
    file.flush()
    os.fsync(file.fileno())
    return len(data)


async def _batches(database: Database, since: Any, batch_size: int) -> AsyncIterator[_Batch]:
    """The documents of GET /{db}/_changes?style=all_docs&limit=batch_size&since=, page
    after page until one is empty (a page at a time keeps memory small: a whole feed
    arrives faster than the documents are read)."""
    while True:
        params: JsonDict = {"style": "all_docs", "limit": batch_size}
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
        batch = [row async for row in rows]
        if not batch:
            return
        since = rows.meta.get("last_seq", batch[-1].get("seq"))
        yield _Batch(batch, since)


async def _read(database: Database, rows: list[JsonDict]) -> list[bytes]:
    """The lines of the leaf revisions of the documents ``rows`` name, in their order."""
    lines: dict[str, list[bytes]] = {row["id"]: [] for row in rows}
    single = [
        {"id": row["id"], "rev": row["changes"][0]["rev"]}
        for row in rows
        if len(row["changes"]) == 1 and not row.get("deleted")
    ]
    read_whole = {request["id"] for request in single}
    several = [id for id in lines if id not in read_whole]
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


async def _in_order(
    batches: AsyncIterator[_Batch],
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
