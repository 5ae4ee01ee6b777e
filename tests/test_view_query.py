"""``aiocouch.view_query``: how a ViewQuery is encoded, and how multi-query answers and
design-document ``_info`` answers are read, over real sockets.

The server-backed behaviour of ``View.query()``, ``View.queries()`` and
``DesignDocument.design_info()`` is in tests/test_view.py. Here a scripted server
(``testserver.scripted_server``) answers with CouchDB's bytes (transcripts 7.28, 5.29,
7.29) or breaks them on purpose, so what pouchdb-server lacks is exercised everywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from aiocouch import CouchDB, Database, IncompleteResponseError, InvalidResponseError
from aiocouch.design_document import DesignDocument
from aiocouch.retry import RetryPolicy
from aiocouch.view_query import DesignDocumentInfo, ViewQuery, ViewRows
from testserver.scripted_server import (
    CHUNKED_HEAD,
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunk,
    chunked,
    http_response,
    in_turn,
)

TIMEOUT = 10.0
Answer = Callable[[ReceivedRequest, ScriptedConnection], Any]

# --- ViewQuery: parameters and bodies ---


def test_keys_are_json_encoded_in_the_query_string() -> None:
    query = ViewQuery(
        key=["fruit", 3, None, {"a": True}],
        startkey="b",
        endkey="é",
        startkey_docid="x y",
        limit=2,
        skip=0,
        group_level=1,
        descending=True,
        reduce=False,
    )
    assert query.params() == {
        "key": '["fruit",3,null,{"a":true}]',
        "startkey": '"b"',
        "endkey": '"é"',
        "startkey_docid": "x y",
        "limit": "2",
        "skip": "0",
        "group_level": "1",
        "descending": "true",
        "reduce": "false",
    }


def test_none_is_the_null_key_and_absent_options_are_not_sent() -> None:
    assert ViewQuery(key=None).params() == {"key": "null"}
    assert ViewQuery(endkey=None, end_key_doc_id=None).params() == {"endkey": "null"}
    assert ViewQuery().params() == {}
    assert ViewQuery().body() == {}


def test_each_spelling_is_sent_as_given() -> None:
    query = ViewQuery(start_key=1, end_key=2, start_key_doc_id="a", end_key_doc_id="b")
    assert query.params() == {
        "start_key": "1",
        "end_key": "2",
        "start_key_doc_id": "a",
        "end_key_doc_id": "b",
    }


@pytest.mark.parametrize(("update", "sent"), [(True, "true"), (False, "false"), ("lazy", "lazy")])
def test_update_values(update: Any, sent: str) -> None:
    assert ViewQuery(update=update).params() == {"update": sent}
    assert ViewQuery(update=update).body() == {"update": sent}


def test_keys_go_to_the_body_not_the_query_string() -> None:
    query = ViewQuery(keys=(1, "a", [2]), include_docs=True)
    assert query.params() == {"include_docs": "true"}
    assert query.keys_list == [1, "a", [2]]
    assert ViewQuery().keys_list is None


def test_the_body_of_a_queries_request_holds_json_values() -> None:
    query = ViewQuery(keys=[1, 5], startkey=["a"], limit=1, descending=True, stable=False)
    # CouchDB reads update and stable in a queries body only as strings.
    assert query.body() == {
        "keys": [1, 5],
        "startkey": ["a"],
        "limit": 1,
        "descending": True,
        "stable": "false",
    }


def test_repr_shows_the_options_given() -> None:
    assert (
        repr(ViewQuery(startkey=2, key=None, limit=1)) == "ViewQuery(key=None, startkey=2, limit=1)"
    )
    assert repr(ViewQuery()) == "ViewQuery()"


def test_a_view_query_is_frozen() -> None:
    query = ViewQuery(limit=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.limit = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"key": object()}, TypeError, "key must be a JSON value"),
        ({"startkey": {1, 2}}, TypeError, "startkey must be a JSON value"),
        ({"keys": "abc"}, TypeError, "keys must be a list"),
        ({"keys": {"a": 1}}, TypeError, "keys must be a list"),
        ({"keys": [object()]}, TypeError, "keys must be a JSON value"),
        ({"startkey_docid": 3}, TypeError, "startkey_docid must be a document id"),
        ({"descending": "true"}, TypeError, "descending must be True or False"),
        ({"limit": -1}, ValueError, "limit must not be negative"),
        ({"limit": True}, TypeError, "limit must be an int"),
        ({"group_level": 1.0}, TypeError, "group_level must be an int"),
        ({"update": "maybe"}, ValueError, "update must be"),
        ({"update": 1}, ValueError, "update must be"),
        ({"key": 1, "keys": [1]}, ValueError, "key or keys"),
        ({"key": None, "keys": [1]}, ValueError, "key or keys"),
        ({"startkey": 1, "start_key": 1}, ValueError, "startkey or start_key"),
        ({"endkey_docid": "a", "end_key_doc_id": "b"}, ValueError, "endkey_docid or end_"),
    ],
)
def test_bad_options_raise_naming_the_problem(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ViewQuery(**options)


def test_unknown_options_raise_type_error() -> None:
    with pytest.raises(TypeError):
        ViewQuery(stale="ok")  # type: ignore[call-arg]


# --- multi-query answers over a socket ---


def layout(results: list[dict[str, Any]]) -> list[bytes]:
    """The pieces of a multi-query answer as CouchDB writes them, one per result."""
    pieces = [b'{"results":[']
    for index, result in enumerate(results):
        head = json.dumps({k: v for k, v in result.items() if k != "rows"}, separators=(",", ":"))
        head = head[:-1] + ("," if len(head) > 2 else "")
        rows = ",\r\n".join(json.dumps(row, separators=(",", ":")) for row in result["rows"])
        separator = "\r\n" if index == 0 else ",\r\n"
        pieces.append(f'{separator}{head}"rows":[\r\n{rows}\r\n]}}'.encode())
    pieces.append(b"\r\n]}")
    return pieces


# transcript 7.28
RESULTS = [
    {
        "total_rows": 6,
        "offset": 0,
        "rows": [
            {"id": "banana", "key": 1, "value": {"_id": "banana", "value": 1}},
            {"id": "cherry", "key": 5, "value": {"_id": "cherry", "value": 5}},
        ],
    },
    {"total_rows": 6, "offset": 0, "rows": [{"id": "tomato", "key": 6, "value": None}]},
]
QUERIES = [ViewQuery(keys=[1, 5]), ViewQuery(limit=1, descending=True)]


def answer_with(pieces: list[bytes]) -> Answer:
    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunked(*pieces))

    return answer


async def read_all(results: Any) -> list[tuple[list[Any], int | None, int | None]]:
    async def run() -> list[tuple[list[Any], int | None, int | None]]:
        out = []
        async for result in results:
            rows = [row async for row in result]
            out.append((rows, result.total_rows, result.offset))
        return out

    return await asyncio.wait_for(run(), TIMEOUT)


async def test_queries_sends_one_post_and_hands_out_each_result(
    client_factory: Callable[..., CouchDB],
) -> None:
    async with ScriptedServer(answer_with(layout(RESULTS))) as server:
        view = Database(client_factory(server.url), "db").view("d", "by_value")
        results = await read_all(view.queries([*QUERIES]))
    assert results == [(result["rows"], 6, 0) for result in RESULTS]
    [request] = server.requests
    assert (request.method, urlsplit(request.target).path) == (
        "POST",
        "/db/_design/d/_view/by_value/queries",
    )
    assert json.loads(request.body) == {
        "queries": [{"keys": [1, 5]}, {"limit": 1, "descending": True}]
    }


async def test_a_result_is_handed_out_before_the_next_one_arrives(
    client_factory: Callable[..., CouchDB],
) -> None:
    pieces = layout(RESULTS)
    first_read = asyncio.Event()

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + b"".join(chunk(p) for p in pieces[:2]))
        await asyncio.wait_for(first_read.wait(), TIMEOUT)
        await connection.send(chunked(*pieces[2:]))

    async with ScriptedServer(answer) as server:
        view = Database(client_factory(server.url), "db").view("d", "by_value")

        async def run() -> list[list[str]]:
            seen = []
            async for result in view.queries(QUERIES):
                seen.append([row["id"] async for row in result])
                first_read.set()
            return seen

        assert await asyncio.wait_for(run(), TIMEOUT) == [["banana", "cherry"], ["tomato"]]


async def test_dicts_of_options_are_queries_too(client_factory: Callable[..., CouchDB]) -> None:
    async with ScriptedServer(answer_with(layout(RESULTS))) as server:
        view = Database(client_factory(server.url), "db").view("d", "by_value")
        results = view.queries([{"keys": [1, 5]}, {"limit": 1, "update": "lazy"}])
        assert results.queries == [ViewQuery(keys=[1, 5]), ViewQuery(limit=1, update="lazy")]
        await read_all(results)
    assert json.loads(server.requests[0].body)["queries"][1] == {"limit": 1, "update": "lazy"}


async def test_all_docs_queries_go_to_its_own_path(client_factory: Callable[..., CouchDB]) -> None:
    # transcript 5.29: a key no document has is an error row
    results = [
        {
            "total_rows": 20,
            "offset": None,
            "rows": [
                {"id": "bulkA", "key": "bulkA", "value": {"rev": "2-x"}},
                {"key": "missing_doc", "error": "not_found"},
            ],
        }
    ]
    async with ScriptedServer(answer_with(layout(results))) as server:
        all_docs = Database(client_factory(server.url), "db").all_docs
        assert await read_all(all_docs.queries([{"keys": ["bulkA", "missing_doc"]}])) == [
            (results[0]["rows"], 20, None)
        ]
    assert urlsplit(server.requests[0].target).path == "/db/_all_docs/queries"


async def test_no_queries_send_nothing(
    client_factory: Callable[..., CouchDB],
) -> None:
    async with ScriptedServer(answer_with(layout([]))) as server:
        view = Database(client_factory(server.url), "db").view("d", "v")
        assert await read_all(view.queries([])) == []
    assert server.requests == []


async def test_rows_left_unread_are_skipped_and_cannot_be_read_later(
    client_factory: Callable[..., CouchDB],
) -> None:
    async with ScriptedServer(answer_with(layout(RESULTS))) as server:
        view = Database(client_factory(server.url), "db").view("d", "by_value")
        taken: list[ViewRows] = []
        async for result in view.queries(QUERIES):
            taken.append(result)
        # the first result's rows were skipped to reach the second one; its end was read
        assert taken[0].total_rows == 6
        with pytest.raises(RuntimeError, match="read once"):
            [row async for row in taken[0]]


async def test_a_result_left_halfway_is_skipped_to_its_end(
    client_factory: Callable[..., CouchDB],
) -> None:
    async with ScriptedServer(answer_with(layout(RESULTS))) as server:
        view = Database(client_factory(server.url), "db").view("d", "by_value")
        firsts = []
        async for result in view.queries(QUERIES):
            async for row in result:
                firsts.append(row["id"])
                break
        assert firsts == ["banana", "tomato"]


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        (RESULTS[:1], "fewer results than queries"),
        ([*RESULTS, RESULTS[1]], "more results than queries"),
    ],
)
async def test_another_number_of_results_than_queries_is_an_invalid_answer(
    client_factory: Callable[..., CouchDB], results: list[dict[str, Any]], problem: str
) -> None:
    async with ScriptedServer(answer_with(layout(results))) as server:
        view = Database(client_factory(server.url), "db").view("d", "by_value")
        with pytest.raises(InvalidResponseError, match=problem):
            await read_all(view.queries(QUERIES))


async def test_an_answer_that_is_not_a_multi_query_answer_is_invalid(
    client_factory: Callable[..., CouchDB],
) -> None:
    # what pouchdb-server would answer if it said 200: a single query's answer
    body = b'{"total_rows":6,"offset":0,"rows":[]}'
    async with ScriptedServer(answer_with([body])) as server:
        view = Database(client_factory(server.url), "db").view("d", "by_value")
        with pytest.raises(InvalidResponseError, match="no 'results' array"):
            await read_all(view.queries(QUERIES))


async def test_a_break_before_any_row_sends_the_queries_again(
    client_factory: Callable[..., CouchDB],
) -> None:
    pieces = layout(RESULTS)

    async def break_early(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(pieces[0]))
        connection.close()

    async with ScriptedServer(in_turn(break_early, answer_with(pieces))) as server:
        client = client_factory(server.url, retry=RetryPolicy(backoff=0.01))
        view = Database(client, "db").view("d", "by_value")
        assert [rows for rows, _, _ in await read_all(view.queries(QUERIES))] == [
            result["rows"] for result in RESULTS
        ]
    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body


async def test_a_break_after_rows_were_handed_out_raises(
    client_factory: Callable[..., CouchDB],
) -> None:
    pieces = layout(RESULTS)

    async def break_late(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        sent = b"".join(pieces[:2])
        await connection.send(CHUNKED_HEAD + chunk(sent))
        connection.close()

    async with ScriptedServer(break_late) as server:
        client = client_factory(server.url, retry=RetryPolicy(backoff=0.01))
        view = Database(client, "db").view("d", "by_value")
        seen: list[str] = []
        with pytest.raises(IncompleteResponseError):

            async def run() -> None:
                async for result in view.queries(QUERIES):
                    async for row in result:
                        seen.append(row["id"])

            await asyncio.wait_for(run(), TIMEOUT)
    assert seen == ["banana", "cherry"]
    assert len(server.requests) == 1  # never asked again: the rows out would come twice


# --- design document _info ---

# transcript 7.29
INFO = {
    "name": "d",
    "view_index": {
        "updates_pending": {"minimum": 0, "preferred": 0, "total": 0},
        "waiting_commit": True,
        "waiting_clients": 0,
        "updater_running": False,
        "update_seq": 10,
        "sizes": {"file": 1201, "external": 1207, "active": 1150},
        "signature": "5c3b5a5d3e0a0d9f8ba1e1b35ab5a1e6",
        "purge_seq": 0,
        "language": "javascript",
        "compact_running": False,
        "collator_versions": ["153.120"],
    },
}


async def test_design_info_reads_couchdb_answer(client_factory: Callable[..., CouchDB]) -> None:
    response = http_response(200, json.dumps(INFO).encode())
    async with ScriptedServer(lambda request, connection: connection.send(response)) as server:
        design = DesignDocument(Database(client_factory(server.url), "db"), "d")
        info = await design.design_info()
    assert info == DesignDocumentInfo(name="d", view_index=INFO["view_index"])  # type: ignore[arg-type]
    assert [(r.method, r.target) for r in server.requests] == [("GET", "/db/_design/d/_info")]


async def test_design_info_refuses_pouchdb_servers_answer(
    client_factory: Callable[..., CouchDB],
) -> None:
    # DIFF 7.29: pouchdb-server answers 200 {"view_index": "Not implemented."}
    response = http_response(200, b'{"view_index": "Not implemented."}')
    async with ScriptedServer(lambda request, connection: connection.send(response)) as server:
        design = DesignDocument(Database(client_factory(server.url), "db"), "d")
        with pytest.raises(InvalidResponseError, match="'view_index' object"):
            await design.design_info()
