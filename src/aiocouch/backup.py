"""Backup and restore of a database: every revision that matters, exactly, in a file.

:func:`backup` writes every document's leaf revisions (the winner, its conflicts and
deletions), each with its history (``_revisions``) and its attachments' bytes, as JSON
lines (gzip-compressed if asked for or if the file name ends in ``.gz``); memory stays
flat at any size. :func:`restore` checks the whole file first, then writes it back with
``_bulk_docs`` and ``new_edits: false``, design documents last, so revisions, conflicts
and deletions come back as they were. Both keep a checkpoint beside the file and, run
again after an interruption, continue where they stopped. :func:`check_backup` checks a
file without writing anything. docs/backup.md describes the file format.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

from . import _backing_up, _restoring
from ._backup_format import BackupFormatError, scan
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "BackupFormatError",
    "BackupProgress",
    "BackupSummary",
    "RestoreError",
    "RestoreSummary",
    "backup",
    "check_backup",
    "restore",
]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class BackupProgress:
    """How far a backup or a restore is, handed to its ``progress`` callback.

    ``phase``: ``"backup"`` (``done`` documents of ``total``, the database's documents
    and deletions when it started), or for a restore ``"documents"`` then ``"design"``
    (``done`` revisions written of the ``total`` the backup holds). The first report
    comes before the first batch (once a restore has checked the file); counts include
    the work of an interrupted run that this one resumed.
    """

    phase: str
    done: int
    total: int | None


ProgressCallback = Callable[[BackupProgress], object]


@dataclass(frozen=True)
class BackupSummary:
    """What :func:`backup` wrote: ``documents`` (listed by the changes feed),
    ``revisions`` (lines: leaves, conflicts and deletions), the file's size in
    ``bytes``; ``resumed`` if it continued an interrupted backup."""

    path: Path
    backup_id: str
    documents: int
    revisions: int
    bytes: int
    resumed: bool


@dataclass(frozen=True)
class RestoreSummary:
    """What :func:`restore` wrote: ``revisions`` of documents, then ``design_revisions``;
    ``skipped``: revisions an interrupted run had written already (not sent again)."""

    path: Path
    backup_id: str
    revisions: int
    design_revisions: int
    skipped: int
    refused: list[JsonDict] = field(default_factory=list)


class RestoreError(Exception):
    """The server refused some revisions of a restore (all others are written).

    ``summary.refused`` holds the server's items (``id``, ``error``, ``reason``).
    """

    def __init__(self, summary: RestoreSummary) -> None:
        first = summary.refused[0]
        super().__init__(
            f"the server refused {len(summary.refused)} revisions of {summary.path}, "
            f"the first: {first.get('id')!r}: {first.get('error')} ({first.get('reason')})"
        )
        self.summary = summary


async def backup(
    database: Database,
    path: PathLike,
    *,
    gzip: bool | None = None,
    batch_size: int = 2000,
    in_flight: int = 4,
    resume: bool = True,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> BackupSummary:
    """Writes a backup of ``database`` into the file ``path``: GET /{db}, then per batch
    GET /{db}/_changes?style=all_docs&include_docs=true&attachments=true&limit=&since=
    (a document whose only revision is its first is written from it as it is), and POST
    /{db}/_bulk_get?revs=true&attachments=true for every leaf of the batch's other
    documents (edited, deleted or conflicted: one request, and one more per further leaf
    of its most conflicted document); GET /{db}/{docid}?open_revs=all&revs=true&
    attachments=true for a document whose leaf is gone since the feed listed it.

    ``gzip``: compress (None: if ``path`` ends in ``.gz``). ``batch_size`` documents are
    read per request, ``in_flight`` batches at once (and the next page of the feed);
    memory holds at most that many batches. A document changed while the backup runs is
    written as it is at the end too. If ``path`` has a checkpoint (``path +
    ".checkpoint"``, saved at most every second and when the backup stops) from an
    interrupted backup of the same database and ``resume`` is true, the backup continues
    after the last batch it saved (documents changed since then may be written again,
    which a restore takes as it would a replication). ``progress`` is called after each
    batch.

    Raises FileExistsError (no request) if ``path`` exists without a checkpoint and
    ``overwrite`` is false, ValueError for a checkpoint that does not match, NotFoundError
    if the database does not exist, and whatever the requests raise; after a failure the
    file and its checkpoint stay for a later resume.
    """
    _check_counts(batch_size=batch_size, in_flight=in_flight)
    target = Path(path)
    counts = await _backing_up.write_backup(
        database,
        target,
        compress=gzip,
        batch_size=batch_size,
        in_flight=in_flight,
        resume=resume,
        overwrite=overwrite,
        report=lambda done, total: _report(progress, "backup", done, total),
    )
    return BackupSummary(
        target, counts.backup_id, counts.documents, counts.revisions, counts.bytes, counts.resumed
    )


async def restore(
    path: PathLike,
    database: Database,
    *,
    batch_size: int = 500,
    batch_bytes: int = 8 * 1024 * 1024,
    in_flight: int = 4,
    resume: bool = True,
    create: bool = False,
    progress: ProgressCallback | None = None,
) -> RestoreSummary:
    """Writes the backup in the file ``path`` into ``database``: GET /{db} (or PUT /{db}
    with ``create``), then POST /{db}/_bulk_docs with ``new_edits: false`` per batch.

    The whole file is checked before the first request: a corrupt file (not JSON, a line
    cut short, not a backup, unfinished) raises BackupFormatError naming the line, and
    nothing is written. Then every revision is written as the backup holds it (history,
    deletions, conflicts, attachment bytes), the design documents last. Batches hold at
    most ``batch_size`` revisions and ``batch_bytes`` bytes (a bigger revision goes
    alone); ``in_flight`` requests run at once. A checkpoint (``path +
    ".restore-checkpoint"``) records how far it got; run again with ``resume`` true after
    an interruption, it continues there (writing a revision twice changes nothing, so
    nothing is doubled). ``progress`` is called after each batch. The target may hold
    documents already: the backup's revisions are added to their trees, as a
    replication would.

    Raises NotFoundError if the database does not exist (and ``create`` is false),
    RestoreError if the server refused some revisions (a validation function of the
    target, a document too large), and whatever the requests raise.
    """
    _check_counts(batch_size=batch_size, batch_bytes=batch_bytes, in_flight=in_flight)
    source = Path(path)
    counts = await _restoring.write_restore(
        source,
        database,
        batch_size=batch_size,
        batch_bytes=batch_bytes,
        in_flight=in_flight,
        resume=resume,
        create=create,
        report=lambda phase, done, total: _report(progress, phase, done, total),
    )
    summary = RestoreSummary(
        source,
        counts.backup_id,
        counts.revisions,
        counts.design_revisions,
        counts.skipped,
        counts.refused,
    )
    if summary.refused:
        raise RestoreError(summary)
    return summary


async def check_backup(path: PathLike) -> int:
    """Checks the whole backup in the file ``path`` (no request); the number of revisions
    it holds. Raises BackupFormatError naming the first bad line."""
    contents = await asyncio.to_thread(scan, Path(path))
    return contents.revisions


def _report(callback: ProgressCallback | None, phase: str, done: int, total: int | None) -> None:
    if callback is not None:
        callback(BackupProgress(phase, done, total))


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
