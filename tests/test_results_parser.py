"""Pure unit tests of ``aiocouch._results_parser.ResultsParser`` (no server needed).

The parser reads the answer of ``POST .../queries``, ``{"results": [R1, R2, ...]}``, and
hands out each result's rows as they complete, then a ``ResultEnd`` with its other
fields. Whatever the layout and however the body is cut into pieces, the same events
come out, in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from aiocouch._results_parser import ResultEnd, ResultsParser
from testserver.random_pieces import random_pieces

ROWS_1 = [
    {"id": "banana", "key": 1, "value": {"_id": "banana", "type": "fruit"}},
    {"id": "cherry", "key": 5, "value": {"_id": "cherry", "type": "fruit"}},
]
ROWS_2 = [{"id": "tomato", "key": 6, "value": None}]
TRICKY_ROWS = [
    {"id": "braces", "key": "},{", "value": "]}"},
    {"id": "rows-like", "key": '"rows":[{"id":"fake"}]', "value": '"results":['},
    {"id": "newline", "key": "line 1\nline 2\r\n", "value": 'say "hi" \\'},
    {"id": "unicode", "key": "é ☃ 😀 \u2028", "value": 2**70},
]
# transcript 7.28: two results of a view
RESULTS = [
    {"total_rows": 6, "offset": 0, "rows": ROWS_1},
    {"total_rows": 6, "offset": 0, "rows": ROWS_2},
]


def events(parsed: list[tuple[Any, str]]) -> list[Any]:
    """Rows (checking that each row's text decodes to it) and ("end", meta) markers."""
    out: list[Any] = []
    for value, text in parsed:
        if isinstance(value, ResultEnd):
            assert text == ""
            out.append(("end", value.meta))
        else:
            assert json.loads(text) == value
            out.append(value)
    return out


def parse(pieces: Iterable[str]) -> tuple[list[Any], dict[str, Any]]:
    parser = ResultsParser()
    out: list[Any] = []
    for piece in pieces:
        out.extend(events(parser.feed(piece)))
    out.extend(events(parser.close()))
    return out, parser.meta()


def expected(results: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for result in results:
        out.extend(result["rows"])
        out.append(("end", {name: value for name, value in result.items() if name != "rows"}))
    return out


def couchdb_layout(results: list[dict[str, Any]]) -> str:
    """As CouchDB writes it: each result's head, then one row per line, ``,\\r\\n`` between."""
    parts = []
    for result in results:
        head = json.dumps({k: v for k, v in result.items() if k != "rows"}, separators=(",", ":"))
        rows = ",\r\n".join(json.dumps(row, separators=(",", ":")) for row in result["rows"])
        parts.append(f'{head[:-1]}{"," if len(head) > 2 else ""}"rows":[\r\n{rows}\r\n]}}')
    return '{"results":[\r\n' + ",\r\n".join(parts) + "\r\n]}"


LAYOUTS = {
    "couchdb": couchdb_layout,
    "compact": lambda results: json.dumps({"results": results}, separators=(",", ":")),
    "spaced": lambda results: json.dumps({"results": results}),
    "pretty": lambda results: json.dumps({"results": results}, indent=2),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_the_rows_and_ends_of_each_result(layout: str) -> None:
    body = LAYOUTS[layout](RESULTS)
    out, meta = parse([body])
    assert out == expected(RESULTS)
    assert meta == {}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", range(20))
def test_any_cutting_of_the_body_gives_the_same_events(layout: str, seed: int) -> None:
    results = [
        {"total_rows": 9, "offset": 2, "rows": TRICKY_ROWS},
        {"rows": [{"key": ["fruit"], "value": 4}, {"key": ["veg"], "value": 2}]},
        {"total_rows": 9, "offset": 9, "rows": []},
        {"total_rows": 9, "offset": 0, "rows": ROWS_1, "update_seq": "12-g1AAAA"},
    ]
    body = LAYOUTS[layout](results)
    assert parse(random_pieces(body, seed, 40))[0] == expected(results)


def test_one_character_at_a_time() -> None:
    body = couchdb_layout(RESULTS)
    assert parse(body)[0] == expected(RESULTS)


def test_rows_come_out_as_their_lines_arrive() -> None:
    body = couchdb_layout(RESULTS)
    parser = ResultsParser()
    first_row_line_end = body.index("\n", body.index('"id":"banana"'))
    assert events(parser.feed(body[: first_row_line_end + 1])) == [ROWS_1[0]]
    second_result = body.index('{"total_rows"', first_row_line_end)
    assert events(parser.feed(body[first_row_line_end + 1 : second_result])) == [
        ROWS_1[1],
        ("end", {"total_rows": 6, "offset": 0}),
    ]
    rest = events(parser.feed(body[second_result:])) + events(parser.close())
    assert rest == [*ROWS_2, ("end", {"total_rows": 6, "offset": 0})]


def test_no_results() -> None:
    assert parse(['{"results": []}']) == ([], {})
    assert parse(['{"results":[\r\n\r\n]}\n']) == ([], {})


def test_fields_after_the_results_are_the_meta() -> None:
    out, meta = parse(['{"results": [{"rows": []}], "note": {"a": [1]}}'])
    assert out == [("end", {})]
    assert meta == {"note": {"a": [1]}}


def test_big_integers_stay_exact() -> None:
    body = couchdb_layout([{"rows": [{"key": 2**64 + 1, "value": -(2**70)}]}])
    [row, _] = parse([body])[0]
    assert row == {"key": 2**64 + 1, "value": -(2**70)}


# --- answers that are not multi-query answers ---


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<html>Bad Gateway</html>", "not valid JSON"),
        ("[1, 2]", "got a JSON array"),
        ('{"rows": []}', "no 'results' array"),
        ('{"results": [1]}', "not a JSON object"),
        ('{"results": [{"error": "x"}, {"rows": []}]}', "not a JSON object with a 'rows' array"),
        ('{"results": [{"rows": [1]}]}', "is a number, not a JSON object"),
        ('{"results": [{"rows": [{"id": "a"}', "ended inside the 'rows' array"),
        ('{"results": [{"rows": []}', "ended inside the 'results' array"),
        ('{"results": [{"total_rows": 1, ', "ended inside a result, before its 'rows'"),
        ('{"results": [{"rows": [] "x"', "ended inside a result, after its 'rows'"),
        ('{"results": []} trailing', "not a complete JSON object after the 'results'"),
    ],
)
def test_a_wrong_body_raises_value_error_naming_the_problem(body: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace("[", r"\[")):
        parse(random_pieces(body, 1, 5))


def test_rows_before_a_fault_are_handed_out_first() -> None:
    body = '{"results": [{"rows": [\n{"id": "a"},\n{"id": "b"},\n7\n]}]}'
    parser = ResultsParser()
    assert events(parser.feed(body)) == [{"id": "a"}, {"id": "b"}]
    with pytest.raises(ValueError, match="is a number"):
        parser.feed("")
    with pytest.raises(ValueError, match="is a number"):
        parser.close()


def test_a_result_head_that_never_finds_its_rows_is_refused() -> None:
    parser = ResultsParser()
    parser.feed('{"results": [{"total_rows": 1, "junk": "')
    with pytest.raises(ValueError, match="no 'rows' array in its first"):
        for _ in range(40):
            parser.feed("x" * 50_000)
