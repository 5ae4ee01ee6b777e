"""Restoring a backup: its revisions written as they are, design documents last.

The whole file is checked first (:func:`._backup_format.scan`, in a thread): a bad line
raises before any request. Then the revisions go to POST /{db}/_bulk_docs with
``new_edits: false`` in batches (by count and bytes), each line sent as the bytes it is
in the file, ``in_flight`` requests at once: first every other document, then the design
documents, so that no ``validate_doc_update`` of the backup judges the documents restored
with it. A checkpoint records the line up to which everything is written (in file
order), at most every second and when the restore stops; a resumed restore starts there.
A revision written twice (a batch sent again after an interruption) changes nothing, so
nothing is doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import _backup_checkpoint as checkpoints
from . import _backup_format as backup_format
from ._answers import ARRAY_OF_OBJECTS
from ._transport import JSON_CONTENT_TYPE
from .retry import Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["RestoreCounts", "write_restore"]

Report = Callable[[str, int, int], None]
"""Called with the phase ("documents" or "design"), the revisions written so far (those
of earlier runs included) and the backup's revisions."""

_PHASES = ("documents", "design")

_CHECKPOINT_INTERVAL = 1.0
"""Seconds between checkpoints: each costs an fsync and a rename."""


@dataclass
class RestoreCounts:
    """What a restore wrote and what the server refused."""

    backup_id: str
    revisions: int = 0
    design_revisions: int = 0
    skipped: int = 0
    refused: list[JsonDict] = field(default_factory=list)


@dataclass(frozen=True)
class _Batch:
    phase: str
    last_line: int
    lines: list[bytes]


async def write_restore(
    path: Path,
    database: Database,
    *,
    batch_size: int,
    batch_bytes: int,
    in_flight: int,
    resume: bool,
    create: bool,
    report: Report,
) -> RestoreCounts:
    """Restores the backup at ``path`` into ``database`` (see :func:`aiocouch.backup.restore`)."""
    contents = await asyncio.to_thread(backup_format.scan, path)
    backup_id = contents.header["backup_id"]
    checkpoint_path = checkpoints.restore_checkpoint_path(path)
    checkpoint = checkpoints.load(checkpoint_path) if resume else None
    if checkpoint is not None and (
        checkpoint.get("backup_id") != backup_id or checkpoint.get("database") != database.id
    ):
        checkpoint = None  # of another restore: starting over loses nothing
    if create:
        await database._couchdb.create(database.id, exists_ok=True)
    else:
        await database.info()  # NotFoundError before anything is written
    start_phase, start_line = _start(checkpoint)
    counts = RestoreCounts(backup_id)
    design = set(contents.design_lines)
    last = contents.revisions + 1  # line 1 is the header, the end line follows the last

    unsaved: JsonDict | None = None  # the checkpoint of the batches written since the last
    saved_at = time.monotonic()

    async def written(batch: _Batch) -> None:
        nonlocal unsaved, saved_at
        unsaved = {
            "backup_id": backup_id,
            "database": database.id,
            "phase": batch.phase,
            "line": batch.last_line,
        }
        if time.monotonic() - saved_at >= _CHECKPOINT_INTERVAL:
            await asyncio.to_thread(checkpoints.save, checkpoint_path, unsaved)
            unsaved, saved_at = None, time.monotonic()
        done = counts.skipped + counts.revisions + counts.design_revisions
        report(batch.phase, done, contents.revisions)

    def in_phase(number: int, phase: str) -> bool:
        return 1 < number <= last and (number in design) == (phase == "design")

    if start_phase == "design":
        counts.skipped = contents.revisions - len(design)  # all documents were written
    counts.skipped += sum(1 for number in range(2, start_line + 1) if in_phase(number, start_phase))
    report(start_phase, counts.skipped, contents.revisions)
    try:
        for phase in _PHASES[_PHASES.index(start_phase) :]:
            after = start_line if phase == start_phase else 0
            wanted = functools.partial(in_phase, phase=phase)
            batches = _batches(path, phase, wanted, after, batch_size, batch_bytes)
            await _send_in_order(database, batches, counts, written, in_flight)
    except BaseException:
        if unsaved is not None:
            # a later run goes on after the batches written, not after fewer
            with contextlib.suppress(OSError):
                checkpoints.save(checkpoint_path, unsaved)
        raise
    checkpoints.remove(checkpoint_path)
    return counts


def _start(checkpoint: JsonDict | None) -> tuple[str, int]:
    """The phase and the line after which a restore starts (0: the beginning)."""
    if checkpoint is None or checkpoint.get("phase") not in _PHASES:
        return _PHASES[0], 0
    line = checkpoint.get("line")
    return checkpoint["phase"], line if isinstance(line, int) else 0


def _batches(
    path: Path,
    phase: str,
    in_phase: Callable[[int], bool],
    after: int,
    batch_size: int,
    batch_bytes: int,
) -> Iterator[_Batch]:
    """The revision lines of ``phase`` after line ``after`` of the backup at ``path``, a
    batch at a time."""
    lines: list[bytes] = []
    size = 0
    last_line = 0
    with backup_format.open_lines(path) as file:
        for number, line in enumerate(file, 1):
            if number <= after or not in_phase(number):
                continue
            if lines and (len(lines) >= batch_size or size + len(line) > batch_bytes):
                yield _Batch(phase, last_line, lines)
                lines, size = [], 0
            lines.append(line)
            size += len(line)
            last_line = number
    if lines:
        yield _Batch(phase, last_line, lines)


async def _send_in_order(
    database: Database,
    batches: Iterator[_Batch],
    counts: RestoreCounts,
    written: Callable[[_Batch], Awaitable[None]],
    in_flight: int,
) -> None:
    """Sends up to ``in_flight`` batches at once; ``written`` is awaited for each, in order.

    If anything fails, the requests still running are cancelled and the failure
    propagates.
    """
    pending: deque[tuple[_Batch, asyncio.Task[list[JsonDict]]]] = deque()

    async def finish_oldest() -> None:
        batch, task = pending.popleft()
        counts.refused.extend(await task)
        if batch.phase == "design":
            counts.design_revisions += len(batch.lines)
        else:
            counts.revisions += len(batch.lines)
        await written(batch)

    try:
        for batch in batches:
            pending.append((batch, asyncio.ensure_future(_send(database, batch.lines))))
            if len(pending) >= in_flight:
                await finish_oldest()
        while pending:
            await finish_oldest()
    finally:
        for _, task in pending:
            task.cancel()
        await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


async def _send(database: Database, lines: list[bytes]) -> list[JsonDict]:
    """POST /{db}/_bulk_docs with the revisions ``lines`` and ``new_edits: false``; the
    items of the revisions the server refused.

    Storing a revision that is already stored changes nothing, so the request is
    repeated after any failure the retry policy allows.
    """
    body = b'{"new_edits":false,"docs":[' + b",".join(lines) + b"]}"
    _, items = await database._remote._request(
        "POST",
        f"{database.endpoint}/_bulk_docs",
        params=database._remote._quorum._write(),
        data=body,
        headers=JSON_CONTENT_TYPE,
        subject=f"_bulk_docs in database '{database.id}'",
        expect=ARRAY_OF_OBJECTS,
        repetition=Repetition.SAFE,
    )
    return [dict(item) for item in items if "error" in item]
