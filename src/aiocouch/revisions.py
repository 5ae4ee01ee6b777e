"""Revisions: documents read and written revision by revision, as replication does.

CouchDB keeps a tree of revisions for each document. These calls reach it directly:
``_bulk_get`` (many revisions in one streamed request), ``_revs_diff`` and
``_missing_revs`` (which revisions a database lacks), ``open_revs`` (the leaves of one
document), ``revs_info`` and ``revs`` (a revision's ancestry), and writes with
``new_edits=false`` (a revision stored as it is, with its history, as replication copies
it). :class:`~aiocouch.database.Database` and :class:`~aiocouch.document.Document` have
the methods; their results are typed here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _json, _paths
from ._answers import AnswerShape, is_document, kind_of
from ._remote_revisions import RemoteRevisions
from .typing import JsonDict

if TYPE_CHECKING:
    from .document import Document

__all__ = ["RevisionInfo", "RevisionResult", "Revisions", "RevsDiff"]


@dataclass(frozen=True)
class RevisionResult:
    """One revision of a document as read, or why it could not be read.

    ``doc`` holds the revision's body (``_id``, ``_rev``, ``_deleted`` for a deletion,
    ``_revisions`` when asked for); else ``error`` and ``reason`` say what is wrong
    (``"not_found"``/``"missing"`` for a revision or document the server lacks). ``rev``
    is the body's revision, or the revision asked for (None: the current one).
    """

    id: str
    rev: str | None
    doc: JsonDict | None = None
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True if the revision was read (``doc`` holds it)."""
        return self.doc is not None

    @property
    def deleted(self) -> bool:
        """True if the revision read is a deletion."""
        return self.doc is not None and self.doc.get("_deleted") is True


@dataclass(frozen=True)
class RevisionInfo:
    """A revision of a document's history and whether its body is still stored.

    ``status``: ``"available"``, ``"deleted"`` (a deletion) or ``"missing"`` (compacted
    away, or never copied here).
    """

    rev: str
    status: str


@dataclass(frozen=True)
class RevsDiff:
    """The revisions of one document that a database lacks, from ``_revs_diff``.

    ``possible_ancestors``: revisions it has that may be ancestors of the missing ones
    (CouchDB; pouchdb-server sends none).
    """

    missing: list[str]
    possible_ancestors: list[str] = field(default_factory=list)


class Revisions(RemoteRevisions):
    """The revision-level calls of a database (``Database`` delegates to them)."""

    def bulk_get(
        self, docs: Iterable[str | Mapping[str, Any]], *, revs: bool = False, **params: Any
    ) -> AsyncIterator[RevisionResult]:
        """Many documents or revisions in one request, streamed: POST /{db}/_bulk_get.

        ``docs``: ids (the current revision) or ``{"id": id, "rev": rev}`` objects (also
        ``atts_since``). ``revs=True`` adds each body's ``_revisions``; ``params`` go to
        the query as given (``latest``, ``attachments``). The results come in the order
        asked for, at least one for each (every leaf with ``latest=True``), a document or
        a per-item error, never left out: a result missing or answering another document
        raises InvalidResponseError when it is reached. ``docs`` empty sends nothing.
        Raises TypeError or ValueError (before any request) for a request that is not an
        id or such an object.
        """
        requests = [_bulk_get_request(item) for item in docs]
        if not requests:
            return _no_results()
        return self._bulk_get(requests, {"revs": True if revs else None, **params})

    async def _bulk_get(
        self, requests: list[JsonDict], params: Mapping[str, Any]
    ) -> AsyncIterator[RevisionResult]:
        stream = self._bulk_get_rows(requests, params)
        answered = 0
        async for batch in stream.batches():
            for row, _ in batch:
                try:
                    results = _bulk_get_results(row, requests, answered)
                except ValueError as exc:
                    raise stream.invalid(exc) from exc
                answered += 1
                for result in results:
                    yield result
        if answered < len(requests):
            problem = f"the answer holds {answered} results for {len(requests)} requests"
            raise stream.invalid(ValueError(problem))

    async def revs_diff(self, revs: Mapping[str, Iterable[str]]) -> dict[str, RevsDiff]:
        """The revisions the database lacks: POST /{db}/_revs_diff with ``{docid: [revs]}``.

        Only documents lacking some of their revisions are in the result. ``revs`` empty
        sends nothing. Raises TypeError (no request) for ids or revisions that are not str.
        """
        body = _revs_by_id(revs)
        if not body:
            return {}
        answer = await self._revs_diff(body)
        return {
            id: RevsDiff(list(entry["missing"]), list(entry.get("possible_ancestors", [])))
            for id, entry in answer.items()
        }

    async def missing_revs(self, revs: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        """The revisions the database lacks: POST /{db}/_missing_revs with ``{docid: [revs]}``.

        Only documents lacking some of their revisions are in the result. ``revs`` empty
        sends nothing. Raises TypeError (no request) for ids or revisions that are not str.
        """
        body = _revs_by_id(revs)
        if not body:
            return {}
        answer = await self._missing_revs(body)
        return {id: list(missing) for id, missing in answer["missing_revs"].items()}

    async def save_revision(self, doc: Mapping[str, Any]) -> JsonDict:
        """Stores ``doc`` as the revision its ``_rev`` names: PUT /{db}/{docid}?new_edits=false.

        The revision is added to the document's tree as it is (with the ancestry in
        ``_revisions``, if given), as replication does; a conflicting branch may result.
        Returns ``{"ok": True, "id": ..., "rev": ...}``. Raises ValueError or TypeError (no
        request) if ``doc`` lacks a str ``_id`` or ``_rev``, ForbiddenError or
        UnauthorizedError when a validation function refuses it.
        """
        body = _revision_body(doc)
        _, answer = await self._put_revision(body)
        return dict(answer) if answer else {"ok": True, "id": body["_id"], "rev": body["_rev"]}

    async def save_revisions(self, docs: Iterable[Mapping[str, Any]]) -> list[JsonDict]:
        """Stores each document as the revision its ``_rev`` names: POST /{db}/_bulk_docs
        with ``new_edits: false``.

        Returns the server's items for the documents it refused (``id``, ``error``,
        ``reason``; CouchDB adds ``rev``); ``[]`` when it stored them all. ``docs`` empty
        sends nothing. Raises ValueError or TypeError (no request) if a document lacks a
        str ``_id`` or ``_rev``.
        """
        bodies = [_revision_body(doc) for doc in docs]
        if not bodies:
            return []
        return await self._database._bulk_docs(bodies, new_edits=False)


async def open_revs(
    document: Document, which: Sequence[str] | str, params: Mapping[str, Any]
) -> list[RevisionResult]:
    """The revisions ``which`` names (``"all"``: the leaves) of ``document`` (see
    :meth:`Document.open_revs <aiocouch.document.Document.open_revs>`)."""
    if isinstance(which, str):
        if which != "all":
            raise ValueError(f"open_revs must be 'all' or a list of revisions, not {which!r}")
        value = which
    else:
        value = _json.dumps(_revision_list(which, "open_revs")).decode()
    answer = await document._read({**params, "open_revs": value}, _OPEN_REVS)
    return [_revision_result(document._server_id, entry) for entry in answer]


async def revs_info(document: Document, rev: str | None) -> list[RevisionInfo]:
    """The history of ``document``'s revision ``rev`` (None: the current one), newest first,
    with the status of each: GET /{db}/{docid}?revs_info=true[&rev=]."""
    answer = await document._read({"revs_info": True, "rev": rev}, _REVS_INFO)
    return [RevisionInfo(info["rev"], info["status"]) for info in answer["_revs_info"]]


async def revision_history(document: Document, rev: str | None) -> list[str]:
    """The ancestry of ``document``'s revision ``rev`` (None: the current one), newest
    first: GET /{db}/{docid}?revs=true[&rev=]."""
    answer = await document._read({"revs": True, "rev": rev}, _REVISIONS)
    start, ids = answer["_revisions"]["start"], answer["_revisions"]["ids"]
    return [f"{start - generation}-{id}" for generation, id in enumerate(ids)]


def _is_revision_entry(entry: Any) -> bool:
    """``{"ok": document}`` or ``{"missing": rev}``, as ``open_revs`` answers."""
    if not isinstance(entry, dict):
        return False
    if "ok" in entry:
        return is_document(entry["ok"]) and isinstance(entry["ok"].get("_rev"), str)
    return isinstance(entry.get("missing"), str)


def _is_revs_info(value: Any) -> bool:
    infos = value.get("_revs_info") if isinstance(value, dict) else None
    return isinstance(infos, list) and all(
        isinstance(info, dict)
        and isinstance(info.get("rev"), str)
        and isinstance(info.get("status"), str)
        for info in infos
    )


def _is_revisions(value: Any) -> bool:
    revisions = value.get("_revisions") if isinstance(value, dict) else None
    return (
        isinstance(revisions, dict)
        and type(revisions.get("start")) is int
        and isinstance(revisions.get("ids"), list)
        and all(isinstance(id, str) for id in revisions["ids"])
    )


_OPEN_REVS = AnswerShape(
    "a JSON array of {'ok': document} and {'missing': revision} objects",
    lambda value: isinstance(value, list) and all(map(_is_revision_entry, value)),
)
_REVS_INFO = AnswerShape(
    "a document with a '_revs_info' list of {'rev', 'status'} objects", _is_revs_info
)
_REVISIONS = AnswerShape(
    "a document with '_revisions' ({'start': number, 'ids': [...]})", _is_revisions
)


def _revision_result(id: str, entry: Any) -> RevisionResult:
    """The result of one answer of ``_bulk_get`` or ``open_revs`` for document ``id``.

    Raises ValueError for an answer that is neither ``{"ok": document}``, ``{"error":
    {...}}`` nor ``{"missing": rev}`` (which open_revs answers for a revision it lacks).
    """
    if not isinstance(entry, dict):
        raise ValueError(f"an answer for document {id!r} is {kind_of(entry)}, not an object")
    if "ok" in entry:
        doc = entry["ok"]
        if not is_document(doc) or doc["_id"] != id or not isinstance(doc.get("_rev"), str):
            raise ValueError(f"the 'ok' answer for document {id!r} is not a revision of it")
        return RevisionResult(id, doc["_rev"], doc=doc)
    if "error" in entry:
        error = entry["error"]
        if not isinstance(error, dict) or not isinstance(error.get("error"), str):
            raise ValueError(f"the 'error' answer for document {id!r} is not a CouchDB error")
        rev, reason = error.get("rev"), error.get("reason")
        return RevisionResult(
            id,
            # CouchDB writes "undefined" where no revision was asked for.
            rev if isinstance(rev, str) and rev != "undefined" else None,
            error=error["error"],
            reason=reason if isinstance(reason, str) else None,
        )
    if isinstance(entry.get("missing"), str):
        return RevisionResult(id, entry["missing"], error="not_found", reason="missing")
    raise ValueError(f"an answer for document {id!r} holds no 'ok', 'error' or 'missing'")


def _bulk_get_results(row: Any, requests: list[JsonDict], index: int) -> list[RevisionResult]:
    """The results in ``row``, the answer to ``requests[index]``; ValueError if it is not."""
    if index >= len(requests):
        raise ValueError(f"the answer holds more results than the {len(requests)} requests")
    asked = requests[index]["id"]
    if row.get("id") != asked:
        raise ValueError(f"result {index} is for {row.get('id')!r}, not for {asked!r} asked there")
    entries = row.get("docs")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"result {index} (document {asked!r}) has no 'docs' answers")
    return [_revision_result(asked, entry) for entry in entries]


def _bulk_get_request(item: str | Mapping[str, Any]) -> JsonDict:
    """The ``_bulk_get`` request for an id or an ``{"id", "rev", ...}`` object."""
    if isinstance(item, str):
        return {"id": _paths.validate_document_id(item)}
    if not isinstance(item, Mapping):
        raise TypeError(
            f"A _bulk_get request must be an id or a mapping, not {type(item).__name__}"
        )
    _paths.validate_document_id(item.get("id"))
    rev = item.get("rev")
    if rev is not None and not isinstance(rev, str):
        raise TypeError(f"The rev of a _bulk_get request must be a str, not {type(rev).__name__}")
    return dict(item)


def _revs_by_id(revs: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """``{docid: [revs]}`` checked: str ids, each with a list of str revisions."""
    if not isinstance(revs, Mapping):
        raise TypeError(f"revs must map document ids to revisions, not {type(revs).__name__}")
    return {
        _paths.validate_document_id(id): _revision_list(id_revs, f"the revisions of {id!r}")
        for id, id_revs in revs.items()
    }


def _revision_list(revs: Iterable[str], what: str) -> list[str]:
    if isinstance(revs, (str, bytes)) or not isinstance(revs, Iterable):
        raise TypeError(f"{what} must be a list of revisions, not {type(revs).__name__}")
    listed = list(revs)
    for rev in listed:
        if not isinstance(rev, str):
            raise TypeError(f"{what} must be str revisions, not {type(rev).__name__}")
    return listed


def _revision_body(doc: Mapping[str, Any]) -> JsonDict:
    """``doc`` as a dict, if it names its id and revision (as a write without new edits must)."""
    if not isinstance(doc, Mapping):
        raise TypeError(f"A document must be a mapping, not {type(doc).__name__}")
    _paths.check_document_id(_paths.validate_document_id(doc.get("_id")))
    if not isinstance(doc.get("_rev"), str):
        raise ValueError(f"The document {doc.get('_id')!r} must have a '_rev' to store as is")
    return dict(doc)


async def _no_results() -> AsyncIterator[RevisionResult]:
    """An async iterator that yields nothing (and sends nothing)."""
    nothing: tuple[RevisionResult, ...] = ()
    for result in nothing:
        yield result
