"""Quoting of path segments and validation of database names, document ids and
attachment names.

Every segment is percent-encoded with nothing left safe, dot segments included, so that
an id such as ``a/b``, ``..`` or ``100%`` addresses exactly that document. A path is
built only for names CouchDB accepts (couch_doc:validate_docid, chttpd_db,
couch_db:validate_dbname): any other raises BadRequestError before a request is sent,
since such a path would either be refused or address another resource (``_all_docs``,
``_security``, the document instead of its attachment ``""``).
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

from .exception import BadRequestError

__all__ = [
    "attachment_path",
    "attachment_segment",
    "check_document_id",
    "copy_destination",
    "database_path",
    "document_path",
    "document_segments",
    "partition_path",
    "quote_segment",
    "validate_database_name",
    "validate_document_id",
]

_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}
# Unreserved characters only, and not made of dots alone: the segment is its own quoting.
_NOTHING_TO_QUOTE = re.compile(r"(?=[A-Za-z0-9_~.-]*[A-Za-z0-9_~-])[A-Za-z0-9_~.-]+\Z")
# CouchDB keeps these prefixes as real path segments (it redirects "_design%2Fx").
_PREFIXED_IDS = ("_design/", "_local/")
_DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
_SYSTEM_DATABASES = frozenset({"_users", "_replicator", "_global_changes", "_nodes", "_dbs"})
_PREFIXABLE_SYSTEM_DATABASES = ("/_users", "/_replicator")
# CouchDB reads what follows "?" in a COPY Destination as the target's revision.
_DESTINATION_REVISION = re.compile(r"rev=\d+-[^?=]+\Z")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def quote_segment(segment: str) -> str:
    """Percent-encodes one path segment; ``/`` becomes ``%2F`` and ``..`` ``%2E%2E``."""
    if _NOTHING_TO_QUOTE.match(segment):
        return segment
    return _DOT_SEGMENTS.get(segment) or quote(segment, safe="")


def validate_database_name(name: object) -> str:
    """Returns ``name`` if CouchDB accepts it as a database name, else raises ValueError."""
    if not isinstance(name, str):
        raise TypeError(f"A database name must be a str, not {type(name).__name__}")
    if name in _SYSTEM_DATABASES or _DATABASE_NAME.match(name):
        return name
    for suffix in _PREFIXABLE_SYSTEM_DATABASES:
        if name.endswith(suffix) and _DATABASE_NAME.match(name[: -len(suffix)]):
            return name
    raise ValueError(
        f"Invalid database name {name!r}: it must start with a lowercase letter and contain "
        "only lowercase letters, digits and _ $ ( ) + - /"
    )


def validate_document_id(doc_id: object) -> str:
    """Returns ``doc_id`` if it is a non-empty str of Unicode text, else raises TypeError,
    ValueError or (a lone surrogate, which has no UTF-8 form) BadRequestError."""
    if not isinstance(doc_id, str):
        raise TypeError(f"A document id must be a str, not {type(doc_id).__name__}")
    if not doc_id:
        raise ValueError("A document id must not be empty")
    if not doc_id.isascii():
        _require_unicode("document id", doc_id, "illegal_docid")
    return doc_id


def check_document_id(doc_id: str) -> str:
    """Returns ``doc_id`` if CouchDB stores a document under it, else raises BadRequestError.

    CouchDB refuses ids that start with ``_`` other than ``_design/<name>`` and
    ``_local/<name>``, and ids that are not valid Unicode (a lone surrogate).
    """
    if not doc_id:
        raise BadRequestError("Invalid document id '': it must not be empty", error="illegal_docid")
    if doc_id[0] == "_" and _reserved_prefix(doc_id) is None:
        raise BadRequestError(
            f"Invalid document id {doc_id!r}: only _design/<name> and _local/<name> ids may "
            "start with '_'",
            error="illegal_docid",
        )
    if not doc_id.isascii():
        _require_unicode("document id", doc_id, "illegal_docid")
    return doc_id


def copy_destination(destination: str) -> str:
    """The ``Destination`` header of a COPY to ``destination``, checked.

    ``destination`` is the target id, optionally followed by ``?rev=<rev>`` of an
    existing target (as in aiocouch 4.0.1). CouchDB takes the header's bytes as the id
    and reads anything after ``?`` as a revision, refuses absolute URLs, and a header
    value can hold neither control characters nor leading or trailing whitespace: each
    raises BadRequestError (or ValueError, TypeError for what is no id at all).
    """
    validate_document_id(destination)
    doc_id, question_mark, revision = destination.partition("?")
    problem = None
    if question_mark and not _DESTINATION_REVISION.match(revision):
        problem = "CouchDB reads what follows '?' as the target's revision ('?rev=1-abc')"
    elif destination.startswith(("http://", "https://")):
        problem = "CouchDB refuses absolute URLs"
    elif _CONTROL_CHARACTERS.search(destination):
        problem = "a header cannot carry control characters"
    elif destination != destination.strip(" \t"):
        problem = "a header value loses its leading and trailing whitespace"
    if problem is not None:
        raise BadRequestError(f"Invalid COPY destination {destination!r}: {problem}")
    check_document_id(doc_id)
    return destination


@functools.lru_cache(maxsize=1024)
def database_path(name: str) -> str:
    """``/{db}`` with the name quoted; BadRequestError for a name CouchDB refuses."""
    try:
        validate_database_name(name)
    except ValueError as exc:
        raise BadRequestError(str(exc), error="illegal_database_name") from None
    return "/" + quote_segment(name)


def document_path(database: str, doc_id: str) -> str:
    """``/{db}/{id}``; ``_design/`` and ``_local/`` ids keep their prefix as a segment.

    Raises BadRequestError for an id CouchDB refuses (see :func:`check_document_id`).
    """
    segments = document_segments(doc_id)
    return f"{database_path(database)}/{segments}"


def document_segments(doc_id: str) -> str:
    """The id as it stands in a path: quoted, a ``_design/`` or ``_local/`` prefix kept.

    Raises BadRequestError for an id CouchDB refuses (see :func:`check_document_id`).
    """
    if doc_id[:1] != "_" and _NOTHING_TO_QUOTE.match(doc_id):
        return doc_id  # (the common id: not empty, no prefix, ASCII, its own quoting)
    check_document_id(doc_id)
    prefix = _reserved_prefix(doc_id)
    if prefix is not None:
        return prefix + quote_segment(doc_id[len(prefix) :])
    return quote_segment(doc_id)


def attachment_path(database: str, doc_id: str, name: str) -> str:
    """``/{db}/{id}/{attachment}`` with every part quoted.

    Raises BadRequestError for a name CouchDB refuses (empty, which would address the
    document itself, or starting with ``_``) and for a ``_local`` document, which takes
    no attachments.
    """
    return f"{document_path(database, doc_id)}/{attachment_segment(doc_id, name)}"


def attachment_segment(doc_id: str, name: str) -> str:
    """The quoted attachment name, the path segment after its document's path.

    Raises BadRequestError as :func:`attachment_path` does.
    """
    if doc_id.startswith("_local/"):
        raise BadRequestError(
            f"The _local document {doc_id!r} cannot have attachment {name!r}: _local "
            "documents do not accept attachments"
        )
    if not name or name[0] == "_":
        raise BadRequestError(
            f"Invalid attachment name {name!r}: it must not be empty or start with '_'"
        )
    if not name.isascii():
        _require_unicode("attachment name", name, "bad_request")
    return quote_segment(name)


def partition_path(database: str, partition: object) -> str:
    """``/{db}/_partition/{partition}``; the name checked as CouchDB checks it.

    A partition name is the part of a document id before its first ``:``: raises
    TypeError if it is not a str, BadRequestError if it is empty, starts with ``_``, holds
    a ``:`` or is not Unicode text (CouchDB's couch_partition:validate_partition).
    """
    if not isinstance(partition, str):
        raise TypeError(f"A partition name must be a str, not {type(partition).__name__}")
    problem = None
    if not partition:
        problem = "it must not be empty"
    elif partition[0] == "_":
        problem = "it must not start with '_'"
    elif ":" in partition:
        problem = "it is the part of a document id before the ':', so it holds no ':'"
    if problem is not None:
        raise BadRequestError(
            f"Invalid partition name {partition!r}: {problem}", error="illegal_partition"
        )
    if not partition.isascii():
        _require_unicode("partition name", partition, "illegal_partition")
    return f"{database_path(database)}/_partition/{quote_segment(partition)}"


def _reserved_prefix(doc_id: str) -> str | None:
    """``_design/`` or ``_local/`` if ``doc_id`` is such an id with a name, else None."""
    for prefix in _PREFIXED_IDS:
        if doc_id.startswith(prefix) and len(doc_id) > len(prefix):
            return prefix
    return None


def _require_unicode(what: str, value: str, error: str) -> None:
    """Raises BadRequestError if ``value`` holds a lone surrogate (it has no UTF-8 form)."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise BadRequestError(
            f"Invalid {what} {value!r}: a lone surrogate at position {exc.start} is not "
            "Unicode text",
            error=error,
        ) from None
