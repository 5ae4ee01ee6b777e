"""Both transports against servers that break HTTP on purpose, through the public API.

Every test runs on the lean HTTP/1.1 transport and on aiohttp (chosen with
``connector=``), against :class:`~testserver.scripted_server.ScriptedServer`: a real
loopback server whose answers are scripted byte for byte. A test asserts what a user
cares about: the typed exception, that nothing is handed out as complete, that the
connection concerned is never used again (the next call gets its own answer), and how
often a write reached the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import select
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database, Document
from aiocouch.exception import (
    ConnectTimeoutError,
    IncompleteResponseError,
    InvalidResponseError,
    NotFoundError,
    ReadTimeoutError,
    RemoteResponseError,
)
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunked,
    http_response,
)

LEAN, AIOHTTP = "HTTPTransport", "AiohttpTransport"
Handler = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]
OpenClient = Callable[..., CouchDB]

# Generous against a stalled server, short enough for a quick suite.
STALL_LIMIT = 0.3
GUARD = 20.0
"""Seconds after which a test fails instead of hanging."""

PASSWORD = "pass-w0rd-secret"
COOKIE = "cookie-secret-123"
PROXY_TOKEN = "proxy-token-secret"
SECRETS = (
    PASSWORD,
    base64.b64encode(f"admin:{PASSWORD}".encode()).decode(),
    COOKIE,
    PROXY_TOKEN,
)


@pytest.fixture(params=[LEAN, AIOHTTP], ids=["lean", "aiohttp"])
def transport_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def open_client(transport_name: str) -> AsyncIterator[OpenClient]:
    """Opens clients on the chosen transport (``connector=`` selects aiohttp).

    Each call is sent once (``retry=False``): these tests are about what one attempt on a
    transport does with a broken answer. What the retries make of it: tests/test_retry.py.
    """
    clients: list[CouchDB] = []

    def open_client(url: str, **options: Any) -> CouchDB:
        if transport_name == AIOHTTP:
            options["connector"] = aiohttp.TCPConnector()
        options.setdefault("retry", False)
        client = CouchDB(url, **options)
        assert type(client._server._transport).__name__ == transport_name
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


def stall_limit(**limits: float) -> aiohttp.ClientTimeout:
    """Short read limits, generous connect limits, unless given."""
    values: dict[str, float] = {"sock_read": STALL_LIMIT, "connect": 10.0, "sock_connect": 10.0}
    values.update(limits)
    return aiohttp.ClientTimeout(**values)


async def guarded(awaitable: Awaitable[Any]) -> Any:
    """``awaitable``, or a test failure after :data:`GUARD` seconds instead of a hang."""
    return await asyncio.wait_for(awaitable, GUARD)


# --- what a well-behaved server answers ---


def doc_body(doc_id: str) -> bytes:
    return json.dumps({"_id": doc_id, "_rev": "1-a", "name": doc_id}).encode()


ROWS = [{"id": f"r{i}", "key": f"r{i}", "value": {"rev": "1-a"}} for i in range(3)]
ROWS_WITH_DOCS = [{**row, "doc": {"_id": row["id"], "_rev": "1-a"}} for row in ROWS]


def rows_body(rows: list[dict[str, Any]], array: str = "rows") -> bytes:
    """A body laid out as CouchDB writes it: one row per line."""
    lines = [json.dumps(row) for row in rows]
    extra = '"total_rows":3,"offset":0,' if array == "rows" else ""
    end = ',\n"last_seq":"3-x","pending":0}' if array == "results" else "\n]}"
    return ("{" + extra + f'"{array}":[\n' + ",\n".join(lines) + end).encode()


def good_answer(request: ReceivedRequest) -> bytes:
    """The answer of a healthy CouchDB to ``request``."""
    path = request.target.split("?")[0]
    if path == "/":
        return http_response(200, b'{"couchdb":"Welcome"}')
    if path.endswith("/_all_docs"):
        return http_response(200, rows_body(ROWS_WITH_DOCS))
    if path.endswith("/_find"):
        return http_response(200, json.dumps({"docs": [r["doc"] for r in ROWS_WITH_DOCS]}).encode())
    if path.endswith("/_changes") and "feed=continuous" in request.target:
        return http_response(200, b'{"seq":"1-x","id":"r0","changes":[]}\n{"last_seq":"1-x"}\n')
    if path.endswith("/_changes"):
        changes = [
            {"seq": f"{i}-x", "id": r["id"], "changes": [{"rev": "1-a"}]}
            for i, r in enumerate(ROWS)
        ]
        return http_response(200, rows_body(changes, "results"))
    if "/_view/" in path:
        return http_response(200, rows_body(ROWS))
    if path.endswith("/att"):
        return http_response(200, b"attachment bytes", content_type="application/octet-stream")
    if request.method in ("PUT", "POST", "COPY"):
        return http_response(201, b'{"ok":true,"id":"doc","rev":"2-b"}')
    if request.method == "DELETE":
        return http_response(200, b'{"ok":true,"id":"doc","rev":"3-c"}')
    doc_id = path.rsplit("/", 1)[-1]
    return http_response(200, doc_body(doc_id))


async def answer_well(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    await connection.send(good_answer(request))


def first_connection_sends(*pieces: bytes, then: str = "stall") -> Handler:
    """A handler: the first connection answers each request with ``pieces``; others well.

    ``then`` is what the first connection does afterwards: ``stall`` (stays open, silent),
    ``close`` or ``answer`` (the healthy answer follows: a stale answer for a reuser).
    """

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if connection.number != 0:
            await answer_well(request, connection)
            return
        await connection.send_pieces(pieces, pause=0.01)
        if then == "close":
            connection.close()
        elif then == "answer":
            await connection.send(good_answer(request))
        else:
            await asyncio.sleep(3600)

    return handler


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer(handler) as server:
        yield server


async def next_call_gets_its_own_answer(db: Database) -> None:
    """The client still works and reads the answer to its own request."""
    doc = await guarded(db.get("next-doc"))
    assert doc.id == "next-doc"
    assert doc["name"] == "next-doc"


# --- the public calls, whole and streamed ---


async def get_doc(db: Database) -> Any:
    doc = await db.get("doc")
    return doc.id, doc["name"]


async def fetch_attachment(db: Database) -> Any:
    doc = Document(db, "doc", data={"_rev": "1-a"})
    return await doc.attachment("att").fetch()


async def docs(db: Database) -> Any:
    return [doc.id async for doc in db.docs()]


async def values(db: Database) -> Any:
    return [doc.id async for doc in db.values()]


async def akeys(db: Database) -> Any:
    return [key async for key in db.akeys()]


async def find(db: Database) -> Any:
    return [doc.id async for doc in db.find({"name": {"$gt": None}})]


async def changes(db: Database) -> Any:
    return [event.id async for event in db.changes()]


async def continuous_changes(db: Database) -> Any:
    # A feed waiting for changes may be silent for three heartbeats (here 3 x 0.1 s, the
    # STALL_LIMIT), whatever the client's sock_read.
    return [event.id async for event in db.changes(feed="continuous", heartbeat=100)]


async def view_keys(db: Database) -> Any:
    return [key async for key in db.view("d", "v").akeys()]


async def view_values(db: Database) -> Any:
    return [value async for value in db.view("d", "v").avalues()]


WHOLE_CALLS = [get_doc, fetch_attachment]
STREAMED_CALLS = [docs, values, akeys, find, changes, continuous_changes, view_keys, view_values]
ALL_CALLS = WHOLE_CALLS + STREAMED_CALLS


def call_id(call: Callable[..., Any]) -> str:
    return call.__name__


# --- 1: framing errors raise, nothing is dropped ---

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
CHUNKED_HEAD = OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


def chunked_rows_with(bad_chunk: bytes) -> bytes:
    """An _all_docs answer whose second chunk is ``bad_chunk``."""
    body = rows_body(ROWS_WITH_DOCS)
    first, rest = body[:60], body[60:]
    return CHUNKED_HEAD + b"%x\r\n%s\r\n" % (len(first), first) + bad_chunk + chunked(rest)


BAD_CHUNKS = {
    "chunk-longer-than-its-size": b"3\r\nabcd\r\n",
    "size-not-hex": b"zz\r\nab\r\n",
    "size-with-plus": b"+2\r\nab\r\n",
    "size-with-0x": b"0x2\r\nab\r\n",
    "size-with-underscore": b"0_2\r\nab\r\n",
    "size-negative": b"-2\r\nab\r\n",
    "size-empty": b"\r\nab\r\n",
    "size-two-numbers": b"2 2\r\nab\r\n",
    "size-bare-lf": b"2\nab\r\n",
}


@pytest.mark.parametrize("bad_chunk", BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
async def test_a_framing_error_in_a_stream_raises_and_loses_no_row_silently(
    open_client: OpenClient, bad_chunk: bytes
) -> None:
    async with serving(first_connection_sends(chunked_rows_with(bad_chunk))) as server:
        db = Database(open_client(server.url), "db")
        seen: list[str] = []
        with pytest.raises(InvalidResponseError):
            async for doc in db.docs():
                seen.append(doc.id)
        assert len(seen) < len(ROWS)
        await next_call_gets_its_own_answer(db)


async def test_an_attachment_with_a_chunk_longer_than_its_size_raises(
    open_client: OpenClient,
) -> None:
    framed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdefgh\r\n0\r\n\r\n"
    async with serving(first_connection_sends(framed)) as server:
        db = Database(open_client(server.url), "db")
        with pytest.raises(InvalidResponseError):
            await guarded(fetch_attachment(db))
        await next_call_gets_its_own_answer(db)


CUT_BODIES = {
    "content-length": OK_HEAD + b"Content-Length: 100\r\n\r\n" + doc_body("doc")[:20],
    "mid-chunk": CHUNKED_HEAD + b"40\r\n" + doc_body("doc")[:20],
    "before-last-chunk": CHUNKED_HEAD + chunked(doc_body("doc"))[:-5],
    "in-chunk-size": CHUNKED_HEAD + b"4",
}


@pytest.mark.parametrize("call", ALL_CALLS, ids=call_id)
@pytest.mark.parametrize("cut", CUT_BODIES.values(), ids=CUT_BODIES.keys())
async def test_a_body_cut_short_raises_incomplete_response(
    open_client: OpenClient, cut: bytes, call: Callable[[Database], Awaitable[Any]]
) -> None:
    async with serving(first_connection_sends(cut, then="close")) as server:
        db = Database(open_client(server.url), "db")
        with pytest.raises(IncompleteResponseError):
            await guarded(call(db))
        await next_call_gets_its_own_answer(db)


# --- 9: a parser at least as strict as llhttp (RFC 9112) ---

BODY = doc_body("doc")
LENGTH = b"Content-Length: %d\r\n" % len(BODY)
MALFORMED_HEADS = {
    "content-length-with-transfer-encoding": OK_HEAD
    + LENGTH
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + chunked(BODY),
    "status-negative": b"HTTP/1.1 -200 OK\r\n" + LENGTH + b"\r\n" + BODY,
    "status-four-digits": b"HTTP/1.1 2000 OK\r\n" + LENGTH + b"\r\n" + BODY,
    "status-letters": b"HTTP/1.1 2OO OK\r\n" + LENGTH + b"\r\n" + BODY,
    "no-status-line": b"garbage\r\n" + LENGTH + b"\r\n" + BODY,
    "length-plus": OK_HEAD + b"Content-Length: +%d\r\n\r\n" % len(BODY) + BODY,
    "length-underscore": OK_HEAD + b"Content-Length: 0_%d\r\n\r\n" % len(BODY) + BODY,
    "length-hex": OK_HEAD + b"Content-Length: 0x%x\r\n\r\n" % len(BODY) + BODY,
    "length-negative": OK_HEAD + b"Content-Length: -1\r\n\r\n" + BODY,
    "two-different-lengths": OK_HEAD + LENGTH + b"Content-Length: 3\r\n\r\n" + BODY,
    "header-without-colon": OK_HEAD + b"X-Broken\r\n" + LENGTH + b"\r\n" + BODY,
    "space-before-colon": OK_HEAD + b"X-Broken : 1\r\n" + LENGTH + b"\r\n" + BODY,
    "nul-in-value": OK_HEAD + b"X-Broken: a\x00b\r\n" + LENGTH + b"\r\n" + BODY,
    "bare-cr-in-head": OK_HEAD + b"X-Broken: a\rb\r\n" + LENGTH + b"\r\n" + BODY,
    "bad-trailer": CHUNKED_HEAD + b"%x\r\n%s\r\n0\r\nno colon\r\n\r\n" % (len(BODY), BODY),
    "unknown-transfer-encoding": OK_HEAD + b"Transfer-Encoding: gzip\r\n\r\n" + BODY,
    "chunked-then-identity": OK_HEAD
    + b"Transfer-Encoding: chunked, identity\r\n\r\n"
    + chunked(BODY),
}
# llhttp (aiohttp) accepts these; the lean parser refuses them (RFC 9112 allows a client
# to refuse each, and accepting them opens the door to reading a response differently
# from a proxy in front of it).
LEAN_ONLY_MALFORMED_HEADS = {
    "obs-fold": OK_HEAD + b"X-Folded: a\r\n b\r\n" + LENGTH + b"\r\n" + BODY,
    "bare-lf-head": b"HTTP/1.1 200 OK\nContent-Length: %d\n\n" % len(BODY) + BODY,
    "vertical-tab-in-value": OK_HEAD + b"X-Broken: a\x0bb\r\n" + LENGTH + b"\r\n" + BODY,
    "http-2-status-line": b"HTTP/2.0 200 OK\r\n" + LENGTH + b"\r\n" + BODY,
    "transfer-encoding-twice": OK_HEAD
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    + chunked(BODY),
    "chunk-data-ending-in-bare-lf": CHUNKED_HEAD + b"%x\r\n%s\n0\r\n\r\n" % (len(BODY), BODY),
}


@pytest.mark.parametrize("raw", MALFORMED_HEADS.values(), ids=MALFORMED_HEADS.keys())
async def test_a_malformed_response_raises_invalid_response(
    open_client: OpenClient, raw: bytes
) -> None:
    async with serving(first_connection_sends(raw, then="answer")) as server:
        db = Database(open_client(server.url), "db")
        with pytest.raises(InvalidResponseError):
            await guarded(get_doc(db))
        await next_call_gets_its_own_answer(db)


@pytest.mark.parametrize(
    "raw", LEAN_ONLY_MALFORMED_HEADS.values(), ids=LEAN_ONLY_MALFORMED_HEADS.keys()
)
async def test_the_lean_parser_refuses_what_rfc_9112_lets_a_client_refuse(raw: bytes) -> None:
    handler = first_connection_sends(raw, then="answer")
    async with serving(handler) as server, CouchDB(server.url) as client:
        db = Database(client, "db")
        with pytest.raises(InvalidResponseError):
            await guarded(get_doc(db))
        await next_call_gets_its_own_answer(db)


@pytest.mark.parametrize("value", ["keep-alive, close", "Close", "upgrade,  close"])
async def test_a_connection_the_server_closes_in_a_list_is_not_reused(
    open_client: OpenClient, value: str
) -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        body = doc_body(request.target.rsplit("/", 1)[-1])
        await connection.send(http_response(200, body, headers=[("Connection", value)]))

    async with serving(handler) as server:
        db = Database(open_client(server.url), "db")
        assert (await guarded(db.get("one"))).id == "one"
        assert (await guarded(db.get("two"))).id == "two"
    assert [r.connection for r in server.requests] == [0, 1]


# --- 4: bounded memory and CPU against endless lines and floods ---

ENDLESS = {
    "chunk-size-line": (CHUNKED_HEAD, b"1" * 65536),
    "chunk-extension": (CHUNKED_HEAD + b"1;ext=", b"a" * 65536),
    "line-after-chunk-data": (CHUNKED_HEAD + b"2\r\n{}", b"x" * 65536),
    "trailer": (CHUNKED_HEAD + b"2\r\n{}\r\n0\r\nX-Trailer: ", b"t" * 65536),
    "head": (OK_HEAD + b"X-Endless: ", b"h" * 65536),
    "header-flood": (OK_HEAD, b"X-Flood: 1\r\n" * 5000),
    "status-line": (b"HTTP/1.1 200 ", b"r" * 65536),
}


@pytest.mark.parametrize(("start", "piece"), ENDLESS.values(), ids=ENDLESS.keys())
async def test_an_endless_line_raises_in_bounded_memory(
    open_client: OpenClient, transport_name: str, start: bytes, piece: bytes
) -> None:
    expected: Any = InvalidResponseError
    if transport_name == AIOHTTP and piece == ENDLESS["chunk-extension"][1]:
        # llhttp skips chunk extensions of any length in constant memory: the call ends
        # only when the server falls silent.
        expected = (InvalidResponseError, ReadTimeoutError)

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if connection.number != 0:
            await answer_well(request, connection)
            return
        await connection.send(start)
        for _ in range(512):  # 32 MiB at most, then the server gives up
            await connection.send(piece)

    async with serving(handler) as server:
        db = Database(open_client(server.url, timeout=stall_limit(sock_read=2.0)), "db")
        tracemalloc.start()
        try:
            with pytest.raises(expected):
                await guarded(get_doc(db))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * 1024 * 1024
        await next_call_gets_its_own_answer(db)


# --- 2/3: time limits ---


def stalls_after(*pieces: bytes) -> Handler:
    """The first connection sends ``pieces``, then stays silent, then (late) the answer."""

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if connection.number != 0:
            await answer_well(request, connection)
            return
        await connection.send_pieces(pieces)
        await asyncio.sleep(STALL_LIMIT * 4)
        # a late answer: whoever reads it on this connection reads a stale answer
        await connection.send(good_answer(request))
        await asyncio.sleep(3600)

    return handler


def first_rows_of(call: Callable[..., Any]) -> tuple[bytes, ...]:
    """The head and the start of a body for ``call``, cut where the server stalls."""
    if call in (docs, values, akeys):
        body = rows_body(ROWS_WITH_DOCS)
    elif call is find:
        body = b'{"docs":[\n{"_id":"r0","_rev":"1-a"},\n'
    elif call in (changes, continuous_changes):
        body = b'{"results":[\n{"seq":"1-x","id":"r0","changes":[{"rev":"1-a"}]},\n'
    elif call in (view_keys, view_values):
        body = rows_body(ROWS)
    else:
        body = doc_body("doc")
    cut = body[: len(body) // 2]
    if call is continuous_changes:
        cut = b'{"seq":"1-x","id":"r0","changes":[{"rev":"1-a"}]}\n{"seq":'
    return (CHUNKED_HEAD, b"%x\r\n%s\r\n" % (len(cut), cut))


@pytest.mark.parametrize("call", ALL_CALLS, ids=call_id)
async def test_a_server_silent_before_the_head_raises_read_timeout(
    open_client: OpenClient, call: Callable[[Database], Awaitable[Any]]
) -> None:
    async with serving(stalls_after()) as server:
        db = Database(open_client(server.url, timeout=stall_limit()), "db")
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            await guarded(call(db))
        assert time.monotonic() - started < GUARD / 2
        await next_call_gets_its_own_answer(db)


@pytest.mark.parametrize("call", ALL_CALLS, ids=call_id)
async def test_a_server_silent_mid_body_raises_read_timeout(
    open_client: OpenClient, call: Callable[[Database], Awaitable[Any]]
) -> None:
    async with serving(stalls_after(*first_rows_of(call))) as server:
        db = Database(open_client(server.url, timeout=stall_limit()), "db")
        with pytest.raises(ReadTimeoutError):
            await guarded(call(db))
        await next_call_gets_its_own_answer(db)


# A continuous feed that keeps sending heartbeats is alive, however long it lasts (it has
# no total limit, as in 4.0.1: tests/test_changes.py).
@pytest.mark.parametrize(
    "call", [call for call in ALL_CALLS if call is not continuous_changes], ids=call_id
)
async def test_a_trickling_answer_raises_read_timeout_after_total(
    open_client: OpenClient, call: Callable[[Database], Awaitable[Any]]
) -> None:
    head, first = first_rows_of(call)

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if connection.number != 0:
            await answer_well(request, connection)
            return
        await connection.send(head + first)
        for _ in range(400):  # never silent longer than sock_read, never done
            await connection.send(b"1\r\n \r\n", pause=0.05)

    async with serving(handler) as server:
        timeout = aiohttp.ClientTimeout(total=1.0, sock_read=5.0, connect=10.0)
        db = Database(open_client(server.url, timeout=timeout), "db")
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            await guarded(call(db))
        assert time.monotonic() - started < 5.0
        await next_call_gets_its_own_answer(db)


async def test_a_stalled_stream_raises_as_aiohttp_and_asyncio_timeouts(
    open_client: OpenClient,
) -> None:
    async with serving(stalls_after(*first_rows_of(docs))) as server:
        db = Database(open_client(server.url, timeout=stall_limit()), "db")
        with pytest.raises(ReadTimeoutError) as caught:
            await guarded(docs(db))
    assert isinstance(caught.value, aiohttp.SocketTimeoutError)
    assert isinstance(caught.value, asyncio.TimeoutError)


async def test_a_hundred_stalled_streams_do_not_block_a_call_beyond_its_connect_limit(
    open_client: OpenClient,
) -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if "_all_docs" in request.target:
            await connection.send_pieces(first_rows_of(docs))
            await asyncio.sleep(3600)
        await answer_well(request, connection)

    async with serving(handler) as server:
        client = open_client(server.url, timeout=aiohttp.ClientTimeout(connect=0.5, sock_read=60))
        db = Database(client, "db")
        # The streams get all the time they need to connect, on a loaded machine too:
        # only the call after them is to meet the client's 0.5 s connect limit.
        with client.timeouts(aiohttp.ClientTimeout(connect=60.0, sock_read=60.0)):
            streams = [asyncio.ensure_future(docs(db)) for _ in range(100)]
        try:
            for _ in range(600):
                if server.connections >= 100:
                    break
                await asyncio.sleep(0.05)
            assert server.connections == 100
            assert not any(stream.done() for stream in streams)
            started = time.monotonic()
            with pytest.raises(ConnectTimeoutError):
                await guarded(db.get("next-doc"))
            assert time.monotonic() - started < 5.0
        finally:
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
        await next_call_gets_its_own_answer(db)


@contextlib.contextmanager
def port_that_never_accepts() -> Iterator[int]:
    """A loopback port whose accept queue is full: a connect there waits for ever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    queued = []
    try:
        for _ in range(64):
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(address)
            queued.append(client)
            _, writable, _ = select.select([], [client], [], 0.2)
            if not writable:
                break
        else:
            pytest.skip("the kernel accepted every connection: cannot make connect stall")
        yield address[1]
    finally:
        for client in queued:
            client.close()
        listener.close()


async def test_a_connect_that_never_completes_raises_connect_timeout(
    open_client: OpenClient,
) -> None:
    with port_that_never_accepts() as port:
        timeout = aiohttp.ClientTimeout(sock_connect=0.3, connect=10.0, sock_read=10.0)
        client = open_client(f"http://127.0.0.1:{port}", timeout=timeout)
        started = time.monotonic()
        with pytest.raises(ConnectTimeoutError) as caught:
            await guarded(client.info())
        assert time.monotonic() - started < 5.0
    assert isinstance(caught.value, aiohttp.ConnectionTimeoutError)


async def test_a_refused_connection_raises_client_connector_error(
    open_client: OpenClient,
) -> None:
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()  # nothing listens there now
    client = open_client(f"http://127.0.0.1:{port}")
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await guarded(client.info())
    assert caught.value.port == port
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_cancelling_a_stream_mid_body_discards_its_connection(
    open_client: OpenClient,
) -> None:
    async with serving(stalls_after(*first_rows_of(docs))) as server:
        db = Database(open_client(server.url, timeout=aiohttp.ClientTimeout(sock_read=60)), "db")
        first_row = asyncio.Event()

        async def read_all() -> None:
            async for _ in db.docs():
                first_row.set()

        reader = asyncio.ensure_future(read_all())
        await guarded(first_row.wait())
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await next_call_gets_its_own_answer(db)
        # the late answer on the first connection was read by nobody
        await asyncio.sleep(STALL_LIMIT * 5)
        await next_call_gets_its_own_answer(db)


async def test_cancelling_a_whole_response_mid_body_discards_its_connection(
    open_client: OpenClient,
) -> None:
    async with serving(stalls_after(OK_HEAD + b"Content-Length: 1000\r\n\r\n{")) as server:
        db = Database(open_client(server.url, timeout=aiohttp.ClientTimeout(sock_read=60)), "db")
        call = asyncio.ensure_future(db.get("doc"))
        for _ in range(100):
            if server.requests:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await next_call_gets_its_own_answer(db)


# --- 5: a write reaches the server once ---


@pytest.mark.parametrize("drop", ["close", "reset"])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_a_write_on_a_dropped_reused_connection_is_sent_once(
    open_client: OpenClient, transport_name: str, method: str, drop: str
) -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if connection.number == 0 and request.method == method:
            # read, applied, never answered
            if drop == "close":
                connection.close()
            else:
                connection.reset()
            return
        await answer_well(request, connection)

    # aiohttp reports a reset as what 4.0.1 raised for it, a ClientOSError.
    dropped = (
        aiohttp.ClientOSError
        if drop == "reset" and transport_name == AIOHTTP
        else aiohttp.ServerDisconnectedError
    )
    async with serving(handler) as server:
        db = Database(open_client(server.url), "db")
        doc = await guarded(db.get("doc"))  # leaves a kept-alive connection to reuse
        if method == "PUT":
            doc["changed"] = True
        with pytest.raises(dropped):
            await guarded(doc.save() if method == "PUT" else doc.delete())
        assert server.count(method) == 1
        await next_call_gets_its_own_answer(db)
    assert server.count(method) == 1


@pytest.mark.parametrize("drop", ["close", "reset"])
async def test_a_read_on_a_dropped_reused_connection_is_sent_again(
    open_client: OpenClient, drop: str
) -> None:
    # A server closing (or resetting) a kept-alive connection just as the client reuses
    # it: the classic race of keep-alive, here made certain.
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if connection.number == 0 and request.index == 1:
            # read, never answered: a GET may be repeated
            if drop == "close":
                connection.close()
            else:
                connection.reset()
            return
        await answer_well(request, connection)

    async with serving(handler) as server:
        db = Database(open_client(server.url), "db")
        assert (await guarded(db.get("first"))).id == "first"
        assert (await guarded(db.get("second"))).id == "second"
    assert [(r.connection, r.target) for r in server.requests] == [
        (0, "/db/first"),
        (0, "/db/second"),
        (1, "/db/second"),
    ]


# --- 6: aiohttp's errors mapped; no credentials in any of them ---


def secret_client(open_client: OpenClient, url: str, **options: Any) -> CouchDB:
    return open_client(
        url,
        user="admin",
        password=PASSWORD,
        cookie=COOKIE,
        headers={"X-Auth-CouchDB-Token": PROXY_TOKEN},
        **options,
    )


def assert_no_secrets(error: BaseException) -> None:
    """No credential in ``error``, its request_info, history, args, causes and contexts."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts = [str(current), repr(current), repr(current.args)]
        texts.append(repr(getattr(current, "request_info", None)))
        for response in getattr(current, "history", None) or ():
            texts += [repr(response), repr(response.request_info)]
        for text in texts:
            for secret in SECRETS:
                assert secret not in text, (type(current), text)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


async def test_the_credentials_reach_the_server(open_client: OpenClient) -> None:
    async with serving(answer_well) as server:
        await guarded(secret_client(open_client, server.url).info())
    [request] = server.requests
    assert request.header("Authorization") == "Basic " + SECRETS[1]
    assert request.header("Cookie") == f"AuthSession={COOKIE}"
    assert request.header("X-Auth-CouchDB-Token") == PROXY_TOKEN


SECRET_CASES = {
    "malformed-head": (
        b"HTTP/1.1 -200 OK\r\n" + LENGTH + b"\r\n" + BODY,
        InvalidResponseError,
    ),
    "cut-body": (OK_HEAD + b"Content-Length: 100\r\n\r\n{", IncompleteResponseError),
    "bad-chunk": (CHUNKED_HEAD + b"zz\r\n", InvalidResponseError),
    "not-found": (http_response(404, b'{"error":"not_found","reason":"missing"}'), NotFoundError),
}


@pytest.mark.parametrize(("raw", "error"), SECRET_CASES.values(), ids=SECRET_CASES.keys())
async def test_errors_carry_no_credentials(
    open_client: OpenClient, raw: bytes, error: type[Exception]
) -> None:
    async with serving(first_connection_sends(raw, then="close")) as server:
        db = Database(secret_client(open_client, server.url), "db")
        with pytest.raises(error) as caught:
            await guarded(get_doc(db))
        assert_no_secrets(caught.value)
        request_info = getattr(caught.value, "request_info", None)
        assert request_info is not None
        assert request_info.url.path == "/db/doc"
        assert request_info.headers["Accept"] == "application/json"


async def test_a_stall_error_carries_no_credentials(open_client: OpenClient) -> None:
    async with serving(stalls_after()) as server:
        db = Database(secret_client(open_client, server.url, timeout=stall_limit()), "db")
        with pytest.raises(ReadTimeoutError) as caught:
            await guarded(docs(db))
    assert_no_secrets(caught.value)


async def redirect_forever(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    await connection.send(http_response(302, b"", headers=[("Location", request.target)]))


async def test_endless_redirects_raise_a_typed_error_without_credentials(
    open_client: OpenClient, transport_name: str
) -> None:
    async with serving(redirect_forever) as server:
        db = Database(secret_client(open_client, server.url), "db")
        with pytest.raises(RemoteResponseError) as caught:
            await guarded(db.get("doc"))
    assert_no_secrets(caught.value)
    if transport_name == AIOHTTP:  # aiohttp follows redirects (as for aiocouch 4.0.1)
        assert isinstance(caught.value, InvalidResponseError)
        assert "redirect" in str(caught.value).lower()
    else:  # the lean transport follows none
        assert caught.value.status == 302


async def test_an_error_after_a_redirect_keeps_no_credentials_in_its_history(
    open_client: OpenClient,
) -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if request.target == "/db/doc":
            await connection.send(http_response(302, b"", headers=[("Location", "/db/moved")]))
        else:
            await connection.send(http_response(404, b'{"error":"not_found","reason":"x"}'))

    async with serving(handler) as server:
        db = Database(secret_client(open_client, server.url), "db")
        with pytest.raises(RemoteResponseError) as caught:
            await guarded(db.get("doc"))
    assert_no_secrets(caught.value)


# --- 7: identity encoding asked for; what cannot be decoded is refused ---


async def test_every_request_asks_for_the_identity_encoding(open_client: OpenClient) -> None:
    async with serving(answer_well) as server:
        client = open_client(server.url)
        db = Database(client, "db")
        await guarded(client.info())
        doc = await guarded(db.get("doc"))
        doc["x"] = 1
        await guarded(doc.save())
        await guarded(docs(db))
        await guarded(find(db))
        await guarded(continuous_changes(db))
    assert len(server.requests) == 6
    for request in server.requests:
        assert request.header("Accept-Encoding") == "identity", request


def gzip_answer(body: bytes) -> bytes:
    return http_response(200, gzip.compress(body), headers=[("Content-Encoding", "gzip")])


async def test_a_gzip_answer_is_decoded_by_aiohttp_and_refused_by_the_lean_transport(
    open_client: OpenClient, transport_name: str
) -> None:
    async with serving(first_connection_sends(gzip_answer(BODY), then="close")) as server:
        db = Database(open_client(server.url), "db")
        if transport_name == AIOHTTP:
            assert await guarded(get_doc(db)) == ("doc", "doc")
        else:
            with pytest.raises(InvalidResponseError, match="gzip"):
                await guarded(get_doc(db))
        await next_call_gets_its_own_answer(db)


@pytest.mark.parametrize("call", [get_doc, docs, fetch_attachment], ids=call_id)
async def test_an_unknown_content_encoding_raises_naming_it(
    open_client: OpenClient, call: Callable[[Database], Awaitable[Any]]
) -> None:
    raw = http_response(200, BODY, headers=[("Content-Encoding", "x-secret-zip")])
    async with serving(first_connection_sends(raw, then="close")) as server:
        db = Database(open_client(server.url), "db")
        with pytest.raises(InvalidResponseError, match="x-secret-zip"):
            await guarded(call(db))
        await next_call_gets_its_own_answer(db)


@pytest.mark.parametrize("call", [get_doc, docs, fetch_attachment], ids=call_id)
async def test_the_connection_of_an_unknown_content_encoding_is_not_reused(
    open_client: OpenClient, call: Callable[[Database], Awaitable[Any]]
) -> None:
    # The refused answer arrives whole (aiohttp then takes its connection back at once);
    # the connection stays open and silent: a call reusing it would wait for nothing.
    raw = http_response(200, BODY, headers=[("Content-Encoding", "x-secret-zip")])
    async with serving(first_connection_sends(raw, then="stall")) as server:
        db = Database(open_client(server.url, timeout=stall_limit(sock_read=5.0)), "db")
        with pytest.raises(InvalidResponseError, match="x-secret-zip"):
            await guarded(call(db))
        await next_call_gets_its_own_answer(db)
    assert [request.connection for request in server.requests] == [0, 1]


# --- 11: control characters in caller-supplied headers never reach the wire ---

CONTROL_CHARACTERS = ["\x00", "\r", "\n", "\x0b", "\x1f", "\x7f", "\x1b"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=repr)
async def test_a_control_character_in_an_attachment_content_type_is_refused(
    open_client: OpenClient, char: str
) -> None:
    async with serving(answer_well) as server:
        db = Database(open_client(server.url), "db")
        doc = await guarded(db.get("doc"))
        with pytest.raises(ValueError, match="Content-Type"):
            await guarded(doc.attachment("att").save(b"data", f"text/plain{char}x"))
    assert [r.method for r in server.requests] == ["GET"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=repr)
async def test_a_control_character_in_a_copy_destination_is_refused(
    open_client: OpenClient, char: str
) -> None:
    async with serving(answer_well) as server:
        db = Database(open_client(server.url), "db")
        doc = await guarded(db.get("doc"))
        with pytest.raises(ValueError, match=r"(?i)destination"):
            await guarded(doc.copy(f"copy{char}x"))
    assert [r.method for r in server.requests] == ["GET"]


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=repr)
async def test_a_control_character_in_a_custom_header_is_refused(
    open_client: OpenClient, char: str
) -> None:
    async with serving(answer_well) as server:
        with pytest.raises(ValueError, match="X-Custom"):
            client = open_client(server.url, headers={"X-Custom": f"a{char}b"})
            await guarded(client.info())
    assert server.requests == []
    assert server.connections == 0


async def test_a_header_name_that_is_no_token_is_refused(open_client: OpenClient) -> None:
    async with serving(answer_well) as server:
        with pytest.raises(ValueError, match="X Custom"):
            client = open_client(server.url, headers={"X Custom": "1"})
            await guarded(client.info())
    assert server.requests == []


async def test_a_tab_in_a_header_value_is_allowed(open_client: OpenClient) -> None:
    async with serving(answer_well) as server:
        await guarded(open_client(server.url, headers={"X-Custom": "a\tb"}).info())
    assert server.requests[0].header("X-Custom") == "a\tb"


# --- 12: a closed client raises and opens nothing ---


async def test_a_closed_client_raises_session_is_closed_and_connects_nowhere(
    open_client: OpenClient,
) -> None:
    async with serving(answer_well) as server:
        client = open_client(server.url)
        db = Database(client, "db")
        await guarded(client.info())
        await client.close()
        connections = server.connections
        for call in (client.info(), db.get("doc"), docs(db), continuous_changes(db)):
            with pytest.raises(RuntimeError, match="Session is closed"):
                await guarded(call)
        await asyncio.sleep(0.05)
        assert server.connections == connections
    assert len(server.requests) == 1


async def test_a_client_closed_before_its_first_request_connects_nowhere(
    open_client: OpenClient,
) -> None:
    async with serving(answer_well) as server:
        client = open_client(server.url)
        await client.close()
        with pytest.raises(RuntimeError, match="Session is closed"):
            await guarded(client.info())
    assert server.connections == 0


async def ignore(*args: Any) -> None:
    """A trace hook that does nothing."""


async def test_a_closed_aiohttp_client_without_a_connector_of_its_own_reconnects_nowhere() -> None:
    # (a hook other than on_request_start selects aiohttp; no connector= to close with it)
    config = aiohttp.TraceConfig()
    config.on_request_end.append(ignore)
    async with serving(answer_well) as server:
        client = CouchDB(server.url, trace_configs=[config])
        assert type(client._server._transport).__name__ == AIOHTTP
        await guarded(client.info())
        await client.close()
        with pytest.raises(RuntimeError, match="Session is closed"):
            await guarded(client.info())
        assert server.connections == 1
    assert len(server.requests) == 1
