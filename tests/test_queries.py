"""Several queries in one request, each result streamed (aiocouch.queries).

pouchdb-server has no ``/queries`` endpoint (DIFF 5.29), so the streaming is tested on a
scripted server sending CouchDB's layout of transcript 5.29 (each row on its own line),
and against the test server only where it is CouchDB.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiocouch import CouchDB, Database, IncompleteResponseError, InvalidResponseError
from aiocouch._query_rows import QueriesParser, ResultRows
from aiocouch.queries import QueryResult
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunked,
    http_response,
)

CHUNKED_HEAD = http_response(200, headers=[("Transfer-Encoding", "chunked")], length=False)
TIMEOUT = 10.0
QUERIES = [{"keys": ["bulkA", "missing_doc"]}, {"limit": 2, "skip": 1}, {"startkey": "x"}]
RESULTS: list[dict[str, Any]] = [
    {
        "total_rows": 20,
        "offset": None,
        "rows": [
            {"id": "bulkA", "key": "bulkA", "value": {"rev": "2-a"}},
            {"key": "missing_doc", "error": "not_found"},
        ],
    },
    {
        "total_rows": 20,
        "offset": 1,
        "rows": [
            {"id": "_design/x", "key": "_design/x", "value": {"rev": "1-x"}},
            {"id": "_design/y", "key": "_design/y", "value": {"rev": "1-y"}},
        ],
    },
    {"total_rows": 20, "offset": 20, "rows": []},
]


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def couchdb_layout(results: list[dict[str, Any]]) -> bytes:
    """The body as CouchDB writes a /queries answer: each row on a line of its own."""
    parts = []
    for result in results:
        fields = {key: value for key, value in result.items() if key != "rows"}
        head = compact(fields)[:-1] + b',"rows":['
        rows = b",\r\n".join(compact(row) for row in result["rows"])
        parts.append(head + (b"\r\n" + rows if rows else b"") + b"\r\n]}")
    return b'{"results":[\r\n' + b",\r\n".join(parts) + b"\r\n]}"


def events_of(parser: QueriesParser, pieces: list[str]) -> list[tuple[Any, ...]]:
    """What ``parser`` makes of ``pieces``: (index, row) for each row, (index, meta) at ends."""
    flat: list[tuple[Any, ...]] = []
    for events in [*(parser.feed(piece) for piece in pieces), parser.close()]:
        for event in events:
            if isinstance(event, ResultRows):
                flat.extend((event.index, row) for row, _ in event.rows)
            else:
                flat.append((event.index, "end", event.meta))
    return flat


EXPECTED_EVENTS = [
    *((0, row) for row in RESULTS[0]["rows"]),
    (0, "end", {"total_rows": 20, "offset": None, "rows": []}),
    *((1, row) for row in RESULTS[1]["rows"]),
    (1, "end", {"total_rows": 20, "offset": 1, "rows": []}),
    (2, "end", {"total_rows": 20, "offset": 20, "rows": []}),
]


# --- the parser ---


@pytest.mark.parametrize(
    "body",
    [
        couchdb_layout(RESULTS),
        compact({"results": RESULTS}),
        json.dumps({"results": RESULTS}, indent=2).encode(),
    ],
    ids=["couchdb", "compact", "indented"],
)
def test_every_split_of_the_body_gives_the_same_rows_and_ends(body: bytes) -> None:
    text = body.decode()
    assert events_of(QueriesParser(), [text]) == EXPECTED_EVENTS
    for split in range(1, len(text)):
        assert events_of(QueriesParser(), [text[:split], text[split:]]) == EXPECTED_EVENTS


def test_fields_after_the_rows_and_braces_in_strings_stay_with_their_result() -> None:
    body = '{"results":[{"rows":[{"id":"}]"}],"note":"]}{"},{"rows":[]}],"extra":1}'
    parser = QueriesParser()
    assert events_of(parser, [body]) == [
        (0, {"id": "}]"}),
        (0, "end", {"rows": [], "note": "]}{"}),
        (1, "end", {"rows": []}),
    ]
    assert parser.meta == {"results": [], "extra": 1}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"results":[{"rows":[{"id":"a"}\n,1\n]}]}', "is a number, not a JSON object"),
        ('{"results":[{"rows":[{"id":"a"}\n', "result 0: the body ended inside the 'rows'"),
        ('{"results":[{"rows":[{"id":"a"}\n],"x":{', "the body ended inside result 0"),
        ('{"results":[{"rows":[{"id":"a"}\n]}', "inside the 'results' array"),
        ('{"results":[{"rows":[{"id":"a"}\n]},"x"]}', "is not a JSON object"),
        ('{"results":[{"rows":[{"id":"a"}\n]},{"total_rows":1}]}', "no 'rows' array"),
        ('{"other":[]}', "no 'results' array"),
        ("<html>", "not valid JSON"),
    ],
)
def test_a_broken_body_raises_after_the_rows_before_the_fault(body: str, problem: str) -> None:
    parser = QueriesParser()
    handed_out: list[tuple[Any, ...]] = []
    with pytest.raises(ValueError, match=problem):
        for piece in [body[: len(body) // 2], body[len(body) // 2 :]]:
            handed_out += [
                (e.index, r)
                for e in parser.feed(piece)
                if isinstance(e, ResultRows)
                for r, _ in e.rows
            ]
        parser.close()
    assert handed_out in ([], [(0, {"id": "a"})])


# --- streamed from a scripted server ---


@pytest.fixture
async def database_at() -> AsyncIterator[Callable[[str], Database]]:
    clients: list[CouchDB] = []

    def make(url: str) -> Database:
        clients.append(CouchDB(url))
        return Database(clients[-1], "db")

    yield make
    for client in clients:
        await client.close()


def sending(body: bytes) -> Callable[[ReceivedRequest, ScriptedConnection], Any]:
    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunked(body))

    return answer


async def read_all(results: AsyncIterator[QueryResult]) -> list[tuple[list[Any], dict[str, Any]]]:
    return [([row async for row in result], result.meta) async for result in results]


async def test_results_come_in_query_order_with_their_rows_and_fields(
    database_at: Callable[[str], Database],
) -> None:
    async with ScriptedServer(sending(couchdb_layout(RESULTS))) as server:
        db = database_at(server.url)
        results = db.all_docs.queries(QUERIES)
        got = []
        async for result in results:
            rows = [row async for row in result]
            got.append((result.index, result.query, rows, result.total_rows, result.offset))
        assert got == [
            (index, QUERIES[index], RESULTS[index]["rows"], 20, RESULTS[index]["offset"])
            for index in range(3)
        ]
        [request] = server.requests
        assert (request.method, request.target) == ("POST", "/db/_all_docs/queries")
        assert json.loads(request.body) == {"queries": QUERIES}
        assert request.header("Content-Type") == "application/json"


async def test_a_row_is_handed_out_before_the_rest_of_the_answer_is_sent(
    database_at: Callable[[str], Database],
) -> None:
    body = couchdb_layout(RESULTS)
    first_row_end = body.index(b"\r\n", body.index(b'"bulkA"')) + 2
    handed_out = asyncio.Event()

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        head = body[:first_row_end]
        await connection.send(CHUNKED_HEAD + b"%x\r\n%s\r\n" % (len(head), head))
        await asyncio.wait_for(handed_out.wait(), TIMEOUT)
        await connection.send(chunked(body[first_row_end:]))

    async with ScriptedServer(answer) as server:
        rows = []
        async for result in database_at(server.url).all_docs.queries(QUERIES):
            async for row in result:
                rows.append(row)
                handed_out.set()
        assert rows == [row for result in RESULTS for row in result["rows"]]


async def test_rows_left_unread_are_skipped_and_cannot_be_read_later(
    database_at: Callable[[str], Database],
) -> None:
    async with ScriptedServer(sending(couchdb_layout(RESULTS))) as server:
        seen: list[QueryResult] = []
        second_rows = []
        async for result in database_at(server.url).all_docs.queries(QUERIES):
            seen.append(result)
            if result.index == 0:
                async for _ in result:
                    break  # one row read, the other left
            elif result.index == 1:
                second_rows = [row async for row in result]
        assert second_rows == RESULTS[1]["rows"]
        assert seen[2].meta == {"total_rows": 20, "offset": 20, "rows": []}
        with pytest.raises(RuntimeError, match="read or skipped"):
            async for _ in seen[0]:
                pass


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        (RESULTS[:2], "holds 2 results for 3 queries"),
        ([*RESULTS, RESULTS[2]], "more results than the 3"),
    ],
)
async def test_another_number_of_results_than_of_queries_raises(
    database_at: Callable[[str], Database], results: list[dict[str, Any]], problem: str
) -> None:
    async with ScriptedServer(sending(couchdb_layout(results))) as server:
        read = []
        with pytest.raises(InvalidResponseError, match=problem):
            async for result in database_at(server.url).all_docs.queries(QUERIES):
                read.append([row async for row in result])
        assert read == [result["rows"] for result in results[:3]]


async def test_an_answer_cut_inside_a_result_raises_after_the_rows_that_came(
    database_at: Callable[[str], Database],
) -> None:
    body = couchdb_layout(RESULTS)
    cut = body[: body.index(b"\r\n", body.index(b'"_design/x"')) + 2]

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + b"%x\r\n%s\r\n" % (len(cut), cut))
        connection.close()

    async with ScriptedServer(answer) as server:
        rows = []
        with pytest.raises(IncompleteResponseError):
            async for result in database_at(server.url).all_docs.queries(QUERIES):
                async for row in result:
                    rows.append(row)
        assert rows == [*RESULTS[0]["rows"], RESULTS[1]["rows"][0]]
        assert len(server.requests) == 1


async def test_no_queries_send_nothing_and_bad_queries_raise_at_once(
    database: Database, request_counter: RequestCounter
) -> None:
    assert [result async for result in database.all_docs.queries([])] == []
    for queries in ({"limit": 1}, "limit", [{"limit": 1}, 3], [{1: "x"}]):
        with pytest.raises(TypeError):
            database.all_docs.queries(queries)  # type: ignore[arg-type]
    assert request_counter.count == 0


# --- against CouchDB ---


@pytest.mark.couchdb_only("pouchdb-server has no _all_docs/queries (DIFF 5.29)")
async def test_all_docs_queries_answers_each_query(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 5.29
    await database._bulk_docs([{"_id": id} for id in ("a", "b", "c", "doc1", "doc2")])
    request_counter.reset()
    answers = await read_all(
        database.all_docs.queries(
            [
                {"keys": ["b", "missing"]},
                {"limit": 2, "skip": 1},
                {"startkey": "doc", "endkey": "doc\ufff0"},
            ]
        )
    )
    assert request_counter.requests == [("POST", f"/{database.id}/_all_docs/queries")]
    assert [[row.get("id", row["key"]) for row in rows] for rows, _ in answers] == [
        ["b", "missing"],
        ["b", "c"],
        ["doc1", "doc2"],
    ]
    assert answers[0][0][1] == {"key": "missing", "error": "not_found"}
    assert [(meta["total_rows"], meta["offset"]) for _, meta in answers] == [
        (5, None),
        (5, 1),
        (5, 3),
    ]
