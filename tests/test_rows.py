"""Pure unit tests of the incremental parsers in ``aiocouch._rows`` (no server needed).

``RowParser`` splits a streamed JSON object into the elements of one array (``rows``,
``results`` or ``docs``) and the remaining fields; ``LineParser`` splits newline-delimited
JSON (a continuous feed). ``RowParser`` takes the body's bytes as they arrive (cut
anywhere, even inside a character); ``LineParser`` takes text, decoded with an incremental
UTF-8 decoder first, which the helpers below reproduce.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from aiocouch._rows import LineParser, RowParser, Utf8Decoder
from testserver.random_pieces import random_pieces

# --- helpers ---


def values(rows_with_text: list[tuple[Any, bytes]]) -> list[Any]:
    """The rows of RowParser's output, checking that each row's text decodes to it."""
    for row, text in rows_with_text:
        assert json.loads(text) == row
    return [row for row, _ in rows_with_text]


def fed(parser: RowParser, piece: bytes) -> Iterator[Any]:
    """The rows ``piece`` completes, checked: what ``feed`` returns, then ``more`` until it
    is empty (as ``parsed_pieces`` reads a parser; a fault comes after the rows before it)."""
    batch = parser.feed(piece)
    while batch:
        yield from values(batch)
        batch = parser.more()


def parse(array_key: str, pieces: Iterable[str | bytes]) -> tuple[list[Any], dict[str, Any]]:
    """Feeds every piece (text is encoded) to a new RowParser; returns all rows and the
    meta fields."""
    parser = RowParser(array_key)
    rows: list[Any] = []
    for piece in pieces:
        rows.extend(fed(parser, piece.encode() if isinstance(piece, str) else piece))
    rows.extend(values(parser.close()))
    return rows, parser.meta()


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def byte_chunks(body: bytes, cuts: Iterable[int]) -> Iterator[bytes]:
    """``body`` cut at the byte offsets ``cuts`` (inside characters too)."""
    previous = 0
    for cut in [*cuts, len(body)]:
        yield body[previous:cut]
        previous = cut


def couchdb_layout(array_key: str, rows: list[Any], head: str, tail: str) -> str:
    """CouchDB's layout: one element per line, separated by ``,\\r\\n``."""
    lines = ",\r\n".join(json.dumps(row, separators=(",", ":")) for row in rows)
    return f'{{{head}"{array_key}":[\r\n{lines}\r\n]{tail}}}\n'


ROWS = [
    {"id": "a", "key": "a", "value": {"rev": "1-abc"}},
    {"id": "b", "key": ["b", 1], "value": None},
    {"id": "c", "key": "c", "value": {"rev": "2-def"}, "doc": {"_id": "c", "n": [1, 2, 3]}},
]

TRICKY_ROWS = [
    {"id": "braces", "value": "},{"},
    {"id": "bracket", "value": "]"},
    {"id": "closing", "value": '"]}'},
    {"id": "newline", "value": "line 1\nline 2\r\n"},
    {"id": "quote", "value": 'say "hi"'},
    {"id": "backslash", "value": "C:\\dir\\"},
    {"id": "backslash-quote", "value": '\\"'},
    {"id": "key-like", "value": '"rows":[{"id":"fake"}]'},
    {"id": "unicode", "value": "é ☃ 😀 \u2028 \u0000"},
    {"id": "empty", "value": ""},
]


# --- RowParser: layouts ---


def test_couchdb_layout_one_row_per_line_with_crlf() -> None:
    body = couchdb_layout("rows", ROWS, '"total_rows":3,"offset":0,', "")
    rows, meta = parse("rows", [body])
    assert rows == ROWS
    assert meta["total_rows"] == 3
    assert meta["offset"] == 0


def test_couchdb_rows_come_out_before_the_body_ends() -> None:
    body = couchdb_layout("rows", ROWS, '"total_rows":3,"offset":0,', "")
    parser = RowParser("rows")
    # everything up to and including the line of the second row
    second_line_end = body.index("\n", body.index('"id":"b"'))
    early = values(parser.feed(body[: second_line_end + 1].encode()))
    assert early == ROWS[:2]
    rest = values(parser.feed(body[second_line_end + 1 :].encode()))
    last = values(parser.close())
    assert early + rest + last == ROWS
    assert parser.meta()["total_rows"] == 3


def test_single_line_body_as_pouchdb_sends_it() -> None:
    body = json.dumps({"total_rows": 3, "offset": 0, "rows": ROWS}, separators=(",", ":"))
    rows, meta = parse("rows", [body])
    assert rows == ROWS
    assert meta["total_rows"] == 3


def test_single_line_body_with_spaces_after_separators() -> None:
    body = json.dumps({"total_rows": 3, "offset": 0, "rows": ROWS})
    rows, meta = parse("rows", chunks(body, 7))
    assert rows == ROWS
    assert meta["offset"] == 0


def test_pretty_printed_rows_spanning_several_lines() -> None:
    body = json.dumps({"total_rows": 3, "offset": 0, "rows": ROWS}, indent=2)
    assert body.count("\n") > 10
    rows, meta = parse("rows", [body])
    assert rows == ROWS
    assert meta["total_rows"] == 3


def test_pretty_printed_rows_in_one_byte_chunks() -> None:
    body = json.dumps({"total_rows": 3, "offset": 0, "rows": ROWS}, indent=4)
    rows, meta = parse("rows", chunks(body, 1))
    assert rows == ROWS
    assert meta["total_rows"] == 3


def test_several_rows_on_one_line_and_a_row_across_lines_mixed() -> None:
    body = (
        '{"total_rows":4,"rows":[\n'
        '{"id":"a"},{"id":"b"},\n'
        '{"id":\n"c",\n"value":[1,\n2]},\n'
        '{"id":"d"}\n'
        "]}"
    )
    rows, meta = parse("rows", [body])
    assert rows == [{"id": "a"}, {"id": "b"}, {"id": "c", "value": [1, 2]}, {"id": "d"}]
    assert meta["total_rows"] == 4


@pytest.mark.parametrize("array_key", ["rows", "results", "docs"])
def test_each_array_key_is_recognised(array_key: str) -> None:
    body = couchdb_layout(array_key, ROWS, '"a":1,', ',"z":2')
    rows, meta = parse(array_key, chunks(body, 5))
    assert rows == ROWS
    assert meta["a"] == 1
    assert meta["z"] == 2


def test_only_the_named_array_is_split() -> None:
    body = '{"rows":[{"id":"x"}],"results":[{"id":"a"},{"id":"b"}],"last_seq":2}'
    rows, meta = parse("results", [body])
    assert rows == [{"id": "a"}, {"id": "b"}]
    assert meta["rows"] == [{"id": "x"}]
    assert meta["last_seq"] == 2


# --- RowParser: chunking ---


@pytest.mark.parametrize(
    "layout",
    ["couchdb", "single-line", "pretty"],
)
def test_one_character_chunks_give_the_same_result(layout: str) -> None:
    whole = {"total_rows": len(TRICKY_ROWS), "offset": 0, "rows": TRICKY_ROWS}
    if layout == "couchdb":
        body = couchdb_layout("rows", TRICKY_ROWS, '"total_rows":10,"offset":0,', "")
    elif layout == "single-line":
        body = json.dumps(whole, separators=(",", ":"), ensure_ascii=False)
    else:
        body = json.dumps(whole, indent=2, ensure_ascii=False)
    rows, meta = parse("rows", chunks(body, 1))
    assert rows == TRICKY_ROWS
    assert meta["total_rows"] == 10
    assert meta["offset"] == 0


@pytest.mark.parametrize("seed", range(20))
def test_random_chunk_sizes_give_the_same_result(seed: int) -> None:
    body = couchdb_layout("results", TRICKY_ROWS * 3, "", ',"last_seq":"30-g1AAAA","pending":0')
    rows, meta = parse("results", random_pieces(body, seed, 50))
    assert rows == TRICKY_ROWS * 3
    assert meta["last_seq"] == "30-g1AAAA"
    assert meta["pending"] == 0


@pytest.mark.parametrize("seed", range(20))
def test_utf8_split_inside_multibyte_characters(seed: int) -> None:
    multibyte = [{"id": f"r{n}", "value": "é€😀ß" * (n + 1), "k": "☃"} for n in range(8)]
    text = json.dumps(
        {"total_rows": 8, "offset": 0, "rows": multibyte}, ensure_ascii=False
    ).replace('{"id"', '\n{"id"')
    body = text.encode("utf-8")
    rng = random.Random(seed)
    inside_characters = [n for n in range(1, len(body)) if 0x80 <= body[n] < 0xC0]
    cuts = sorted(set(rng.sample(inside_characters, 20)) | set(rng.sample(range(1, len(body)), 20)))
    rows, meta = parse("rows", byte_chunks(body, cuts))
    assert rows == multibyte
    assert meta["total_rows"] == 8


def test_utf8_every_byte_separately() -> None:
    multibyte = [{"id": "😀", "value": "日本語"}, {"id": "é", "value": "€"}]
    body = couchdb_layout("rows", multibyte, "", "").encode("utf-8")
    rows, _ = parse("rows", byte_chunks(body, range(1, len(body))))
    assert rows == multibyte


def test_escaped_surrogate_pair_split_across_chunks() -> None:
    body = '{"rows":[{"id":"\\ud83d\\ude00","v":"\\u00e9"}\n]}'
    for cut in range(1, len(body)):
        rows, _ = parse("rows", [body[:cut], body[cut:]])
        assert rows == [{"id": "😀", "v": "é"}], cut


# --- RowParser: tricky strings ---


def test_strings_with_separators_brackets_escapes_quotes_and_backslashes() -> None:
    body = couchdb_layout("rows", TRICKY_ROWS, "", "")
    rows, _ = parse("rows", [body])
    assert rows == TRICKY_ROWS


def test_tricky_strings_on_a_single_line() -> None:
    body = json.dumps({"rows": TRICKY_ROWS, "total_rows": 10}, separators=(",", ":"))
    rows, meta = parse("rows", chunks(body, 3))
    assert rows == TRICKY_ROWS
    assert meta["total_rows"] == 10


@pytest.mark.parametrize("separator", [",", ",\r\n"])
def test_the_separator_between_rows_inside_a_row(separator: str) -> None:
    # Once rows are found by the bytes between them ("},{"id":"), the same bytes inside a
    # row (an array of objects) must not cut it: the bytes up to there are no JSON value.
    inner = [{"id": f"i{n}", "v": n} for n in range(8)]
    many = [{"id": f"r{n}", "items": inner[: n % 9], "value": '},{"id":'} for n in range(40)]
    body = '{"total_rows":40,"rows":[' + separator.join(map(compact, many)) + "]}"
    for size in (1, 7, 100, len(body)):
        rows, meta = parse("rows", chunks(body, size))
        assert rows == many, size
        assert meta["total_rows"] == 40


def test_meta_string_before_the_array_that_mentions_the_key() -> None:
    body = '{"warning":"\\"rows\\":[ is not here","total_rows":1,"rows":[{"id":"a"}]}'
    rows, meta = parse("rows", chunks(body, 2))
    assert rows == [{"id": "a"}]
    assert meta["warning"] == '"rows":[ is not here'
    assert meta["total_rows"] == 1


def test_whitespace_between_key_colon_and_bracket() -> None:
    body = '{"total_rows" : 1 , "rows" :\n [\n {"id":"a"} \n ] \n}'
    rows, meta = parse("rows", [body])
    assert rows == [{"id": "a"}]
    assert meta["total_rows"] == 1


def test_big_integers_and_floats_keep_their_values() -> None:
    big = 123456789012345678901234567890
    row_line = f'{{"id":"a","big":{big},"f":0.1,"neg":-5}}'
    for body in (
        f'{{"rows":[\n{row_line}\n]}}',  # one row per line
        f'{{"rows":[{row_line},{row_line}]}}',  # several rows on a line
    ):
        rows, _ = parse("rows", [body])
        assert rows[0]["big"] == big
        assert isinstance(rows[0]["big"], int)
        assert rows[0]["f"] == 0.1
        assert rows[0]["neg"] == -5


@pytest.mark.parametrize(
    ("element", "kind"),
    [("1", "a number"), ('"two"', "a string"), ("[3]", "a JSON array"), ("null", "null")],
)
def test_an_element_that_is_not_an_object_raises_value_error(element: str, kind: str) -> None:
    for body in (
        f'{{"rows":[{{"id":"a"}},{element},{{"id":"b"}}]}}',  # single line
        f'{{"rows":[\r\n{{"id":"a"}},\r\n{element},\r\n{{"id":"b"}}\r\n]}}',  # CouchDB
    ):
        for size in (1, len(body)):
            with pytest.raises(ValueError, match=f"is {kind}, not a JSON object"):
                parse("rows", chunks(body, size))


# --- RowParser: empty arrays and meta fields ---


@pytest.mark.parametrize(
    "body",
    [
        '{"total_rows":0,"offset":0,"rows":[]}',
        '{"total_rows":0,"offset":0,"rows":[\r\n\r\n]}\n',
        '{"total_rows":0,"offset":0,"rows":[ ]}',
        '{\n  "total_rows": 0,\n  "offset": 0,\n  "rows": []\n}',
    ],
)
def test_empty_array(body: str) -> None:
    for size in (1, 3, len(body)):
        rows, meta = parse("rows", chunks(body, size))
        assert rows == []
        assert meta["total_rows"] == 0
        assert meta["offset"] == 0


def test_meta_fields_before_and_after_the_array() -> None:
    body = (
        '{"total_rows":2,"offset":1,"update_seq":"12-g1AAAA","rows":[\r\n'
        '{"id":"a"},\r\n{"id":"b"}\r\n'
        '],"last_seq":"13-g1BBBB","pending":4,"bookmark":"g1AAAAB"}'
    )
    for size in (1, 2, 5, len(body)):
        rows, meta = parse("rows", chunks(body, size))
        assert rows == [{"id": "a"}, {"id": "b"}]
        assert meta["total_rows"] == 2
        assert meta["offset"] == 1
        assert meta["update_seq"] == "12-g1AAAA"
        assert meta["last_seq"] == "13-g1BBBB"
        assert meta["pending"] == 4
        assert meta["bookmark"] == "g1AAAAB"
        assert not meta.get("rows")


def test_find_layout_with_docs_then_bookmark_and_warning() -> None:
    body = (
        '{"docs":[\n{"_id":"a","_rev":"1-x"},\n{"_id":"b","_rev":"1-y"}\n],\n'
        '"bookmark": "g1AAAAA",\n"warning": "No matching index found, create an index"}\n'
    )
    rows, meta = parse("docs", random_pieces(body, 7, 9))
    assert [row["_id"] for row in rows] == ["a", "b"]
    assert meta["bookmark"] == "g1AAAAA"
    assert meta["warning"].startswith("No matching index")


def test_changes_layout_with_integer_sequences() -> None:
    body = (
        '{"results":[{"id":"c1","changes":[{"rev":"1-a"}],"seq":1},'
        '{"id":"c2","changes":[{"rev":"2-b"}],"deleted":true,"seq":2}],"last_seq":2}'
    )
    rows, meta = parse("results", chunks(body, 4))
    assert [row["seq"] for row in rows] == [1, 2]
    assert rows[1]["deleted"] is True
    assert meta["last_seq"] == 2


def test_object_without_the_array_raises_value_error() -> None:
    with pytest.raises(ValueError, match="the JSON object has no 'rows' array"):
        parse("rows", ['{"error":"not_found",', '"reason":"missing"}'])


def test_html_page_raises_value_error_naming_its_start() -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with pytest.raises(ValueError, match=r"not valid JSON .*'<html><head><title>502"):
        parse("rows", chunks(page, 7))


def test_a_long_body_without_the_array_raises_before_it_ends() -> None:
    parser = RowParser("rows")
    with pytest.raises(ValueError, match="not valid JSON"):
        for _ in range(100):
            parser.feed(b"<p>" + b"x" * 65536 + b"</p>\n")


def test_many_rows_stream_with_bounded_buffering() -> None:
    count = 5000
    body = couchdb_layout("rows", [{"id": f"doc{n:05}", "value": n} for n in range(count)], "", "")
    parser = RowParser("rows")
    seen = 0
    for piece in chunks(body, 4096):
        out = list(fed(parser, piece.encode()))
        seen += len(out)
        # rows are handed out as their lines complete, not all at the end
        assert len(out) <= 4096 // 20 + 2
    last = parser.close()
    assert seen + len(last) == count
    assert seen > count - 10


@pytest.mark.parametrize("layout", ["lines", "single-line"])
def test_a_piece_of_many_rows_comes_out_a_few_dozen_at_a_time(layout: str) -> None:
    # decoded all at once, a piece's rows would keep the garbage collector busy
    many = [{"id": f"doc{n:05}", "value": n} for n in range(1000)]
    if layout == "lines":
        body = couchdb_layout("rows", many, '"total_rows":1000,', "").encode()
    else:
        body = json.dumps({"total_rows": 1000, "rows": many}, separators=(",", ":")).encode()
    parser = RowParser("rows")
    batches = [parser.feed(body)]
    while batch := parser.more():
        batches.append(batch)
    batches.append(parser.close())
    assert [row for batch in batches for row in values(batch)] == many
    assert max(map(len, batches)) <= 64
    assert parser.meta()["total_rows"] == 1000


def test_rows_not_taken_with_more_come_out_after_the_next_piece() -> None:
    many = [{"id": f"doc{n:05}", "value": n} for n in range(300)]
    body = couchdb_layout("rows", many, "", "").encode()
    parser = RowParser("rows")
    middle = len(body) // 2
    rows = values(parser.feed(body[:middle])) + values(parser.feed(body[middle:]))
    while batch := parser.more():
        rows.extend(values(batch))
    assert rows + values(parser.close()) == many


@pytest.mark.parametrize("layout", ["lines", "single-line"])
def test_a_fault_after_many_rows_of_one_piece_comes_after_them(layout: str) -> None:
    good = [{"id": f"doc{n:05}"} for n in range(150)]
    separator = ",\r\n" if layout == "lines" else ","
    body = '{"rows":[' + separator.join([*map(compact, good), "[1]", '{"id":"z"}']) + "]}"
    parser = RowParser("rows")
    received = values(parser.feed(body.encode()))
    with pytest.raises(ValueError, match="is a JSON array, not a JSON object"):
        while batch := parser.more():
            received.extend(values(batch))
        parser.close()
    assert received == good
    with pytest.raises(ValueError, match="is a JSON array"):
        parser.meta()


def test_large_single_line_body_in_small_chunks() -> None:
    many = [{"id": f"doc{n:05}", "value": "x" * 50} for n in range(3000)]
    body = json.dumps({"total_rows": 3000, "rows": many}, separators=(",", ":"))
    rows, meta = parse("rows", chunks(body, 1000))
    assert rows == many
    assert meta["total_rows"] == 3000


# --- RowParser: truncated and broken bodies ---


@pytest.mark.parametrize(
    "body",
    [
        '{"total_rows":2,"rows":[\r\n{"id":"a"},\r\n',  # ends between rows
        '{"total_rows":2,"rows":[\r\n{"id":"a"},\r\n{"id":"b',  # ends inside a row
        '{"total_rows":2,"rows":[{"id":"a"},{"id":',  # single line, inside a row
        '{"total_rows":2,"rows":[',  # ends right after the bracket
    ],
)
def test_truncated_body_raises_value_error_on_close(body: str) -> None:
    parser = RowParser("rows")
    for piece in chunks(body, 3):
        parser.feed(piece.encode())
    with pytest.raises(ValueError):
        parser.close()
        parser.meta()


@pytest.mark.parametrize(
    "body",
    [
        '{"total_rows":2,"rows":[{"id":"a"}]',  # object not closed after the array
        '{"total_rows":',  # ends before the array
        "",  # no body at all
        '["not", "an", "object"]',
    ],
)
def test_incomplete_or_non_object_body_raises_value_error_on_close(body: str) -> None:
    parser = RowParser("rows")
    for piece in chunks(body, 2):
        parser.feed(piece.encode())
    with pytest.raises(ValueError):
        parser.close()
        parser.meta()


@pytest.mark.parametrize("layout", ["lines", "single-line"])
def test_the_elements_before_a_fault_come_out_first_whatever_the_pieces(layout: str) -> None:
    good = [{"id": "a"}, {"id": "b"}]
    separator = ",\r\n" if layout == "lines" else ","
    body = '{"rows":[' + separator.join([*map(json.dumps, good), "7", '{"id":"c"}']) + "]}"
    for size in (1, 5, len(body)):
        parser = RowParser("rows")
        received: list[Any] = []
        with pytest.raises(ValueError, match="is a number, not a JSON object"):
            for piece in chunks(body, size):
                received.extend(fed(parser, piece.encode()))
            received.extend(values(parser.close()))
            parser.meta()
        assert received == good, size
        with pytest.raises(ValueError):
            parser.meta()  # the fault stays


def test_a_body_cut_inside_the_array_hands_out_its_complete_elements_then_raises() -> None:
    parser = RowParser("rows")
    assert parser.feed(b'{"rows":[{"id":"a"},{"id":"b"},{"id":') == [
        ({"id": "a"}, b'{"id":"a"}'),
        ({"id": "b"}, b'{"id":"b"}'),
    ]
    parser = RowParser("rows")
    assert parser.feed(b'{"rows":[') == []
    assert parser.feed(b'{"id":"a"},{"id":"b"},{"id":') == []  # waits for a newline
    assert values(parser.close()) == [{"id": "a"}, {"id": "b"}]
    with pytest.raises(ValueError, match="not valid or complete JSON"):
        parser.meta()


def test_an_invalid_element_is_named_on_close() -> None:
    body = '{"total_rows":2,"rows":[{"id":"a"},\r\n{"id":"b",]}\r\n]}'
    with pytest.raises(ValueError, match="""element of the 'rows' array is not valid"""):
        parse("rows", [body])


# --- Utf8Decoder ---


def test_utf8_decoder_returns_the_text_before_an_invalid_byte_then_raises() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode("é".encode()[:1]) == ""
    assert decoder.decode("é".encode()[1:] + b"ok \xff more") == "éok "
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(b"next")
    with pytest.raises(UnicodeDecodeError):
        Utf8Decoder().decode(b"\xffok")  # nothing before it: at once


def test_utf8_decoder_raises_for_a_character_cut_by_the_end_of_the_body() -> None:
    decoder = Utf8Decoder()
    assert decoder.decode("ok😀".encode()[:-2]) == "ok"
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(b"", final=True)


# --- LineParser ---


def parse_lines(pieces: Iterable[str]) -> list[Any]:
    parser = LineParser()
    values: list[Any] = []
    for piece in pieces:
        values.extend(parser.feed(piece))
    values.extend(parser.close())
    return values


CHANGE_LINES = [
    {"seq": "1-g1AAAA", "id": "a", "changes": [{"rev": "1-x"}]},
    {"seq": "2-g1AAAA", "id": "b", "changes": [{"rev": "1-y"}], "deleted": True},
    {"last_seq": "2-g1AAAA", "pending": 0},
]


def test_lines_are_decoded_one_value_each() -> None:
    body = "".join(json.dumps(line) + "\n" for line in CHANGE_LINES)
    assert parse_lines([body]) == CHANGE_LINES


def test_line_is_returned_as_soon_as_its_newline_arrives() -> None:
    parser = LineParser()
    first = json.dumps(CHANGE_LINES[0])
    assert parser.feed(first[:10]) == []
    assert parser.feed(first[10:]) == []
    assert parser.feed("\n") == [CHANGE_LINES[0]]
    assert parser.close() == []


def test_heartbeat_blank_lines_are_skipped() -> None:
    lines = [json.dumps(line) for line in CHANGE_LINES]
    body = "\n\n" + lines[0] + "\n\n\n" + lines[1] + "\n\r\n \n" + lines[2] + "\n\n"
    assert parse_lines([body]) == CHANGE_LINES
    assert parse_lines(chunks(body, 1)) == CHANGE_LINES


def test_only_heartbeats_give_nothing() -> None:
    parser = LineParser()
    for _ in range(5):
        assert parser.feed("\n") == []
    assert parser.close() == []


@pytest.mark.parametrize("seed", range(10))
def test_lines_split_across_random_chunks(seed: int) -> None:
    many = [{"seq": n, "id": f"doc {n}", "v": "a\nb},{]" * (n % 5)} for n in range(200)]
    body = "".join(json.dumps(line) + "\n" + "\n" * (n % 3) for n, line in enumerate(many))
    assert parse_lines(random_pieces(body, seed, 100)) == many


def test_crlf_line_endings() -> None:
    body = "".join(json.dumps(line) + "\r\n" for line in CHANGE_LINES)
    assert parse_lines(chunks(body, 4)) == CHANGE_LINES


def test_last_line_without_newline_is_returned_by_close() -> None:
    parser = LineParser()
    assert parser.feed(json.dumps(CHANGE_LINES[0]) + "\n" + '{"last_seq":') == [CHANGE_LINES[0]]
    assert parser.feed("7}") == []
    assert parser.close() == [{"last_seq": 7}]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("<html>", "a line is not valid JSON"),
        ('{"seq":1,"id":', "a line is not valid JSON"),
        ("[1, 2]", "a line is a JSON array, not a JSON object"),
        ('"text"', "a line is a string, not a JSON object"),
        ("7", "a line is a number, not a JSON object"),
    ],
)
def test_a_line_that_is_not_a_json_object_raises_value_error(line: str, problem: str) -> None:
    parser = LineParser()
    assert parser.feed(json.dumps(CHANGE_LINES[0]) + "\n") == [CHANGE_LINES[0]]
    with pytest.raises(ValueError, match=re.escape(problem)):
        parser.feed(line + "\n")
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_lines([line])  # the last line, without a newline


def test_lines_before_a_faulty_line_come_out_first() -> None:
    body = "".join(json.dumps(line) + "\n" for line in CHANGE_LINES[:2]) + "[1]\n"
    parser = LineParser()
    assert parser.feed(body) == CHANGE_LINES[:2]
    with pytest.raises(ValueError, match="a line is a JSON array"):
        parser.feed(json.dumps(CHANGE_LINES[2]) + "\n")
    with pytest.raises(ValueError, match="a line is a JSON array"):
        parser.close()


def test_five_megabyte_line() -> None:
    big = {"seq": 1, "id": "big", "doc": {"_id": "big", "blob": "x" * (5 * 1024 * 1024)}}
    line = json.dumps(big) + "\n"
    assert len(line) > 5 * 1024 * 1024
    values = parse_lines([*chunks(line, 64 * 1024), json.dumps(CHANGE_LINES[0]) + "\n"])
    assert values == [big, CHANGE_LINES[0]]


def test_five_megabyte_line_in_one_piece_with_neighbours() -> None:
    big = {"seq": 2, "id": "big", "blob": "é" * (5 * 1024 * 1024 // 2)}
    body = (
        json.dumps(CHANGE_LINES[0])
        + "\n"
        + json.dumps(big, ensure_ascii=False)
        + "\n\n"
        + json.dumps(CHANGE_LINES[1])
        + "\n"
    )
    assert parse_lines([body]) == [CHANGE_LINES[0], big, CHANGE_LINES[1]]
