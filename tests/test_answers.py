"""2xx answers that are not what was asked raise InvalidResponseError (``aiocouch._answers``).

A real loopback server (``testserver.scripted_server``) answers byte for byte what each test
scripts: an HTML page from a proxy, invalid JSON or UTF-8, an empty body, JSON of the wrong
type, or a streamed body that breaks off. Each goes through the public API on both
transports (the lean one for ``http://``, aiohttp when a connector is given). The error is
also an ``aiohttp.ClientResponseError``, names the request and what was wrong, and shows
no credentials.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database, Document
from aiocouch.exception import InvalidResponseError
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunk,
    http_response,
)

USER, PASSWORD = "admin", "pw-never-shown-5e1f"
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
# Pieces of a streamed body are sent this far apart, so that each arrives in a read of
# its own (both transports wait only a millisecond for more data).
PIECE_PAUSE = 0.02


@pytest.fixture(params=["lean", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    transport_name: str = request.param
    return transport_name


def client_for(server: ScriptedServer, transport: str) -> CouchDB:
    options: dict[str, Any] = {}
    if transport == "aiohttp":
        options["connector"] = aiohttp.TCPConnector()
    return CouchDB(server.url, user=USER, password=PASSWORD, **options)


def answering(
    body: bytes | list[bytes],
    *,
    status: int = 200,
    content_type: str = "application/json",
    framing: str = "length",
) -> Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]:
    """A handler that answers every request with ``body`` (a list: pieces sent apart)."""
    pieces = body if isinstance(body, list) else [body]

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        whole = b"".join(pieces)
        if framing == "length":
            headers = [("Content-Length", str(len(whole)))]
            frame: Callable[[bytes], bytes] = bytes
            end = b""
        else:
            headers = [("Transfer-Encoding", "chunked")]
            frame, end = chunk, b"0\r\n\r\n"
        head = http_response(
            status, headers=headers, content_type=content_type, reason="OK", length=False
        )
        await connection.send(head + frame(pieces[0]))
        for piece in pieces[1:]:
            await asyncio.sleep(PIECE_PAUSE)
            await connection.send(frame(piece))
        await connection.send(end)

    return handler


def assert_names_request_without_credentials(
    exc: InvalidResponseError, method: str, path: str, *fragments: str
) -> None:
    """The error is an aiohttp.ClientResponseError that names the request and the fault."""
    assert isinstance(exc, aiohttp.ClientResponseError)
    message = str(exc)
    assert f"{method} {path}" in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert exc.request_info.method == method
    assert exc.request_info.url.path == path
    assert "Authorization" not in exc.request_info.headers
    shown = repr(exc) + str(exc) + str(exc.request_info) + repr(exc.__cause__)
    assert PASSWORD not in shown
    assert "YWRtaW46" not in shown  # base64 of "admin:"


async def scripted_call(
    handler: Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]],
    transport: str,
    call: Callable[[CouchDB], Awaitable[Any]],
) -> tuple[InvalidResponseError, ScriptedServer]:
    async with ScriptedServer(handler) as server, client_for(server, transport) as client:
        with pytest.raises(InvalidResponseError) as caught:
            await call(client)
    return caught.value, server


async def get_document(client: CouchDB) -> Any:
    return await Database(client, "db").get("x")


# --- whole answers ---


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (HTML, "text/html", "the body is not valid JSON"),
        (b'{"_id":"x",', "application/json", "the body is not valid JSON"),
        (b'{"_id":"x","v":"\xff\xfe"}', "application/json", "the body is not valid UTF-8"),
        (b"", "application/json", "the body is empty, expected a JSON object"),
        (b'["x"]', "application/json", "expected a JSON object, got a JSON array"),
        (b'"x"', "application/json", "expected a JSON object, got a string"),
    ],
)
async def test_a_document_get_whose_body_is_not_a_json_object_raises(
    transport: str, body: bytes, content_type: str, problem: str
) -> None:
    exc, _ = await scripted_call(
        answering(body, content_type=content_type), transport, get_document
    )
    assert_names_request_without_credentials(
        exc, "GET", "/db/x", "document 'x' in database 'db'", problem
    )
    assert exc.status == 200
    assert exc.headers is not None and exc.headers["Content-Type"] == content_type


async def test_an_html_page_is_named_by_its_content_type_and_start(transport: str) -> None:
    exc, _ = await scripted_call(answering(HTML, content_type="text/html"), transport, get_document)
    assert "Content-Type 'text/html'" in str(exc)
    assert "<title>502 Bad Gateway" in str(exc)


@pytest.mark.parametrize(
    ("call", "method", "path", "body", "problem"),
    [
        (lambda c: c.keys(), "GET", "/_all_dbs", b'{"a":1}', "expected a JSON array, got"),
        (lambda c: c.info(), "GET", "/", b"[]", "expected a JSON object, got a JSON array"),
        (lambda c: c.check_credentials(), "GET", "/_session", b"null", "got null"),
        (
            lambda c: Database(c, "db").view("d", "v").get(),
            "GET",
            "/db/_design/d/_view/v",
            b'{"total_rows":2,"offset":0,"rows":[1,2]}',
            "expected a JSON object whose 'rows' are objects",
        ),
        (
            lambda c: Database(c, "db").all_docs.post(["a"]),
            "POST",
            "/db/_all_docs",
            b'{"rows":{"id":"a"}}',
            "expected a JSON object whose 'rows' are objects",
        ),
        (lambda c: Database(c, "db").info(), "GET", "/db", b"[1]", "got a JSON array"),
        (
            lambda c: Database(c, "db")._bulk_docs([{"_id": "a"}]),
            "POST",
            "/db/_bulk_docs",
            b'{"id":"a","rev":"1-a"}',
            "expected a JSON array of objects, got a JSON object",
        ),
    ],
)
async def test_json_of_the_wrong_type_raises_instead_of_being_converted(
    transport: str,
    call: Callable[[CouchDB], Awaitable[Any]],
    method: str,
    path: str,
    body: bytes,
    problem: str,
) -> None:
    exc, _ = await scripted_call(answering(body), transport, call)
    assert_names_request_without_credentials(exc, method, path, problem)


async def test_a_save_answered_with_a_list_raises_and_the_document_stays_dirty(
    transport: str,
) -> None:
    async def save(client: CouchDB) -> None:
        document = await Database(client, "db").create("x", exists_ok=False, data={"a": 1})
        saving.append(document)
        await document.save()

    saving: list[Any] = []

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if request.method == "HEAD":
            await connection.send(http_response(404, b""))
        else:
            await connection.send(http_response(201, b"[]"))

    exc, server = await scripted_call(handler, transport, save)
    assert_names_request_without_credentials(exc, "PUT", "/db/x", "expected a JSON object")
    assert exc.status == 201
    [document] = saving
    assert document.rev is None and document._dirty_cache
    assert server.count("PUT", "/db/x") == 1


async def test_a_bulk_answer_that_is_an_object_raises(transport: str) -> None:
    async def bulk(client: CouchDB) -> None:
        async with Database(client, "db").create_docs(["a", "b"]):
            pass

    exc, _ = await scripted_call(answering(b'{"a":1,"b":2}'), transport, bulk)
    assert_names_request_without_credentials(
        exc, "POST", "/db/_bulk_docs", "expected a JSON array of objects"
    )


async def test_a_head_answer_may_be_empty(transport: str) -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, b"", headers=[("ETag", '"1-a"')]))

    async with ScriptedServer(handler) as server, client_for(server, transport) as client:
        database = await client["db"]
        info = await Document(database, "x").info()
    assert info == {"ok": True, "id": "x", "rev": "1-a"}
    assert [request.method for request in server.requests] == ["HEAD", "HEAD"]


# --- streamed answers ---


def row(id: str) -> dict[str, Any]:
    doc = {"_id": id, "_rev": f"1-{id}", "n": ord(id)}
    return {"id": id, "key": id, "value": {"rev": f"1-{id}"}, "doc": doc}


def couchdb_rows(*ids: str) -> bytes:
    """The start of an ``_all_docs`` body as CouchDB writes it, one row per line."""
    lines = b"".join(json.dumps(row(id)).encode() + b",\r\n" for id in ids)
    return b'{"total_rows":9,"offset":0,"rows":[\r\n' + lines


async def docs_of(client: CouchDB, seen: list[str]) -> None:
    async for document in Database(client, "db").docs():
        seen.append(document.id)


@pytest.mark.parametrize(
    ("pieces", "handed_out", "problem"),
    [
        ([HTML], [], "the body is not valid JSON"),
        ([b'{"total_rows":0,"offset":0}'], [], "the JSON object has no 'rows' array"),
        ([b"[]"], [], "expected a JSON object with a 'rows' array, got a JSON array"),
        ([couchdb_rows("a", "b"), HTML], ["a", "b"], "is not valid or complete JSON"),
        ([couchdb_rows("a"), b"1,\r\n"], ["a"], "is a number, not a JSON object"),
        ([couchdb_rows("a", "b")], ["a", "b"], "the body ended inside the 'rows' array"),
        ([couchdb_rows("a"), b'{"id":"b","ke'], ["a"], "not valid or complete JSON"),
        ([couchdb_rows("a"), b"\r\n]"], ["a"], "not a complete JSON object after the 'rows'"),
        ([couchdb_rows("a"), b'{"id":"\xff"}\r\n'], ["a"], "the body is not valid UTF-8"),
    ],
)
async def test_a_streamed_body_that_breaks_raises_after_the_rows_before_it(
    transport: str, pieces: list[bytes], handed_out: list[str], problem: str
) -> None:
    seen: list[str] = []
    exc, _ = await scripted_call(
        answering(pieces, framing="chunked"), transport, lambda client: docs_of(client, seen)
    )
    assert seen == handed_out
    assert_names_request_without_credentials(
        exc, "GET", "/db/_all_docs", "(_all_docs of database 'db')", problem
    )


@pytest.mark.parametrize("doc", ['"a string"', '{"_rev":"1-b"}', '{"_id":7}', "[1]"])
async def test_a_row_whose_doc_is_not_a_document_raises(transport: str, doc: str) -> None:
    bad_row = f'{{"id":"b","key":"b","value":{{"rev":"1-b"}},"doc":{doc}}}'.encode()
    seen: list[str] = []
    exc, _ = await scripted_call(
        answering(couchdb_rows("a") + bad_row + b"\r\n]}"),
        transport,
        lambda client: docs_of(client, seen),
    )
    assert seen == ["a"]
    assert_names_request_without_credentials(
        exc, "GET", "/db/_all_docs", "the 'doc' of row 'b' is not a JSON object with an '_id'"
    )


async def test_a_whole_view_answer_whose_doc_is_not_a_document_raises(transport: str) -> None:
    body = b'{"total_rows":1,"offset":0,"rows":[{"id":"a","key":"a","value":1,"doc":[]}]}'
    exc, _ = await scripted_call(
        answering(body),
        transport,
        lambda client: Database(client, "db").view("d", "v").get(include_docs=True),
    )
    assert_names_request_without_credentials(
        exc, "GET", "/db/_design/d/_view/v", "each 'doc' a document or null"
    )


async def test_a_connection_with_a_broken_stream_is_not_reused_for_the_next_answer(
    transport: str,
) -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if request.target.startswith("/db/_all_docs"):
            body = couchdb_rows("a") + b"1,\r\n" + couchdb_rows("z")[30:] * 200
            await connection.send(http_response(200, body))
        else:
            await connection.send(http_response(200, b'{"_id":"x","_rev":"1-x"}'))

    async with ScriptedServer(handler) as server, client_for(server, transport) as client:
        with pytest.raises(InvalidResponseError):
            await docs_of(client, [])
        document = await Database(client, "db").get("x")
    assert document.rev == "1-x"


async def test_a_view_row_that_is_not_an_object_raises(transport: str) -> None:
    body = b'{"total_rows":2,"offset":0,"rows":[\r\n{"id":"a","key":"a","value":1},\r\n"b"\r\n]}'
    items: list[Any] = []

    async def view_items(client: CouchDB) -> None:
        async for item in Database(client, "db").view("d", "v").aitems():
            items.append(item)

    exc, _ = await scripted_call(answering(body), transport, view_items)
    assert items == [("a", 1)]
    assert_names_request_without_credentials(
        exc, "GET", "/db/_design/d/_view/v", "view 'd/v' in database 'db'", "is a string"
    )


async def test_a_find_answer_that_is_not_json_raises(transport: str) -> None:
    async def find(client: CouchDB) -> list[Any]:
        return [doc async for doc in Database(client, "db").find({"n": 1})]

    exc, _ = await scripted_call(answering(HTML, content_type="text/html"), transport, find)
    assert_names_request_without_credentials(
        exc, "POST", "/db/_find", "_find in database 'db'", "not valid JSON"
    )
    assert exc.request_info.headers["Content-Type"] == "application/json"


async def test_a_normal_changes_feed_cut_inside_its_results_raises(transport: str) -> None:
    body = b'{"results":[\n{"seq":"1-a","id":"a","changes":[{"rev":"1-a"}]},\n'
    ids: list[str] = []

    async def changes(client: CouchDB) -> None:
        async for event in Database(client, "db").changes():
            ids.append(event.id)

    exc, _ = await scripted_call(answering(body), transport, changes)
    assert ids == ["a"]
    assert_names_request_without_credentials(
        exc, "GET", "/db/_changes", "the body ended inside the 'results' array"
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [(HTML, "a line is not valid JSON"), (b"[1]", "a line is a JSON array, not a JSON object")],
)
async def test_a_continuous_changes_line_that_is_not_an_object_raises(
    transport: str, line: bytes, problem: str
) -> None:
    first = b'{"seq":"1-a","id":"a","changes":[{"rev":"1-a"}]}\n'
    ids: list[str] = []

    async def changes(client: CouchDB) -> None:
        async for event in Database(client, "db").changes(feed="continuous"):
            ids.append(event.id)

    exc, _ = await scripted_call(
        answering([first, line + b"\n"], framing="chunked"), transport, changes
    )
    assert ids == ["a"]
    assert_names_request_without_credentials(exc, "GET", "/db/_changes", problem)
    assert exc.request_info.headers["Accept-Encoding"] == "identity"


# --- rows that end only with the body (compact JSON without a final newline) ---

ROW_A, ROW_B = json.dumps(row("a")).encode(), json.dumps(row("b")).encode()
COMPACT_ALL_DOCS = b'{"total_rows":2,"offset":0,"rows":[' + ROW_A + b"," + ROW_B + b"]}"
# Cut points: in one piece; inside the head; inside each row; one byte before the end.
CUTS = [[], [20], [50, len(COMPACT_ALL_DOCS) - 60], [7, 40, 41, len(COMPACT_ALL_DOCS) - 1]]


def cut(body: bytes, at: list[int]) -> list[bytes]:
    bounds = [0, *at, len(body)]
    return [body[start:end] for start, end in zip(bounds, bounds[1:]) if end > start]


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("at", CUTS)
async def test_compact_rows_ending_with_the_body_are_all_handed_out(
    transport: str, framing: str, at: list[int]
) -> None:
    compact_find = json.dumps(
        {"docs": [row("a")["doc"], row("b")["doc"]], "bookmark": "nil"}, separators=(",", ":")
    ).encode()
    compact_changes = json.dumps(
        {
            "results": [
                {"seq": "1-a", "id": "a", "changes": [{"rev": "1-a"}]},
                {"seq": "2-b", "id": "b", "changes": [{"rev": "1-b"}], "deleted": True},
            ],
            "last_seq": "2-b",
            "pending": 0,
        },
        separators=(",", ":"),
    ).encode()
    bodies = {
        "_all_docs": COMPACT_ALL_DOCS,
        "_view": COMPACT_ALL_DOCS,
        "_find": compact_find,
        "_changes": compact_changes,
    }

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        [body] = [body for name, body in bodies.items() if name in request.target]
        points = [point * len(body) // len(COMPACT_ALL_DOCS) for point in at]
        await answering(cut(body, points), framing=framing)(request, connection)

    async with ScriptedServer(handler) as server, client_for(server, transport) as client:
        database = Database(client, "db")
        docs = [doc async for doc in database.docs()]
        items = [item async for item in database.view("d", "v").aitems()]
        found = [doc async for doc in database.find({"n": {"$gt": 0}})]
        feed = database.changes()
        events = [event async for event in feed]
    assert [(doc.id, doc["n"]) for doc in docs] == [("a", 97), ("b", 98)]
    assert items == [("a", {"rev": "1-a"}), ("b", {"rev": "1-b"})]
    assert [doc.id for doc in found] == ["a", "b"]
    assert [(event.id, type(event).__name__) for event in events] == [
        ("a", "ChangedEvent"),
        ("b", "DeletedEvent"),
    ]
    assert feed.last_seq == "2-b"


@pytest.mark.parametrize("last_line", [b'{"last_seq":"2-b","pending":0}', b'{"last_seq":"2-b"}'])
async def test_a_continuous_feed_whose_last_line_has_no_newline_ends_at_it(
    transport: str, last_line: bytes
) -> None:
    pieces = [
        b'{"seq":"1-a","id":"a","changes":[{"rev":"1-a"}]}\n{"seq":"2-b","id":"b",',
        b'"changes":[{"rev":"1-b"}]}\n',
        last_line[:9],
        last_line[9:],
    ]
    handler = answering(pieces, framing="chunked")
    async with ScriptedServer(handler) as server, client_for(server, transport) as client:
        feed = Database(client, "db").changes(feed="continuous")
        ids = [event.id async for event in feed]
    assert ids == ["a", "b"]
    assert feed.last_seq == "2-b"
