"""Rows cut into pieces anywhere: where a piece ends inside the last row, inside a long
number, or after a row that the separator of the others does not follow.

The parser checks each piece for integers beyond 64 bits before decoding its rows with
orjson (which would turn them into floats), and finds the rows of CouchDB's layout by
their line breaks. These tests cut bodies at every byte, feed them to ``RowParser``, and
send them through ``db.docs()`` from a real socket in chunks that cut numbers in two.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiocouch import CouchDB, Database
from aiocouch._rows import RowParser
from testserver.scripted_server import (
    CHUNKED_HEAD,
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunk,
)

GUARD = 20.0
"""Seconds after which a test fails instead of hanging."""

LONG_NUMBERS = {
    "nineteen digits": 1234567890123456789,
    "twenty digits within 64 bits": 12345678901234567890,
    "twenty digits beyond 64 bits": 98765432109876543210,
    "negative nineteen digits beyond 64 bits": -9876543210987654321,
    "forty digits": 1234567890123456789012345678901234567890,
}


def row_with_numbers(n: int) -> dict[str, Any]:
    """An ``_all_docs`` row whose document holds long numbers as numbers and in strings."""
    doc: dict[str, Any] = {"_id": f"doc{n}", "_rev": f"1-{n:032d}", **LONG_NUMBERS}
    doc["in strings"] = [str(number) for number in LONG_NUMBERS.values()]
    doc["in an array"] = list(LONG_NUMBERS.values())
    return {"id": doc["_id"], "key": doc["_id"], "value": {"rev": doc["_rev"]}, "doc": doc}


ROWS = [row_with_numbers(n) for n in range(4)]


def single_line(rows: list[Any]) -> bytes:
    """The body as pouchdb-server writes it: all on one line."""
    return json.dumps({"total_rows": len(rows), "offset": 0, "rows": rows}).encode()


def couchdb_lines(rows: list[Any]) -> bytes:
    """The body as CouchDB writes it: one row per line, separated by ``,\\r\\n``."""
    lines = ",\r\n".join(json.dumps(row, separators=(",", ":")) for row in rows)
    return f'{{"total_rows":{len(rows)},"offset":0,"rows":[\r\n{lines}\r\n]}}\n'.encode()


def fed_in_two(body: bytes, cut: int) -> tuple[list[Any], list[Any]]:
    """The rows out of ``body`` fed in two pieces cut at ``cut``: those handed out while
    feeding, and all of them."""
    parser = RowParser("rows")
    early: list[Any] = []
    for piece in (body[:cut], body[cut:]):
        batch = parser.feed(piece)
        while batch:
            early.extend(row for row, _ in batch)
            batch = parser.more()
    rows = early + [row for row, _ in parser.close()]
    assert parser.meta()["total_rows"] == len(rows)
    return early, rows


@pytest.mark.parametrize("layout", [single_line, couchdb_lines])
def test_long_numbers_stay_exact_wherever_a_piece_ends(layout: Any) -> None:
    body = layout(ROWS)
    for cut in range(len(body) + 1):
        _, rows = fed_in_two(body, cut)
        assert rows == ROWS, cut
        for row in rows:
            for name in LONG_NUMBERS:
                assert type(row["doc"][name]) is int, (cut, name)


def test_a_piece_ending_right_after_the_last_row_hands_it_out_before_the_body_ends() -> None:
    # (rows hold "}," inside them: the value object followed by the next key)
    body = single_line(ROWS)
    end_of_array = body.rindex(b"]")
    for cut in (end_of_array, end_of_array + 1):
        early, rows = fed_in_two(body, cut)
        assert rows == ROWS
        assert early[: len(ROWS)] == ROWS, cut


def test_rows_the_separator_does_not_follow_come_out_while_the_body_streams() -> None:
    # _all_docs with keys: rows of missing ids have no "id" to learn the separator from
    found = [{"id": f"d{n}", "key": f"d{n}", "value": {"rev": "1-a"}} for n in range(3)]
    missing = [{"key": f"missing{n:05}", "error": "not_found"} for n in range(20000)]
    body = single_line(found + missing)
    parser = RowParser("rows")
    received = 0
    largest_held = 0
    for start in range(0, len(body), 1000):
        batch = parser.feed(body[start : start + 1000])
        while batch:
            received += len(batch)
            batch = parser.more()
        largest_held = max(largest_held, parser._pending_bytes)
    assert received > len(missing) * 9 // 10  # (not all held back until the body ends)
    assert received + len(parser.close()) == len(found) + len(missing)
    assert largest_held < len(body) // 4


def test_a_complete_row_followed_by_a_string_is_handed_out_before_the_fault() -> None:
    body = b'{"rows":[{"id":"a","v":{"x":1}},{"id":"b","v":{"x":2}},{"id":"c"},"not a row"]}'
    for cut in range(len(body) + 1):
        parser = RowParser("rows")
        received: list[Any] = []
        with pytest.raises(ValueError, match="is a string, not a JSON object"):
            for piece in (body[:cut], body[cut:]):
                batch = parser.feed(piece)
                while batch:
                    received.extend(row["id"] for row, _ in batch)
                    batch = parser.more()
            received.extend(row["id"] for row, _ in parser.close())
            parser.meta()
        assert received == ["a", "b", "c"], cut


def sent_in_small_chunks(body: bytes, size: int) -> Any:
    """A handler answering with ``body`` in chunks of ``size`` bytes, each sent on its own."""

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD)
        for start in range(0, len(body), size):
            await connection.send(chunk(body[start : start + size]), pause=0.002)
        await connection.send(b"0\r\n\r\n")

    return handler


async def documents(url: str) -> AsyncIterator[Any]:
    async with CouchDB(url, retry=False) as client:
        async for doc in Database(client, "db").docs():
            yield doc


@pytest.mark.parametrize("layout", [single_line, couchdb_lines])
@pytest.mark.parametrize("size", [7, 23])
async def test_docs_keeps_long_numbers_exact_when_chunks_cut_them(layout: Any, size: int) -> None:
    async with ScriptedServer(sent_in_small_chunks(layout(ROWS), size)) as server:

        async def read() -> list[Any]:
            return [doc async for doc in documents(server.url)]

        docs = await asyncio.wait_for(read(), GUARD)
    assert [doc.id for doc in docs] == [row["id"] for row in ROWS]
    for doc in docs:
        for name, number in LONG_NUMBERS.items():
            assert doc[name] == number and type(doc[name]) is int, name
        assert doc["in strings"] == [str(number) for number in LONG_NUMBERS.values()]
        assert doc["in an array"] == list(LONG_NUMBERS.values())


def test_couchdb_layout_with_an_element_across_lines_wherever_a_piece_ends() -> None:
    # (CouchDB's rows are found by their line break: one within an element is no row's end)
    rows = [{"id": f"r{n}", "value": {"n": n}} for n in range(6)]
    lines = [json.dumps(row, separators=(",", ":")) for row in rows]
    lines[3] = '{"id":"r3",\r\n"value":\r\n{"n":3}\r\n}'
    lines[4] = '{\r\n"id":"r4","value":{"n":4}}'
    body = ('{"total_rows":6,"rows":[\r\n' + ",\r\n".join(lines) + "\r\n]}\n").encode()
    for cut in range(len(body) + 1):
        early, received = fed_in_two(body, cut)
        assert received == rows, cut
    early, _ = fed_in_two(body, len(body))
    assert early == rows
