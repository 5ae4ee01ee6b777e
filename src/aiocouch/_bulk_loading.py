"""The documents a bulk update starts with, read in one request: POST /{db}/_bulk_get.

CouchDB sends the answer of ``_bulk_get`` as one sized body (``_all_docs`` with keys comes
one row per chunk), so it is read whole and decoded once, and no row is kept beyond the
document it holds. The documents come in the order of the ids asked for, whatever order
the answer has; a missing or deleted document raises NotFoundError as ``db.docs(ids)``
does, or becomes a new local document with ``create``.
"""

from __future__ import annotations

from itertools import repeat
from operator import contains, itemgetter
from typing import TYPE_CHECKING, Any

from . import _json
from ._answers import UnexpectedAnswer, decode_json
from ._transport import JSON_CONTENT_TYPE
from .document import Document
from .exception import NotFoundError
from .retry import Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database

__all__ = ["load_documents"]

_ID, _DOCS = itemgetter("id"), itemgetter("docs")


async def load_documents(database: Database, ids: list[str], *, create: bool) -> list[Document]:
    """The documents ``ids`` (distinct, each a valid document id), in their order.

    Sends POST /{db}/_bulk_get, repeated as a read. Raises NotFoundError for the first
    id without a document unless ``create``; InvalidResponseError for an answer that does
    not give one result of a document for each id.
    """
    http = database._remote._http
    path = f"{database.endpoint}/_bulk_get"
    subject = f"_bulk_get in database '{database.id}'"
    raw = await http.request(
        "POST",
        path,
        data=_request_body(ids),
        headers=JSON_CONTENT_TYPE,
        subject=subject,
        # (the limits of a stream, as the rows of _all_docs had: a big answer takes its time)
        timeout=http.stream_limits(),
        repetition=Repetition.SAFE,
    )
    try:
        answer = decode_json(raw.body, headers=raw.headers, allow_empty=False, expect=None)
        found = _found_documents(answer, ids)
    except (UnexpectedAnswer, ValueError) as exc:
        raise http.invalid_answer(
            str(exc),
            "POST",
            path,
            None,
            JSON_CONTENT_TYPE,
            subject,
            status=raw.status,
            response_headers=raw.headers,
        ) from exc
    if None not in found:
        return Document._from_server_each(database, found)  # type: ignore[arg-type]
    loaded = iter(Document._from_server_each(database, [doc for doc in found if doc is not None]))
    documents = []
    for id, doc in zip(ids, found):
        if doc is not None:
            documents.append(next(loaded))
        elif create:
            documents.append(Document._unchecked(database, id, None))
        else:
            raise NotFoundError(
                f"The document '{id}' does not exist in the database {database.id}."
            )
    return documents


def _request_body(ids: list[str]) -> bytes:
    """``{"docs":[{"id":ID},...]}`` for ``ids`` (at least one).

    Made from their JSON array, without a dict per id, when no id holds a comma or
    anything escaped (a quote among them): then ``","`` occurs only between two ids.
    """
    listed = _json.dumps(ids)
    if b"\\" in listed or listed.count(b",") != len(ids) - 1:
        return _json.dumps({"docs": [{"id": id} for id in ids]})
    return b'{"docs":[{"id":' + listed[1:-1].replace(b'","', b'"},{"id":"') + b"}]}"


def _found_documents(answer: Any, ids: list[str]) -> list[JsonDict | None]:
    """The document of each of ``ids`` in the ``_bulk_get`` ``answer`` (None: missing or
    deleted). Raises ValueError for an answer without exactly one result per id."""
    results = answer.get("results") if type(answer) is dict else None
    if type(results) is not list or len(results) != len(ids):
        raise ValueError(f"expected 'results' with {len(ids)} results, one for each id")
    try:
        if list(map(_ID, results)) != ids:
            # (pouchdb-server groups the results; CouchDB keeps the order asked for)
            by_id = {result["id"]: result for result in results}
            results = [by_id[id] for id in ids]
        entries = list(map(_DOCS, results))
    except (KeyError, TypeError) as exc:
        raise ValueError("a result is not an object with the 'id' and 'docs' asked for") from exc
    docs = _documents_only(entries, ids)
    if docs is not None:
        return docs  # type: ignore[return-value]
    return [_winner(id, docs) for id, docs in zip(ids, entries)]


def _winner(id: str, entries: Any) -> JsonDict | None:
    """The winning revision among the leaves one ``_bulk_get`` result holds for ``id``
    (None: missing or deleted). Raises ValueError for a result without them.

    Asked without a rev, CouchDB answers as if for ``open_revs=all``: one ``{"ok": leaf}``
    per leaf, so a conflicted document comes with all its leaves, and the winner is the one
    CouchDB's own rule picks (a live leaf before a deleted one, then the highest generation,
    then the highest revision id).
    """
    if type(entries) is not list or not entries:
        raise ValueError(f"the result for {id!r} holds no document and no error")
    leaves = []
    for entry in entries:
        doc = entry.get("ok") if type(entry) is dict else None
        if type(doc) is dict and doc.get("_id") == id and type(doc.get("_rev")) is str:
            leaves.append(doc)
        elif type(entry) is dict and (not entry or "error" in entry) and len(entries) == 1:
            # (CouchDB names a missing document in an "error"; pouchdb-server sends {}
            # for a missing or deleted one)
            return None
        else:
            raise ValueError(f"the result for {id!r} holds no document and no error")
    live = [doc for doc in leaves if doc.get("_deleted") is not True]
    return max(live, key=_revision_order) if live else None


def _revision_order(doc: JsonDict) -> tuple[int, str]:
    generation, _, revision_id = doc["_rev"].partition("-")
    if not generation.isdigit():
        raise ValueError(f"the revision {doc['_rev']!r} of {doc['_id']!r} is malformed")
    return int(generation), revision_id


def _documents_only(entries: list[Any], ids: list[str]) -> list[JsonDict] | None:
    """The documents of the common answer, one ``{"ok": document}`` for each of ``ids``,
    none deleted, checked a column at a time; None for any other (looked at one by one)."""
    try:
        if set(map(len, entries)) != {1}:
            return None
        docs = [entry[0]["ok"] for entry in entries]
    except (KeyError, TypeError):
        return None
    if set(map(type, docs)) != {dict} or list(map(dict.get, docs, repeat("_id"))) != ids:
        return None
    revs = map(dict.get, docs, repeat("_rev"))
    if set(map(type, revs)) != {str} or any(map(contains, docs, repeat("_deleted"))):
        return None
    return docs
