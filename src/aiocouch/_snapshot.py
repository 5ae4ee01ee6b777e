"""The synced state of a document, kept compactly for change detection.

A document is dirty when its data differs from what the server last confirmed. The
state is kept as the canonical JSON of the data without ``_rev`` (plus the revision on
its own), so that a write can reuse those bytes as its body and as the new state, and a
new revision needs no re-encoding.
"""

from __future__ import annotations

from typing import Any

from . import _json
from .typing import JsonDict

__all__ = ["compact", "encode_without_rev", "with_rev"]


def encode_without_rev(data: JsonDict) -> bytes:
    """The canonical JSON of ``data`` without its top-level ``_rev``, compactly stored."""
    if "_rev" in data:
        data = {key: value for key, value in data.items() if key != "_rev"}
    return compact(_json.dumps_canonical(data))


def with_rev(encoded: bytes, rev: Any) -> bytes:
    """``encoded`` (a JSON object without ``_rev``) with ``"_rev": rev`` added."""
    field = b'"_rev":' + _json.dumps(rev)
    if encoded == b"{}":
        return b"{" + field + b"}"
    return b"{" + field + b"," + encoded[1:]


def compact(encoded: bytes) -> bytes:
    """A copy of ``encoded`` in an allocation of its own size.

    orjson's result may sit in a buffer of several kilobytes; kept for every document,
    that would cost about 4 KB each.
    """
    return bytes(memoryview(encoded))
