"""Read-modify-write: a document read, edited by a function and written, again after
each conflict, a bounded number of times (public in :mod:`aiocouch.conflicts`)."""

from __future__ import annotations

import asyncio
import enum
import inspect
import random
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Union

from . import _paths
from .bulk import BulkOperation
from .cluster import check_quorum
from .document import Document
from .exception import ConflictError, NotFoundError

if TYPE_CHECKING:
    from .database import Database

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DELETE",
    "Deletion",
    "EditFailure",
    "EditFunction",
    "EditResults",
    "TooManyConflictsError",
    "check_attempts",
    "check_edited_id",
    "edit",
    "edit_many",
    "pause",
    "too_many_conflicts",
]

DEFAULT_ATTEMPTS = 10
"""How often an edit or a resolution is tried before TooManyConflictsError, by default."""

# After the n-th conflict a random pause of up to min(_LONGEST_PAUSE, _FIRST_PAUSE * 2**(n-1))
# seconds: writers that met once then try again at different times.
_FIRST_PAUSE = 0.01
_LONGEST_PAUSE = 1.0


class Deletion(enum.Enum):
    """The type of :data:`DELETE`."""

    DELETE = "delete"


DELETE = Deletion.DELETE
"""What an edit function returns to delete the document (see :func:`edit`)."""

EditFunction = Callable[[Document], Union[Optional[Deletion], Awaitable[Optional[Deletion]]]]
"""An edit: changes the document it is given in place, returns None (or :data:`DELETE`)."""


class TooManyConflictsError(ConflictError):
    """Each of ``attempts`` attempts to edit document ``id`` (or to resolve its conflicts)
    met a conflict: others kept writing it. Its ``__cause__`` is the last conflict, if
    one was raised."""

    def __init__(self, message: str, *, id: str, attempts: int) -> None:
        super().__init__(message, reason="Document update conflict.", error="conflict")
        self.id = id
        self.attempts = attempts


@dataclass(frozen=True)
class EditFailure:
    """A document :func:`edit_many` could not write, and why.

    ``error``: ``"conflict"`` (every attempt met one), ``"not_found"`` (missing or
    deleted, without ``create``), ``"no_result"`` (the server's answer left it out), or
    the error of the server's ``_bulk_docs`` item (``"forbidden"`` from a validation
    function...). ``reason`` says more.
    """

    id: str
    error: str
    reason: str


@dataclass
class EditResults:
    """Where each id given to :func:`edit_many` ended: in exactly one list, in the order
    the ids were given."""

    saved: list[Document] = field(default_factory=list)
    """Written: created or changed, each holding its new revision."""
    deleted: list[Document] = field(default_factory=list)
    """Deleted; each holds only its ``_id``, as after :meth:`Document.delete`."""
    unchanged: list[Document] = field(default_factory=list)
    """Not written because the edit changed nothing (or deleted a missing document)."""
    failed: list[EditFailure] = field(default_factory=list)
    """Not written, with the reason."""

    def _sort(self, order: dict[str, int]) -> None:
        for documents in (self.saved, self.deleted, self.unchanged):
            documents.sort(key=lambda document: order[document.id])
        self.failed.sort(key=lambda failure: order[failure.id])


# --- read-modify-write ---


async def edit(
    database: Database,
    id: str,
    edit: EditFunction,
    *,
    create: bool = True,
    attempts: int = DEFAULT_ATTEMPTS,
    w: int | None = None,
) -> Document:
    """Reads document ``id``, applies ``edit`` to it and writes the result; on a conflict
    reads and applies again, up to ``attempts`` times in all.

    ``edit`` (a function or a coroutine function) gets the current document (a
    :class:`~aiocouch.document.Document`) and changes it in place. It returns None to
    save the changes (nothing is written if it made none) or :data:`DELETE` to delete
    the document; it must leave ``_id`` and ``_rev`` alone, and since it may run again
    it should change nothing but the document. A document that does not exist (or was
    deleted) is given as a new, empty document (``rev`` None; it is created only if
    ``edit`` puts something in it), or with ``create=False`` raises NotFoundError.

    Sends GET /{db}/{docid}, then PUT /{db}/{docid}[?w=] (or DELETE ?rev=) if there is
    something to write, both again after each 409, with a short random pause. Returns
    the document as written (as read, if unchanged; after a deletion it holds only its
    ``_id``). Raises TooManyConflictsError after ``attempts`` conflicts; TypeError or
    ValueError (no request) for bad arguments, and when ``edit`` returns something else
    or changes ``_id`` or ``_rev``; whatever ``edit`` raises (nothing is written then).
    """
    check_edited_id(id)
    check_attempts(attempts)
    check_quorum("w", w)
    conflict: ConflictError | None = None
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            await pause(attempt - 1)
        document = await _current(database, id, create)
        outcome = await _apply(edit, document)
        try:
            return await _write(document, outcome, w)
        except ConflictError as exc:
            conflict = exc
    raise too_many_conflicts(database, id, attempts, "edit") from conflict


async def _current(database: Database, id: str, create: bool) -> Document:
    """The document as the server has it now, or a new one if it has none (``create``)."""
    document = Document(database, id)
    try:
        await document.fetch(discard_changes=True)
    except NotFoundError:
        if not create:
            raise
        return Document(database, id)
    return document


async def _apply(edit: EditFunction, document: Document) -> Deletion | None:
    """Runs ``edit`` on ``document``; its outcome, checked."""
    rev = document.rev
    outcome = edit(document)
    if inspect.isawaitable(outcome):
        outcome = await outcome
    if document.get("_id") != document.id or document.get("_rev") != rev:
        raise ValueError(
            f"The edit of document {document.id!r} changed its _id or _rev: an edit must "
            "leave both as they are"
        )
    if outcome is not None and outcome is not DELETE:
        raise TypeError(
            f"An edit returns None (save the changes) or DELETE, not {type(outcome).__name__}"
        )
    return outcome


def _is_untouched_new(document: Document) -> bool:
    """True for a document that does not exist and that the edit left empty."""
    return document.rev is None and document._fresh


async def _write(document: Document, outcome: Deletion | None, w: int | None) -> Document:
    """Writes the outcome of an edit: PUT if changed, DELETE ?rev= for a deletion."""
    if outcome is DELETE:
        if document.rev is not None:
            await document.delete(discard_changes=True, w=w)
    elif not _is_untouched_new(document):
        await document.save(w=w)
    return document


async def edit_many(
    database: Database,
    ids: Iterable[str],
    edit: EditFunction,
    *,
    create: bool = True,
    attempts: int = DEFAULT_ATTEMPTS,
    w: int | None = None,
) -> EditResults:
    """Applies ``edit`` to each document of ``ids`` and writes them all; the conflicted
    ones are read and edited again, up to ``attempts`` rounds in all.

    ``edit`` and ``create``: as for :func:`edit`; it runs on the documents one after
    the other, in the order of ``ids``. Each round sends POST
    /{db}/_all_docs?include_docs=true with the ids still pending, then POST
    /{db}/_bulk_docs[?w=] with the documents that changed (in batches, as
    :class:`~aiocouch.bulk.BulkOperation` sends them); a conflicted document goes on to
    the next round, after a short random pause. ``ids`` empty sends nothing.

    Returns :class:`EditResults`: every id in exactly one of its lists. Raises
    TypeError, ValueError or BadRequestError (no request) for an id given twice or one
    CouchDB refuses, and for bad arguments; what ``edit`` raises, and the error of a
    request that fails as a whole (the documents written in earlier rounds stay written).
    """
    order = _ordered_ids(ids)
    check_attempts(attempts)
    check_quorum("w", w)
    results = EditResults()
    pending = list(order)
    for attempt in range(1, attempts + 1):
        if not pending:
            break
        if attempt > 1:
            await pause(attempt - 1)
        pending = await _edit_round(database, pending, edit, create, w, results)
    results.failed.extend(
        EditFailure(id, "conflict", f"Each of {attempts} attempts met a conflict") for id in pending
    )
    results._sort(order)
    return results


async def _edit_round(
    database: Database,
    ids: list[str],
    edit: EditFunction,
    create: bool,
    w: int | None,
    results: EditResults,
) -> list[str]:
    """Reads, edits and writes the documents ``ids`` once; returns those that conflicted."""
    read = {
        document.id: document
        async for document in database.all_docs.docs(ids, create=True, include_ddocs=True)
    }
    changed: list[Document] = []
    for id in ids:
        document = read.get(id)
        if document is None:
            results.failed.append(EditFailure(id, "no_result", "_all_docs answered no row for it"))
        elif document.rev is None and not create:
            results.failed.append(EditFailure(id, "not_found", "missing or deleted"))
        elif await _apply(edit, document) is DELETE:
            if document.rev is None:
                results.unchanged.append(document)
            else:
                document._data = {"_id": id, "_rev": document.rev, "_deleted": True}
                changed.append(document)
        elif _is_untouched_new(document) or not document._dirty_cache:
            results.unchanged.append(document)
        else:
            changed.append(document)
    if not changed:
        return []
    async with BulkOperation(database, w=w) as operation:
        for document in changed:
            operation.append(document)
    assert operation.ok is not None and operation.error is not None
    for document in operation.ok:
        if document.get("_deleted") is True:
            document._update_cache({"_id": document.id})
            results.deleted.append(document)
        else:
            results.saved.append(document)
    items = {item.get("id"): item for item in operation.response or ()}
    conflicted = []
    for document in operation.error:
        item = items.get(document.id, {})
        if item.get("error") == "conflict":
            conflicted.append(document.id)
        else:
            error = str(item.get("error") or "no_result")
            reason = str(item.get("reason") or "_bulk_docs answered no result for it")
            results.failed.append(EditFailure(document.id, error, reason))
    return conflicted


# --- checks and pauses ---


def check_edited_id(id: str) -> None:
    """Raises (no request) for an id that is not a document's with revisions."""
    _paths.check_document_id(_paths.validate_document_id(id))
    if id.startswith("_local/"):
        raise ValueError(
            f"{id!r} is a _local document: it has no revisions and never conflicts "
            "(see Database.local)"
        )


def check_attempts(attempts: int) -> None:
    """Raises ValueError (no request) unless ``attempts`` is an int of at least 1."""
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an int of at least 1, got {attempts!r}")


def _ordered_ids(ids: Iterable[str]) -> dict[str, int]:
    """The position of each id; raises (no request) for an id given twice or refused."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a list of document ids, not {type(ids).__name__}")
    order: dict[str, int] = {}
    for id in ids:
        check_edited_id(id)
        if id in order:
            raise ValueError(f"The document id {id!r} is given twice")
        order[id] = len(order)
    return order


def too_many_conflicts(
    database: Database, id: str, attempts: int, what: str
) -> TooManyConflictsError:
    """The error for ``attempts`` attempts to ``what`` document ``id`` that all conflicted."""
    return TooManyConflictsError(
        f"Gave up trying to {what} document '{id}' in database '{database.id}': each of "
        f"{attempts} attempts met a conflict",
        id=id,
        attempts=attempts,
    )


async def pause(conflicts: int) -> None:
    """A random pause after the ``conflicts``-th conflict of one edit or resolution."""
    longest = min(_LONGEST_PAUSE, _FIRST_PAUSE * 2 ** (conflicts - 1))
    await asyncio.sleep(random.uniform(0.0, longest))
