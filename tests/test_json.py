"""Unit tests of the JSON codec (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from aiocouch import _json

BIG = 123456789012345678901234567890


def test_integers_beyond_64_bits_decode_exactly_from_bytes_and_str() -> None:
    text = f'{{"a":{BIG},"b":[-{BIG}, {BIG}],"c":0.5}}'
    expected = {"a": BIG, "b": [-BIG, BIG], "c": 0.5}
    assert _json.loads(text) == expected
    assert _json.loads(text.encode()) == expected


def test_the_integers_just_beyond_64_bits_decode_exactly() -> None:
    # orjson's range is -2**63 .. 2**64 - 1: the first negative beyond has only 19 digits
    text = f'{{"low":{-(2**63) - 1},"high":{2**64},"lowest":{-(2**63)},"highest":{2**64 - 1}}}'
    expected = {"low": -(2**63) - 1, "high": 2**64, "lowest": -(2**63), "highest": 2**64 - 1}
    assert _json.loads(text) == expected
    assert _json.loads(text.encode()) == expected
    assert all(type(value) is int for value in _json.loads(text.encode()).values())


def test_digit_runs_inside_strings_decode_unchanged() -> None:
    rev = "1-" + "1234567890" * 3 + "ab"
    assert _json.loads(f'{{"_rev":"{rev}","n":18446744073709551615}}') == {
        "_rev": rev,
        "n": 18446744073709551615,
    }


def test_integers_beyond_64_bits_after_digit_runs_in_strings_decode_exactly() -> None:
    # revisions whose hash starts with 19 digits look like numbers at first sight; each
    # is looked at on its own, and a real one after them is still found
    rev = "1-" + "1234567890" * 2 + "ab"
    rows = ",".join(f'{{"_rev":"{rev}","s":"São"}}' for _ in range(3))
    text = f'{{"rows":[{rows}],"n":-{BIG}}}'.encode()
    assert _json.has_long_number(text)
    assert _json.loads(text)["n"] == -BIG
    assert not _json.has_long_number(f'{{"rows":[{rows}],"n":{2**63 - 1}}}'.encode())


def test_integers_beyond_64_bits_encode_exactly() -> None:
    assert _json.loads(_json.dumps({"a": BIG})) == {"a": BIG}
    assert _json.dumps_canonical({"b": BIG, "a": 1}) == f'{{"a":1,"b":{BIG}}}'.encode()


def test_non_string_keys_encode_like_the_json_module() -> None:
    assert _json.loads(_json.dumps({1: "x"})) == {"1": "x"}


def test_dumps_each_encodes_as_dumps_also_beyond_64_bits() -> None:
    values = [{"a": 1, "é": "ü"}, {"big": BIG}, [None, True, 0.5]]
    encoded = _json.dumps_each(values)
    assert encoded == [_json.dumps(value) for value in values]
    assert [_json.loads(text) for text in encoded] == values


def test_dumps_each_of_many_objects_encodes_each_as_dumps_does() -> None:
    values = [{"n": n, "text": "x" * n, "list": [{"a": n}, {"b": None}]} for n in range(50)]
    assert _json.dumps_each(values) == [_json.dumps(value) for value in values]


def test_dumps_each_of_objects_holding_its_separator_text_encodes_each_as_dumps_does() -> None:
    # (the encoding splits one array at a separator string: values that hold that string,
    # alone or between other items, must still come out whole)
    marker = "\x00aiocouch: one value ends here\x00"
    values = [
        {"a": 1},
        {"items": [1, marker, 2]},
        {"items": [marker]},
        {marker: marker},
        {"b": [{"c": marker}, marker, {"d": 2}]},
    ]
    encoded = _json.dumps_each(values)
    assert encoded == [_json.dumps(value) for value in values]
    assert [_json.loads(text) for text in encoded] == values


def test_dumps_each_of_values_holding_control_characters_or_fragments_encodes_as_dumps() -> None:
    # (the pieces are split at a run of a control character that orjson always escapes
    # in strings; a value holding an orjson.Fragment of that run must still come out whole)
    orjson = pytest.importorskip("orjson")
    mark = "\x1f" * 16
    values: list[Any] = [{"a": mark}, {mark: [mark, 1]}, {"b": 2}]
    assert _json.dumps_each(values) == [_json.dumps(value) for value in values]
    values.append({"fragment": orjson.Fragment(b"\x1f" * 8)})
    assert _json.dumps_each(values) == [_json.dumps(value) for value in values]
