"""Conflicts: edits that survive concurrent writers, and conflicting revisions resolved.

Two kinds of conflict meet a CouchDB client. An *update conflict* (409) answers a write
whose ``_rev`` is not the document's current revision: someone else wrote in between.
:meth:`Database.edit <aiocouch.database.Database.edit>` reads the document, applies a
function to it and saves it; on a conflict it reads and applies again, a bounded number
of times. :meth:`~aiocouch.database.Database.edit_many` does the same for many
documents with one read and one write per round::

    def count(doc):                        # sync or async; runs again after a conflict
        doc["n"] = doc.get("n", 0) + 1     # return DELETE to delete the document instead

    await db.edit("counter", count)        # GET, PUT (both again after a 409)
    results = await db.edit_many(ids, count)   # POST _all_docs, POST _bulk_docs
    results.saved, results.deleted, results.unchanged, results.failed

A *conflicted document* has several leaf revisions that are not deleted, written where
no copy saw the other write: by replication, on several nodes of a cluster, or with
``new_edits=false``. CouchDB answers with one of them (the winner) and lists the others
as ``_conflicts``. :meth:`~aiocouch.database.Database.conflicting_revisions` reads them
all with their bodies; :meth:`~aiocouch.database.Database.resolve_conflicts` lets a
function pick or merge the winning body, writes it on the winning revision, then
deletes the others in one ``_bulk_docs``; ``resolve_all_conflicts`` does so for every
conflicted document of the database::

    def newest(revisions):                 # every leaf body, the current winner first
        return max(revisions, key=lambda body: body["updated"])

    await db.resolve_conflicts("doc", newest)
    async for resolution in db.resolve_all_conflicts(newest):
        ...
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Union

from ._answers import AnswerShape, is_document
from ._editing import (
    DEFAULT_ATTEMPTS,
    DELETE,
    Deletion,
    EditFailure,
    EditFunction,
    EditResults,
    TooManyConflictsError,
    check_attempts,
    check_edited_id,
    edit,
    edit_many,
    pause,
    too_many_conflicts,
)
from .document import Document
from .exception import ConflictError, InvalidResponseError, NotFoundError, error_for_response
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database
    from .view import View

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DELETE",
    "ChooseFunction",
    "ConflictingRevisions",
    "Deletion",
    "EditFailure",
    "EditFunction",
    "EditResults",
    "Resolution",
    "TooManyConflictsError",
    "conflicting_revisions",
    "edit",
    "edit_many",
    "resolve_all_conflicts",
    "resolve_conflicts",
]

# Fields a server adds to a body it answers, which a write must not carry.
_READ_ONLY_FIELDS = frozenset(
    ("_rev", "_conflicts", "_deleted_conflicts", "_revisions", "_revs_info", "_local_seq")
)
# The status that a _bulk_docs item's error would have had as the answer to a single write.
_ITEM_ERROR_STATUS = {"forbidden": 403, "unauthorized": 401, "not_found": 404, "conflict": 409}


ChooseFunction = Callable[[list[JsonDict]], Union[JsonDict, Awaitable[JsonDict]]]
"""A resolution: given the bodies of every leaf revision, returns the winning body."""


@dataclass(frozen=True)
class ConflictingRevisions:
    """The leaf revisions of document ``id`` that are not deleted, with their bodies.

    ``winner``: the body CouchDB answers GET with (``_id``, ``_rev`` and the fields).
    ``conflicts``: the bodies of the other leaves; empty when there is no conflict.
    """

    id: str
    winner: JsonDict
    conflicts: list[JsonDict]

    @property
    def revisions(self) -> list[JsonDict]:
        """Every leaf body, the winner first."""
        return [self.winner, *self.conflicts]


@dataclass(frozen=True)
class Resolution:
    """What resolving the conflicts of document ``id`` did.

    ``winner``: the body that wins now, with ``_id`` and its ``_rev``. ``removed``: the
    conflicting revisions it deleted (none: the document had no conflicts).
    ``rewritten``: True if the chosen body was written as a new revision on the winning
    one, False if it was the winning revision's own.
    """

    id: str
    winner: JsonDict
    removed: list[str]
    rewritten: bool

    @property
    def rev(self) -> str:
        """The winning revision now."""
        rev: str = self.winner["_rev"]
        return rev


# --- conflicting revisions ---


def _is_conflicted_body(value: Any) -> bool:
    """A document with a str ``_rev`` and, if any, a ``_conflicts`` list of revisions."""
    if not is_document(value) or not isinstance(value.get("_rev"), str):
        return False
    conflicts = value.get("_conflicts", [])
    return isinstance(conflicts, list) and all(isinstance(rev, str) for rev in conflicts)


_CONFLICTED_BODY = AnswerShape(
    "a document with a '_rev' and, if any, a '_conflicts' list of revisions",
    _is_conflicted_body,
)


async def conflicting_revisions(database: Database, id: str) -> ConflictingRevisions:
    """The leaf revisions of document ``id`` that are not deleted, with their bodies.

    Sends GET /{db}/{docid}?conflicts=true, then, if it lists conflicts, GET
    /{db}/{docid}?open_revs=[...]&latest=true for their bodies (a conflict written on
    since is answered with its newest leaf; one deleted since is left out). Raises
    NotFoundError if the document does not exist or is deleted; TypeError, ValueError
    or BadRequestError (no request) for an id that cannot be a document's.
    """
    check_edited_id(id)
    return await _bodies(database, await _conflicted_body(database, id))


async def _conflicted_body(database: Database, id: str) -> JsonDict:
    """GET /{db}/{docid}?conflicts=true: the winning body with its ``_conflicts``."""
    body: JsonDict = await Document(database, id)._read({"conflicts": True}, _CONFLICTED_BODY)
    return body


async def _bodies(database: Database, winner: JsonDict) -> ConflictingRevisions:
    """The winning body ``winner`` (read with ``conflicts=true``) and its conflicts' bodies."""
    winner = dict(winner)
    id, revs = winner["_id"], winner.pop("_conflicts", [])
    conflicts: list[JsonDict] = []
    if revs:
        seen = {winner["_rev"]}
        for result in await Document(database, id).open_revs(revs, latest=True):
            if result.doc is not None and not result.deleted and result.rev not in seen:
                seen.add(result.rev)
                conflicts.append(result.doc)
    return ConflictingRevisions(id, winner, conflicts)


async def resolve_conflicts(
    database: Database, id: str, choose: ChooseFunction, *, attempts: int = DEFAULT_ATTEMPTS
) -> Resolution:
    """Resolves the conflicts of document ``id``: ``choose`` returns the winning body,
    which replaces the winning revision, and the other leaves are deleted.

    ``choose`` (a function or a coroutine function) gets the body of every leaf that is
    not deleted, the current winner first (each a copy, with ``_id`` and ``_rev``), and
    returns the winning body: one of them or a merge (its ``_rev`` and the fields a read
    adds, such as ``_conflicts``, are dropped; attachment stubs are valid only from the
    winner's body; ``"_deleted": true`` deletes the document). It is not called for a
    document without conflicts. Sends what :func:`conflicting_revisions` sends; then,
    unless the chosen body is the winning revision's own, PUT /{db}/{docid} with it on
    the winning revision; then POST /{db}/_bulk_docs with a deletion of each other leaf.
    The losers are deleted only once the winner is written: ``_bulk_docs`` is not
    atomic (CouchDB refuses ``all_or_nothing``), and a loser deleted while the write of
    a merge that holds its content failed would be lost. If a write meets a conflict
    (the document changed meanwhile), all of it starts again with the leaves as they
    are then, up to ``attempts`` times, after a short random pause.

    Raises NotFoundError if the document does not exist; TooManyConflictsError after
    ``attempts`` conflicts; ForbiddenError or UnauthorizedError if the server refuses a
    write; TypeError or ValueError if ``choose`` returns something other than a body of
    this document; what ``choose`` raises (nothing is written then).
    """
    check_edited_id(id)
    check_attempts(attempts)
    return await _resolve(database, id, choose, attempts, None)


async def _resolve(
    database: Database,
    id: str,
    choose: ChooseFunction,
    attempts: int,
    winner: JsonDict | None,
) -> Resolution:
    """Resolves the conflicts of ``id``, starting from ``winner`` (read with
    ``conflicts=true``) if given."""
    removed: list[str] = []
    rewritten = False
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            await pause(attempt - 1)
        if winner is None or not _is_conflicted_body(winner):
            winner = await _conflicted_body(database, id)
        leaves = await _bodies(database, winner)
        if not leaves.conflicts:
            return Resolution(id, leaves.winner, removed, rewritten)
        chosen = _content(await _choose(choose, leaves), id)
        winner = leaves.winner
        if chosen != _content(winner, id):
            try:
                winner = await _write_winner(database, chosen, winner["_rev"])
            except ConflictError:
                winner = None
                continue
            rewritten = True
        losers = [body["_rev"] for body in leaves.conflicts]
        docs = [{"_id": id, "_rev": rev, "_deleted": True} for rev in losers]
        if _all_written(database, id, await database._bulk_docs(docs), len(docs)):
            return Resolution(id, winner, removed + losers, rewritten)
        removed += await _deleted(database, id, losers)
        winner = None
    raise too_many_conflicts(database, id, attempts, "resolve the conflicts of")


async def _deleted(database: Database, id: str, revs: list[str]) -> list[str]:
    """Those of ``revs`` that a deletion now follows directly: GET /{db}/{docid}?open_revs=
    [...]&latest=true&revs=true.

    The items of one ``_bulk_docs`` for one id cannot be told apart (pouchdb-server may
    reorder them), so after some met a conflict the revision tree tells which went.
    """
    deleted = []
    for result in await Document(database, id).open_revs(revs, latest=True, revs=True):
        parent = _parent(result.doc) if result.doc is not None and result.deleted else None
        if parent in revs and parent not in deleted:
            deleted.append(parent)
    return deleted


def _parent(body: JsonDict) -> str | None:
    """The revision ``body`` was written on, from its ``_revisions``; None if unknown."""
    revisions = body.get("_revisions")
    if not isinstance(revisions, dict):
        return None
    start, ids = revisions.get("start"), revisions.get("ids")
    if type(start) is not int or not isinstance(ids, list) or len(ids) < 2:
        return None
    return f"{start - 1}-{ids[1]}"


async def _write_winner(database: Database, chosen: JsonDict, rev: str) -> JsonDict:
    """PUT /{db}/{docid} with ``chosen`` on revision ``rev``; the body with its new ``_rev``.

    Raises ConflictError if ``rev`` is no longer the winning revision.
    """
    document = Document(database, chosen["_id"], data={**chosen, "_rev": rev})
    await document.save()
    return dict(document)


async def _choose(choose: ChooseFunction, leaves: ConflictingRevisions) -> JsonDict:
    """The body ``choose`` picks from copies of the leaves; TypeError or ValueError if it
    is not a body of this document."""
    chosen = choose(copy.deepcopy(leaves.revisions))
    if inspect.isawaitable(chosen):
        chosen = await chosen
    if not isinstance(chosen, dict):
        raise TypeError(
            f"The resolution of document {leaves.id!r} must return the winning body as a "
            f"dict, not {type(chosen).__name__}"
        )
    if chosen.get("_id", leaves.id) != leaves.id:
        raise ValueError(
            f"The resolution of document {leaves.id!r} returned a body of document "
            f"{chosen.get('_id')!r}"
        )
    return chosen


def _content(body: JsonDict, id: str) -> JsonDict:
    """``body`` as written back: its ``_id``, its fields, none of the fields a read adds."""
    content = {key: value for key, value in body.items() if key not in _READ_ONLY_FIELDS}
    content["_id"] = id
    return content


def _all_written(database: Database, id: str, items: list[JsonDict], sent: int) -> bool:
    """True if every item of a resolution's write is ok; False if any conflicted (or is
    missing); raises the error of an item that was refused otherwise."""
    for item in items:
        error = item.get("error")
        if error is not None and error != "conflict":
            raise error_for_response(
                _ITEM_ERROR_STATUS.get(str(error), 400),
                subject=f"document '{id}' in database '{database.id}'",
                reason=item.get("reason"),
                error=str(error),
                request_info=None,
            )
    return len(items) == sent and all("error" not in item for item in items)


async def resolve_all_conflicts(
    database: Database,
    choose: ChooseFunction,
    *,
    view: View | None = None,
    include_ddocs: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
) -> AsyncIterator[Resolution]:
    """Resolves the conflicts of every conflicted document, as :func:`resolve_conflicts`
    does; yields a :class:`Resolution` for each, as it goes.

    Streams GET /{db}/_all_docs?include_docs=true&conflicts=true, which reads every
    document (CouchDB cannot select the conflicted ones without an index). In a large
    database, give instead a ``view`` whose rows are the conflicted documents, from a
    design document such as ``{"views": {"conflicts": {"map": "function (doc) { if
    (doc._conflicts) { emit(null, null); } }"}}}``; then its rows are streamed (GET
    {view}) and each document listed is read as :func:`resolve_conflicts` reads it.
    Design documents are left alone unless ``include_ddocs``. Documents deleted, or
    resolved by someone else, meanwhile are skipped. Raises what
    :func:`resolve_conflicts` raises.
    """
    check_attempts(attempts)
    if view is None:
        async for row in database.all_docs.query(include_docs=True, conflicts=True):
            id, body = row.get("id"), row.get("doc")
            if isinstance(body, dict) and body.get("_conflicts") and _wanted(id, include_ddocs):
                resolution = await _resolved(database, id, choose, attempts, body)
                if resolution is not None:
                    yield resolution
        return
    async for id in view.ids():
        if _wanted(id, include_ddocs):
            resolution = await _resolved(database, id, choose, attempts, None)
            if resolution is not None:
                yield resolution


async def _resolved(
    database: Database, id: Any, choose: ChooseFunction, attempts: int, winner: JsonDict | None
) -> Resolution | None:
    """The resolution of document ``id`` (``winner``: its body read with ``conflicts=true``,
    if known); None if it had no conflicts left or is gone."""
    if not isinstance(id, str) or (winner is not None and winner.get("_id") != id):
        raise InvalidResponseError(
            f"Invalid answer listing the documents of database '{database.id}': a row's id "
            f"{id!r} is not the id of its document"
        )
    try:
        resolution = await _resolve(database, id, choose, attempts, winner)
    except NotFoundError:
        return None
    return resolution if resolution.removed or resolution.rewritten else None


def _wanted(id: Any, include_ddocs: bool) -> bool:
    """Whether document ``id`` is to be resolved: design documents only if asked."""
    return include_ddocs or not (isinstance(id, str) and id.startswith("_design/"))
