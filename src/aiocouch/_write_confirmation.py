"""Confirms an uncertain write: was it applied, although its answer was lost?

A write whose answer was lost (a reset, a time limit, a 502/503/504) may have been applied.
The client repeats it (see :mod:`aiocouch.retry`); if it was applied, the repeat gets 409.
Then the server's revision tree tells: the write was applied if a leaf revision of the
document is the one it would have made, a child of the revision the write was based on
(generation 1, or the child of a deletion, for a write without one) holding exactly the
content sent. Each function here returns that leaf's revision, or None: then the 409
stands (the leaf is someone else's, or the document changed again since).

Leaves come from ``GET /{db}/{docid}?open_revs=all&revs=true``, so a write that lost to a
concurrent one (a conflict) is found too, and so is a deletion, whose leaf a plain GET
hides.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import Counter
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Callable, TypeVar

from . import _paths
from ._body import StreamedBody, content_digest
from .exception import ConflictError, NotFoundError
from .retry import AttemptLog
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = [
    "attachment_deletion",
    "attachment_write",
    "bulk_writes",
    "confirm_conflict",
    "document_deletion",
    "document_write",
]

_T = TypeVar("_T")

_NOT_CONTENT = ("_id", "_rev", "_revisions")
_CONCURRENT_CHECKS = 8


async def confirm_conflict(
    conflict: ConflictError,
    attempt_log: AttemptLog,
    confirm: Callable[[], Awaitable[str | None]],
    confirmed: Callable[[str], _T],
) -> _T:
    """What a checked write (see :mod:`aiocouch.retry`) that got the 409 ``conflict``
    really did: ``confirmed(rev)`` if an attempt that may have been applied was (``confirm()``,
    one of the functions below, finds the revision it made), else raises ``conflict``.

    The write itself is sent with ``repetition=Repetition.CHECKED`` and ``attempt_log``;
    only a 409 calls this (a write that succeeds costs no wrapper and no coroutine).
    """
    if attempt_log.uncertain:
        rev = await confirm()
        if rev is not None:
            return confirmed(rev)
    raise conflict


async def document_write(
    remote: RemoteServer, path: str, sent: JsonDict, subject: str
) -> str | None:
    """The revision that the PUT (or POST) of ``sent`` to the document at ``path`` made.

    Sends GET /{db}/{docid}?open_revs=all&revs=true, and for a write without ``_rev``
    whose leaf has a parent, GET /{db}/{docid}?rev=<leaf>&revs_info=true (was the parent
    a deletion?).
    """
    base = sent.get("_rev")
    content = _content(sent)
    for leaf in await _leaves(remote, path, subject):
        if _content(leaf) != content:
            continue
        if _written_on(leaf, base):
            return str(leaf["_rev"])
        if base is None and await _follows_deletion(remote, path, leaf, subject):
            return str(leaf["_rev"])
    return None


async def document_deletion(remote: RemoteServer, path: str, rev: str, subject: str) -> str | None:
    """The revision that DELETE /{db}/{docid}?rev=``rev`` made (a deleted child of ``rev``).

    Sends GET /{db}/{docid}?open_revs=all&revs=true.
    """
    for leaf in await _leaves(remote, path, subject):
        if leaf.get("_deleted") is True and _written_on(leaf, rev):
            return str(leaf["_rev"])
    return None


async def attachment_write(
    remote: RemoteServer,
    document_path: str,
    name: str,
    rev: str | None,
    data: bytes | StreamedBody,
    content_type: str,
    subject: str,
) -> str | None:
    """The revision that PUT of attachment ``name`` (``data``) on ``rev`` made.

    A child of ``rev`` whose attachment was written in that revision with this length
    and content type, and this MD5 digest; a server that stores it compressed reports
    the digest of the compressed bytes, so then the MD5 of the stored bytes is compared
    instead (GET of the attachment at that revision, streamed). Sends GET
    /{db}/{docid}?open_revs=all&revs=true first. A streamed ``data`` is read again to
    learn its digest; one that cannot be read again was never repeated after a byte of
    it was sent, so no earlier attempt can have written it: None.
    """
    if isinstance(data, StreamedBody) and not data.repeatable:
        return None
    length, md5 = await content_digest(data)
    digest = "md5-" + base64.b64encode(md5).decode()
    for leaf in await _leaves(remote, document_path, subject):
        stub = (leaf.get("_attachments") or {}).get(name)
        if (
            leaf.get("_deleted")
            or not _written_on(leaf, rev)
            or not isinstance(stub, dict)
            or stub.get("revpos") != _generation(leaf)
            or stub.get("length") != length
            or stub.get("content_type") != content_type
        ):
            continue
        if stub.get("digest") == digest:
            return str(leaf["_rev"])
        path = f"{document_path}/{_paths.quote_segment(name)}"
        stored = hashlib.md5(usedforsecurity=False)
        async with remote._stream(path, params={"rev": leaf["_rev"]}, subject=subject) as pieces:
            async for piece in pieces:
                stored.update(piece)
        if stored.digest() == md5:
            return str(leaf["_rev"])
    return None


async def attachment_deletion(
    remote: RemoteServer, document_path: str, name: str, rev: str | None, subject: str
) -> str | None:
    """The revision that DELETE of attachment ``name`` on ``rev`` made: a child without it.

    Sends GET /{db}/{docid}?open_revs=all&revs=true.
    """
    for leaf in await _leaves(remote, document_path, subject):
        attachments = leaf.get("_attachments") or {}
        if not leaf.get("_deleted") and _written_on(leaf, rev) and name not in attachments:
            return str(leaf["_rev"])
    return None


async def bulk_writes(
    remote: RemoteServer, database: str, sent: Iterable[JsonDict], items: list[JsonDict]
) -> list[JsonDict]:
    """``items`` of a ``_bulk_docs`` answer, each conflict that was our write made an ok.

    Checks each document whose item is a conflict as :func:`document_write` does, a few
    at a time.
    """
    conflicts = {item.get("id") for item in items if item.get("error") == "conflict"}
    sent = list(sent)
    once = Counter(doc.get("_id") for doc in sent)
    # an id sent twice in one request conflicts with itself: which item is whose is unknown
    checked = [doc for doc in sent if doc.get("_id") in conflicts and once[doc.get("_id")] == 1]
    if not checked:
        return items
    slots = asyncio.Semaphore(_CONCURRENT_CHECKS)

    async def check(doc: JsonDict) -> tuple[str, str | None]:
        id = str(doc["_id"])
        async with slots:
            path = _paths.document_path(database, id)
            subject = f"document '{id}' in database '{database}'"
            return id, await document_write(remote, path, doc, subject)

    confirmed = {
        id: rev for id, rev in await asyncio.gather(*map(check, checked)) if rev is not None
    }
    return [
        {"ok": True, "id": item["id"], "rev": confirmed[item["id"]]}
        if item.get("error") == "conflict" and item.get("id") in confirmed
        else item
        for item in items
    ]


async def _leaves(remote: RemoteServer, path: str, subject: str) -> list[JsonDict]:
    """Every leaf revision of the document, deleted ones included, with its ancestry."""
    try:
        _, answer = await remote._request(
            "GET",
            path,
            params={"open_revs": "all", "revs": True, **remote._quorum._read()},
            subject=subject,
        )
    except NotFoundError:
        return []
    if not isinstance(answer, list):
        return []
    return [entry["ok"] for entry in answer if isinstance(entry, dict) and "ok" in entry]


async def _follows_deletion(remote: RemoteServer, path: str, leaf: JsonDict, subject: str) -> bool:
    """Whether ``leaf``'s parent is a deleted revision (a write without ``_rev`` on a
    deleted document).

    Sends GET /{db}/{docid}?rev=<leaf>&revs_info=true: CouchDB's revision tree says
    "deleted", also after compaction dropped the old bodies; a server that says
    "available" instead (pouchdb-server) is asked for the parent itself, GET ?rev=<parent>.
    """
    parent = _parent(leaf)
    if parent is None:
        return False
    _, document = await remote._request(
        "GET", path, params={"rev": leaf["_rev"], "revs_info": True}, subject=subject
    )
    status = next(
        (
            info.get("status")
            for info in document.get("_revs_info") or ()
            if info.get("rev") == parent
        ),
        None,
    )
    if status != "available":
        return status == "deleted"
    _, parent_document = await remote._request("GET", path, params={"rev": parent}, subject=subject)
    return parent_document.get("_deleted") is True


def _content(document: JsonDict) -> JsonDict:
    """What a write stores: the document without its id and revision fields."""
    content = {key: value for key, value in document.items() if key not in _NOT_CONTENT}
    if not content.get("_deleted"):
        content.pop("_deleted", None)
    return content


def _generation(leaf: JsonDict) -> int | None:
    revisions = leaf.get("_revisions")
    start = revisions.get("start") if isinstance(revisions, dict) else None
    return start if isinstance(start, int) else None


def _parent(leaf: JsonDict) -> str | None:
    """The revision ``leaf`` was written on, from its ``_revisions``; None if none or unknown."""
    generation = _generation(leaf)
    ids = leaf["_revisions"].get("ids") if generation is not None else None
    if generation is None or generation < 2 or not isinstance(ids, list) or len(ids) < 2:
        return None
    return f"{generation - 1}-{ids[1]}"


def _written_on(leaf: JsonDict, base: str | None) -> bool:
    """Whether ``leaf`` was written on revision ``base`` (None: as a new document)."""
    if base is None:
        return _generation(leaf) == 1
    return _parent(leaf) == base
