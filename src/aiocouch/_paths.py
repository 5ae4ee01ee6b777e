"""Quoting of path segments and validation of database names and document ids.

Every segment is percent-encoded with nothing left safe, dot segments included, so that
an id such as ``a/b``, ``..`` or ``100%`` addresses exactly that document.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

__all__ = [
    "attachment_path",
    "database_path",
    "document_path",
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
    """Returns ``doc_id`` if it is a non-empty str, else raises TypeError or ValueError."""
    if not isinstance(doc_id, str):
        raise TypeError(f"A document id must be a str, not {type(doc_id).__name__}")
    if not doc_id:
        raise ValueError("A document id must not be empty")
    return doc_id


@functools.lru_cache(maxsize=1024)
def database_path(name: str) -> str:
    """``/{db}`` with the name quoted."""
    return "/" + quote_segment(name)


def document_path(database: str, doc_id: str) -> str:
    """``/{db}/{id}``; ``_design/`` and ``_local/`` ids keep their prefix as a segment."""
    for prefix in _PREFIXED_IDS:
        if doc_id.startswith(prefix) and len(doc_id) > len(prefix):
            return f"{database_path(database)}/{prefix}{quote_segment(doc_id[len(prefix) :])}"
    return f"{database_path(database)}/{quote_segment(doc_id)}"


def attachment_path(database: str, doc_id: str, name: str) -> str:
    """``/{db}/{id}/{attachment}`` with every part quoted."""
    return f"{document_path(database, doc_id)}/{quote_segment(name)}"
