"""The synced state of a document, kept compactly for change detection.

A document is dirty when its data differs from what the server last confirmed, compared
as the canonical JSON (sorted keys) of the data without ``_rev``, plus the revision on its
own. The state is kept as JSON text, the server's (as it arrived) or the body last sent,
and decoded only when a check needs it: iterating or saving many documents then costs
no encoding beyond the request body. The check compares the plain encodings first (equal
bytes mean equal data; a different length means a different canonical form too), then
the values decoded from both (different values mean different data), and sorts keys only
for equal values, which may still differ as JSON (``1`` and ``1.0``). A state taken as
the canonical JSON of the data itself (key :data:`CANONICAL`, as a bulk read keeps it) is
compared with the data's encoding without decoding it: another length means other data,
and otherwise the data is encoded canonically too (for many documents at once, in one
call). A text that is byte for byte this client's encoding of the data (but for blanks
after it), at the data's revision, is unchanged without decoding. The text is
decoded without looking for integers beyond 64 bits again where the result shows that it
held none.
"""

from __future__ import annotations

from itertools import compress, count
from operator import eq, ne, not_, or_
from typing import Any

from . import _json
from .typing import JsonDict

__all__ = [
    "CANONICAL",
    "BatchState",
    "changed",
    "changed_canonical",
    "compact",
    "encode",
    "encode_each",
    "encode_each_canonical",
    "encode_without_rev",
]

CANONICAL = ""
"""The key of a state whose text is the canonical JSON (sorted keys, :func:`encode_each_canonical`)
of the synced data, revision included (no field is ever called so: the other keys name a
field of a server's answer)."""


class BatchState:
    """The synced state of the new documents one ``_bulk_docs`` request saved: its body,
    ``{"docs": [...]}``, shared by them all (the state of each is its index there).

    Split into each document's own text only when a change check needs one (then all at
    once): a bulk creation encodes its documents once, as the request body, and keeps
    no copy of each.
    """

    __slots__ = ("_body", "_pieces")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._pieces: list[bytes] | None = None

    def piece(self, index: int) -> bytes:
        """The JSON of the ``index``-th document of the body, as :func:`encode` makes it."""
        if self._pieces is None:
            self._pieces = encode_each(_json.loads(self._body)["docs"])
            self._body = b""
        return self._pieces[index]


def encode(data: JsonDict) -> bytes:
    """The JSON of ``data`` (as a request body carries it), compactly stored."""
    return compact(_json.dumps(data))


def encode_each(values: list[JsonDict]) -> list[bytes]:
    """The JSON of each of ``values``, as :func:`encode` makes it (one call for many)."""
    return _json.dumps_each(values)


def encode_each_canonical(values: list[JsonDict]) -> list[bytes]:
    """The canonical JSON (sorted keys) of each of ``values``: the states of :data:`CANONICAL`
    (one call for many)."""
    return _json.dumps_each_canonical(values)


def encode_without_rev(data: JsonDict) -> bytes:
    """The canonical JSON of ``data`` without its top-level ``_rev``."""
    if "_rev" in data:
        data = {key: value for key, value in data.items() if key != "_rev"}
    return _json.dumps_canonical(data)


def changed(
    source: bytes | str | BatchState,
    key: str | int | None,
    rev: Any,
    data: JsonDict,
    encoded: bytes,
) -> bool:
    """Whether ``data`` (encoded as ``encoded``) differs from the synced state: the JSON
    text ``source`` (its ``key`` field, if given; the ``key``-th document of a
    :class:`BatchState`) with the revision ``rev``."""
    if isinstance(source, BatchState):
        assert isinstance(key, int)
        source, key = source.piece(key), None
    if key == CANONICAL:
        assert type(source) is bytes
        return changed_canonical([source], [data], [encoded])[0]
    if (
        key is None
        and type(source) is bytes
        and source.startswith(encoded)
        and not source[len(encoded) :].strip()
        and rev == data.get("_rev")
    ):
        # (a text that is this client's encoding of the data, byte for byte but for the
        # line break CouchDB ends an answer with, the synced revision being the data's:
        # unchanged. A text that differs may be the server's way of writing the same data.)
        return False
    synced = _synced(source, key, rev, exact=False)
    if synced is None:
        return True
    plain = _json.dumps(synced)
    if _json.may_be_inexact(plain):
        synced = _synced(source, key, rev, exact=True)
        assert synced is not None
        plain = _json.dumps(synced)
    if plain == encoded:
        return False
    if len(plain) != len(encoded):
        return True
    if synced != _json.loads(encoded):
        return True  # (values decoded from JSON that differ have different canonical forms)
    return encode_without_rev(synced) != encode_without_rev(data) or rev != data.get("_rev")


def changed_canonical(
    sources: list[bytes], datas: list[JsonDict], encoded: list[bytes]
) -> list[bool]:
    """Whether each of ``datas`` (encoded as ``encoded``) differs from its state in
    ``sources``, each the canonical JSON of the synced data (:data:`CANONICAL`), revision
    included; as :func:`changed` decides, for many documents at once.

    The plain and the canonical encoding of the same data are the same pieces in another
    order: another length means other data, and equal bytes equal data, both found in C.
    The others (data of the same length, changed or with its keys in another order) are
    encoded canonically, in one call, and compared.
    """
    dirty = list(map(ne, map(len, sources), map(len, encoded)))
    unsure = list(compress(count(), map(not_, map(or_, dirty, map(eq, sources, encoded)))))
    if unsure:
        canonical = encode_each_canonical([datas[i] for i in unsure])
        for i, text in zip(unsure, canonical):
            dirty[i] = text != sources[i]
    return dirty


def _synced(
    source: bytes | str, key: str | int | None, rev: Any, *, exact: bool
) -> JsonDict | None:
    """The synced data: ``source`` (its ``key`` field) decoded, with the revision ``rev``;
    None if that is no object.

    Not ``exact``, the text is decoded without looking for integers beyond 64 bits first
    (it was looked at when it arrived, but that is not kept): the caller checks the
    result's encoding with :func:`._json.may_be_inexact` and decodes it ``exact`` then.
    """
    if exact:
        synced = _json.loads(source)
    else:
        try:
            synced = _json.loads_unchecked(source)
        except ValueError:  # (orjson refuses an integer beyond a double's range)
            return _synced(source, key, rev, exact=True)
    if key is not None:
        synced = synced[key]
    if type(synced) is not dict:
        return None
    if rev is None:
        synced.pop("_rev", None)
    else:
        synced["_rev"] = rev  # (where the text had it: the data has it there too)
    return synced


def compact(encoded: bytes) -> bytes:
    """A copy of ``encoded`` in an allocation of its own size.

    orjson's result may sit in a buffer of several kilobytes; kept for every document,
    that would cost about 4 KB each.
    """
    return bytes(memoryview(encoded))
