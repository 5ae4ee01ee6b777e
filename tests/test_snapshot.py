"""Unit tests of the compact synced state of documents (pure functions)."""

from __future__ import annotations

import json
import sys

import orjson
import pytest

from aiocouch._snapshot import (
    CANONICAL,
    changed,
    changed_canonical,
    compact,
    encode,
    encode_each_canonical,
    encode_without_rev,
)


def test_encode_without_rev_drops_only_the_top_level_rev() -> None:
    data = {"b": 1, "_rev": "2-x", "a": {"_rev": "kept"}, "_id": "d"}
    assert json.loads(encode_without_rev(data)) == {"_id": "d", "a": {"_rev": "kept"}, "b": 1}
    assert data["_rev"] == "2-x"


def test_encode_without_rev_ignores_key_order() -> None:
    assert encode_without_rev({"a": 1, "b": 2}) == encode_without_rev({"b": 2, "a": 1})


def test_compact_keeps_the_bytes_in_an_allocation_of_their_size() -> None:
    encoded = orjson.dumps({"pad": "x" * 300})
    copy = compact(encoded)
    assert copy == encoded
    assert sys.getsizeof(copy) < len(encoded) + 64


SYNCED = {"_id": "d", "_rev": "1-a", "n": 1, "tags": ["x"], "nested": {"a": 1, "b": 2}}


CASES = [
    (dict(SYNCED), False),
    ({"nested": {"b": 2, "a": 1}, "tags": ["x"], "n": 1, "_rev": "1-a", "_id": "d"}, False),
    ({**SYNCED, "tags": ("x",)}, False),  # a tuple is sent as the same JSON array
    ({**SYNCED, "n": 2}, True),  # same length
    ({**SYNCED, "n": True}, True),  # equal in Python, not in JSON
    ({**SYNCED, "n": 1.0}, True),
    ({**SYNCED, "nested": {"a": 1, "b": 3}}, True),
    ({**SYNCED, "extra": None}, True),
    ({**SYNCED, "_rev": "1-b"}, True),  # another revision
    ({key: value for key, value in SYNCED.items() if key != "_rev"}, True),
]


@pytest.mark.parametrize(("data", "is_changed"), CASES)
def test_changed_compares_the_canonical_json_and_the_revision(
    data: dict[str, object], is_changed: bool
) -> None:
    for source in (orjson.dumps(SYNCED), json.dumps(SYNCED, indent=1)):
        assert changed(source, None, "1-a", data, encode(data)) is is_changed


def test_changed_reads_the_synced_state_from_a_field_of_the_text_with_the_given_rev() -> None:
    row = orjson.dumps({"id": "d", "doc": {**SYNCED, "_rev": "1-a"}})
    assert not changed(row, "doc", "1-a", dict(SYNCED), encode(SYNCED))
    # after a save the text is the body sent (its old revision); the new one counts
    saved = {**SYNCED, "_rev": "2-b"}
    assert not changed(encode(SYNCED), None, "2-b", saved, encode(saved))
    assert changed(encode(SYNCED), None, "2-b", dict(SYNCED), encode(SYNCED))


def test_changed_takes_a_text_equal_to_the_encoding_as_unchanged_only_at_its_revision() -> None:
    assert not changed(encode(SYNCED), None, "1-a", dict(SYNCED), encode(SYNCED))
    # (as CouchDB and pouchdb-server send a document: a line break after it)
    assert not changed(encode(SYNCED) + b"\n", None, "1-a", dict(SYNCED), encode(SYNCED))
    longer = {**SYNCED, "nested": {"a": 1, "b": 2, "c": 3}}
    assert changed(encode(SYNCED) + b"\n", None, "1-a", longer, encode(longer))
    assert changed(encode(SYNCED) + b"\n", None, "1-b", dict(SYNCED), encode(SYNCED))
    unsaved = {key: value for key, value in SYNCED.items() if key != "_rev"}
    assert not changed(encode(unsaved), None, None, dict(unsaved), encode(unsaved))
    # a new document's body, saved as revision 1-a: without its _rev it is a change
    assert changed(encode(unsaved), None, "1-a", dict(unsaved), encode(unsaved))


BIG = 123456789012345678901234567890


@pytest.mark.parametrize(
    "number_text",
    [str(BIG), str(-BIG), "1" + "0" * 400, "18446744073709551616", "-9223372036854775809"],
)
def test_changed_keeps_integers_beyond_64_bits_exact(number_text: str) -> None:
    # (the text is decoded without the long-number check first; a float in place of the
    # integer must not make the data look changed, nor the float in the data unchanged)
    source = f'{{"_id":"d","_rev":"1-a","n":{number_text}}}'.encode()
    number = int(number_text)
    data = {"_id": "d", "_rev": "1-a", "n": number}
    assert not changed(source, None, "1-a", data, encode(data))
    assert not changed(source.decode(), None, "1-a", data, encode(data))
    as_float = {**data, "n": float(number) if len(number_text) < 300 else 1e308}
    for other in (as_float, {**data, "n": number + 1}, {**data, "m": 1}):
        assert changed(source, None, "1-a", other, encode(other))
    row = b'{"id":"d","doc":' + source + b"}"
    assert not changed(row, "doc", "1-a", data, encode(data))
    assert changed(row, "doc", "1-a", as_float, encode(as_float))


def test_changed_of_a_text_holding_large_floats() -> None:
    source = b'{"_id":"d","_rev":"1-a","f":1.0e+20,"g":-2.5E+300,"s":"e+"}'
    data = {"_id": "d", "_rev": "1-a", "f": 1e20, "g": -2.5e300, "s": "e+"}
    assert not changed(source, None, "1-a", data, encode(data))
    other = {**data, "f": 100000000000000000000}
    assert changed(source, None, "1-a", other, encode(other))


@pytest.mark.parametrize(("data", "is_changed"), CASES)
def test_changed_of_a_canonical_state_compares_as_of_a_text(
    data: dict[str, object], is_changed: bool
) -> None:
    # (a bulk read keeps each document's canonical JSON; alone and many at once)
    (source,) = encode_each_canonical([dict(SYNCED)])
    assert changed(source, CANONICAL, "1-a", data, encode(data)) is is_changed
    sources = encode_each_canonical([dict(SYNCED), dict(SYNCED), dict(SYNCED)])
    datas = [dict(SYNCED), data, {**SYNCED, "n": 3}]
    expected = [False, is_changed, True]
    assert changed_canonical(sources, datas, [encode(d) for d in datas]) == expected


@pytest.mark.parametrize("number", [BIG, -BIG, 10**400, 2**64, -(2**63) - 1])
def test_a_canonical_state_keeps_integers_beyond_64_bits_exact(number: int) -> None:
    data = {"_id": "d", "_rev": "1-a", "n": number}
    sources = encode_each_canonical([dict(data), {**data, "_id": "e"}])
    assert changed_canonical(sources[:1], [data], [encode(data)]) == [False]
    as_float = {**data, "n": float(number) if number < 10**300 else 1e308}
    for other in (as_float, {**data, "n": number + 1}, {**data, "n": number - 1}):
        assert changed_canonical(sources[:1], [other], [encode(other)]) == [True]
