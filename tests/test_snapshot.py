"""Unit tests of the compact synced state of documents (pure functions)."""

from __future__ import annotations

import json
import sys

import orjson

from aiocouch._snapshot import compact, encode_without_rev, with_rev


def test_encode_without_rev_drops_only_the_top_level_rev() -> None:
    data = {"b": 1, "_rev": "2-x", "a": {"_rev": "kept"}, "_id": "d"}
    assert json.loads(encode_without_rev(data)) == {"_id": "d", "a": {"_rev": "kept"}, "b": 1}
    assert data["_rev"] == "2-x"


def test_encode_without_rev_ignores_key_order() -> None:
    assert encode_without_rev({"a": 1, "b": 2}) == encode_without_rev({"b": 2, "a": 1})


def test_with_rev_adds_the_revision_to_any_object() -> None:
    assert json.loads(with_rev(b"{}", "1-a")) == {"_rev": "1-a"}
    body = with_rev(encode_without_rev({"_id": "d", "v": [1, 2]}), "3-c")
    assert json.loads(body) == {"_id": "d", "v": [1, 2], "_rev": "3-c"}


def test_compact_keeps_the_bytes_in_an_allocation_of_their_size() -> None:
    encoded = orjson.dumps({"pad": "x" * 300})
    copy = compact(encoded)
    assert copy == encoded
    assert sys.getsizeof(copy) < len(encoded) + 64
