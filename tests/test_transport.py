"""The two transports through the public API: the lean HTTP/1.1 client and aiohttp.

The first half runs every test on the test server twice, once per transport. The second
half is about the lean transport only, against small local servers that misbehave on
purpose (closing kept-alive connections, sending stray bytes, huge bodies) and record
which TCP connection each request arrived on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from aiocouch import CouchDB, Database, Document, NotFoundError
from aiocouch import _http as http_module
from aiocouch._http_transport import HTTPTransport
from aiocouch.cluster import Quorum
from testserver.traced_memory import held_after_reads

T = TypeVar("T")

LEAN, AIOHTTP = "HTTPTransport", "AiohttpTransport"
OpenClient = Callable[..., CouchDB]


def transport_of(client: CouchDB) -> str:
    return type(client._server._transport).__name__


# --- both transports, on the test server ---


@pytest.fixture(params=[LEAN, AIOHTTP], ids=["lean", "aiohttp"])
def transport_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def open_client(
    client_factory: Callable[..., CouchDB],
    transport_name: str,
    server_url: str,
    admin_user: str,
    admin_password: str,
    quorum: Quorum | None,
) -> OpenClient:
    """Opens admin clients on the chosen transport; on a cluster they write and read every
    copy, as tests read their own writes."""
    transport = "aiohttp" if transport_name == AIOHTTP else "lean"

    def open_client(**options: Any) -> CouchDB:
        options.setdefault("quorum", quorum)
        client = client_factory(
            server_url, transport, user=admin_user, password=admin_password, **options
        )
        assert transport_of(client) == transport_name
        return client

    return open_client


@pytest.fixture
async def client(open_client: OpenClient) -> CouchDB:
    return open_client()


@pytest.fixture
async def db(client: CouchDB, database: Database) -> Database:
    """The test's scratch database, seen through ``client``."""
    return await client[database.id]


async def create_numbered_docs(db: Database, count: int) -> list[str]:
    ids = [f"doc-{i:05}" for i in range(count)]
    async with db.create_docs() as bulk:
        for i, doc_id in enumerate(ids):
            bulk.create(doc_id, data={"n": i})
    return ids


def test_the_client_uses_the_chosen_transport(client: CouchDB, transport_name: str) -> None:
    assert transport_of(client) == transport_name


async def test_document_create_get_save_delete(db: Database) -> None:
    doc = await db.create("doc")
    doc["value"] = 1
    await doc.save()
    fetched = await db.get("doc")
    assert fetched["value"] == 1
    assert fetched.rev == doc.rev
    fetched["value"] = 2
    await fetched.save()
    assert (await db.get("doc"))["value"] == 2
    await fetched.delete()
    with pytest.raises(NotFoundError):
        await db.get("doc")


async def test_document_id_needing_quoting(db: Database) -> None:
    doc_id = "a/b?c%d é"
    doc = Document(db, doc_id)
    doc["value"] = doc_id
    await doc.save()
    fetched = await db.get(doc_id)
    assert fetched.id == doc_id
    assert fetched["value"] == doc_id
    assert [key async for key in db.akeys()] == [doc_id]
    await fetched.delete()
    assert [key async for key in db.akeys()] == []


async def test_not_found_error_shows_no_credentials(
    db: Database, admin_user: str, admin_password: str
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await db.get("missing")
    error = caught.value
    assert error.status == 404
    assert error.request_info is not None
    assert error.request_info.method == "GET"
    assert error.request_info.url.path.endswith("/missing")
    token = base64.b64encode(f"{admin_user}:{admin_password}".encode()).decode()
    for text in (str(error), repr(error), str(error.request_info.url)):
        assert admin_password not in text
        assert token not in text


async def test_not_found_request_info_has_no_credentials(
    db: Database, admin_user: str, admin_password: str
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await db.get("missing")
    request_info = caught.value.request_info
    assert request_info is not None
    assert "Authorization" not in request_info.headers
    assert request_info.headers["Accept"] == "application/json"
    token = base64.b64encode(f"{admin_user}:{admin_password}".encode()).decode()
    assert token not in repr(request_info)
    assert admin_password not in repr(request_info)


async def test_abandoned_stream_does_not_poison_the_connections(db: Database) -> None:
    ids = await create_numbered_docs(db, 3000)
    for _ in range(3):
        seen = []
        async for doc in db.docs():
            seen.append(doc.id)
            if len(seen) == 10:
                break
        assert seen == ids[:10]
        # the rest of that response is still on its way: it must not be read as an answer
        for n in (0, 1234, 2999):
            assert (await db.get(ids[n]))["n"] == n
        assert (await db.info())["doc_count"] == 3000
    assert [doc.id async for doc in db.docs()] == ids


async def test_continuous_changes_feed_delivers_a_concurrent_save(db: Database) -> None:
    feed = db.changes(feed="continuous", since="now")

    async def first_event() -> Any:
        async for event in feed:
            return event
        return None

    async def keep_saving() -> None:
        # one save could come before the feed started; keep saving until an event comes
        for i in range(100):
            await asyncio.sleep(0.1)
            doc = Document(db, f"concurrent-{i}")
            doc["i"] = i
            await doc.save()

    saver = asyncio.ensure_future(keep_saving())
    try:
        event = await asyncio.wait_for(first_event(), 10)
    finally:
        saver.cancel()
        await feed.aclose()
    assert event is not None
    assert event.id.startswith("concurrent-")
    assert (await db.get(event.id))["i"] == int(event.id.split("-")[1])


async def test_attachments_round_trip(db: Database) -> None:
    doc = Document(db, "with-attachments")
    await doc.save()
    small = b"\x00\x01 binary \xff\r\n"
    await doc.attachment("small.bin").save(small, "application/octet-stream")
    assert await doc.attachment("small.bin").fetch() == small
    for size in (2 * 1024 * 1024, 6 * 1024 * 1024):  # the second above the 4 MiB buffer
        data = os.urandom(size)
        attachment = doc.attachment(f"{size}.bin")
        await attachment.save(data, "application/octet-stream")
        assert await attachment.fetch() == data
        assert attachment.content_type == "application/octet-stream"
    assert await doc.attachment("small.bin").fetch() == small


async def test_fifty_concurrent_gets(db: Database) -> None:
    ids = await create_numbered_docs(db, 50)
    docs = await asyncio.gather(*(db.get(doc_id) for doc_id in ids))
    assert [doc.id for doc in docs] == ids
    assert [doc["n"] for doc in docs] == list(range(50))


async def test_a_tiny_total_timeout_raises_timeout_error(
    open_client: OpenClient, database: Database
) -> None:
    client = open_client(timeout=aiohttp.ClientTimeout(total=1e-6))
    with pytest.raises(asyncio.TimeoutError):
        await client.info()
    with pytest.raises(asyncio.TimeoutError):
        await Database(client, database.id).get("anything")


# --- HTTPTransport.serves ---


async def ignore(*args: Any) -> None:
    """A trace hook that does nothing."""


def on_request_start_only() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(ignore)
    return config


async def test_serves_plain_http_with_timeout_and_request_start_hooks() -> None:
    assert HTTPTransport.serves("http://127.0.0.1:5984", {})
    assert HTTPTransport.serves("http://couch/prefix/", {"user": None, "password": None})
    client = CouchDB(
        "http://127.0.0.1:5984",
        "u",
        "p",
        cookie=None,
        headers={"X-A": "1"},
        timeout=aiohttp.ClientTimeout(total=5),
        trace_configs=[on_request_start_only(), aiohttp.TraceConfig()],
    )
    assert transport_of(client) == LEAN
    await client.close()


@pytest.mark.parametrize("url", ["unix:///tmp/couch.sock", "ftp://couch", "http://", "https://"])
def test_does_not_serve_other_urls(url: str) -> None:
    assert not HTTPTransport.serves(url, {})


@pytest.mark.parametrize(
    "option",
    [
        "connector",
        "cookie_jar",
        "auto_decompress",
        "raise_for_status",
        "json_serialize",
        "trust_env",
        "skip_auto_headers",
    ],
)
def test_does_not_serve_other_aiohttp_options(option: str) -> None:
    assert not HTTPTransport.serves("http://127.0.0.1:5984", {option: None})


@pytest.mark.parametrize(
    "hook", ["on_request_end", "on_request_exception", "on_response_chunk_received"]
)
def test_does_not_serve_trace_configs_with_other_hooks(hook: str) -> None:
    config = on_request_start_only()
    getattr(config, hook).append(ignore)
    assert not HTTPTransport.serves("http://127.0.0.1:5984", {"trace_configs": [config]})


def test_does_not_serve_a_timeout_other_than_client_timeout() -> None:
    assert not HTTPTransport.serves("http://127.0.0.1:5984", {"timeout": 5})
    assert not HTTPTransport.serves("http://127.0.0.1:5984", {"timeout": None})


def test_client_options_choose_the_transport() -> None:
    assert transport_of(CouchDB("http://127.0.0.1:5984", "u", "p")) == LEAN
    timeout = aiohttp.ClientTimeout(total=1)
    assert transport_of(CouchDB("http://127.0.0.1:5984", timeout=timeout)) == LEAN
    assert transport_of(CouchDB("https://127.0.0.1:6984", "u", "p")) == LEAN
    config = on_request_start_only()
    config.on_request_end.append(ignore)
    assert transport_of(CouchDB("http://127.0.0.1:5984", trace_configs=[config])) == AIOHTTP


# --- the lean transport against misbehaving local servers ---


class RawServer:
    """A raw HTTP/1.1 server answering every request with a small JSON object.

    It records each request as ``(connection number, method, target)``. Misbehaviours:
    ``close_after_answer`` closes each connection right after its first answer, without
    ``Connection: close``; ``drop`` is the index of the request on each connection that is
    read and then answered by closing the connection; ``stray`` bytes are sent on each
    connection shortly after its first answer (the connection stays open).
    """

    def __init__(
        self, *, close_after_answer: bool = False, drop: int | None = None, stray: bytes = b""
    ) -> None:
        self.close_after_answer = close_after_answer
        self.drop = drop
        self.stray = stray
        self.arrived: list[tuple[int, str, str]] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def count(self, method: str, target: str) -> int:
        """How many times ``method target`` arrived."""
        return sum(1 for _, m, t in self.arrived if (m, t) == (method, target))

    def count_bodies(self, part: bytes) -> int:
        """How many request bodies containing ``part`` arrived."""
        return sum(1 for body in self.bodies if part in body)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number = self.connections
        self.connections += 1
        try:
            for index in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                self.bodies.append(await reader.readexactly(length))
                self.arrived.append((number, method, target))
                if index == self.drop:
                    return
                writer.write(self._answer(method, target))
                await writer.drain()
                if self.close_after_answer:
                    return
                if self.stray and index == 0:
                    await asyncio.sleep(0.05)
                    writer.write(self.stray)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    def _answer(method: str, target: str) -> bytes:
        body = json.dumps({"ok": True, "id": target, "rev": "1-a", "method": method}).encode()
        status = "201 Created" if method in ("PUT", "POST") else "200 OK"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head if method == "HEAD" else head + body


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(**behaviour: Any) -> RawServer:
        server = RawServer(**behaviour)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


class WebServer:
    """An aiohttp.web server recording the client port of each request's connection."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.ports: list[int] = []
        self.url = ""
        self._handler = handler
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.ports.append(request.transport.get_extra_info("peername")[1])
        return await self._handler(request)


async def answer_ok(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        {"ok": True, "id": request.path, "rev": "1-a"},
        status=201 if request.method in ("PUT", "POST") else 200,
    )


@pytest.fixture
async def web_server() -> AsyncIterator[Callable[..., Awaitable[WebServer]]]:
    servers: list[WebServer] = []

    async def start(
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = answer_ok,
    ) -> WebServer:
        server = WebServer(handler)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def various_requests(client: CouchDB, round: int) -> None:
    """A GET, a HEAD, a PUT and a POST, through the public API."""
    db = Database(client, "db")
    assert (await client.info())["ok"] is True
    assert (await client["db"]).id == "db"
    doc = Document(db, f"new-{round}")
    doc["round"] = round
    await doc.save()
    assert doc.rev == "1-a"
    assert (await db.index({"fields": ["round"]}))["ok"] is True


async def test_sequential_requests_reuse_one_connection(
    web_server: Callable[..., Awaitable[WebServer]],
) -> None:
    server = await web_server()
    async with CouchDB(server.url, "user", "secret") as client:
        assert transport_of(client) == LEAN
        for round in range(5):
            await various_requests(client, round)
    assert len(server.ports) == 20
    assert len(set(server.ports)) == 1


async def test_concurrent_requests_open_connections_that_are_reused_later(
    web_server: Callable[..., Awaitable[WebServer]],
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return await answer_ok(request)

    server = await web_server(slow)
    async with CouchDB(server.url) as client:
        await asyncio.gather(*(client.info() for _ in range(5)))
        burst = set(server.ports)
        assert len(burst) == 5
        for _ in range(10):
            await client.info()
    assert set(server.ports) == burst


async def test_a_connection_idle_too_long_is_not_reused(
    web_server: Callable[..., Awaitable[WebServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "_KEEPALIVE_SECONDS", 0.05)
    server = await web_server()
    async with CouchDB(server.url) as client:
        await client.info()
        await client.info()
        await asyncio.sleep(0.1)
        await client.info()
    assert server.ports[0] == server.ports[1] != server.ports[2]


async def test_get_on_a_kept_alive_connection_closed_unanswered_is_sent_again(
    raw_server: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await raw_server(drop=1)  # the second request of each connection is dropped
    async with CouchDB(server.url) as client:
        assert transport_of(client) == LEAN
        await client.info()
        assert (await client.info())["ok"] is True
        assert server.arrived == [(0, "GET", "/"), (0, "GET", "/"), (1, "GET", "/")]
        assert (await client["db"]).id == "db"  # a HEAD, also sent again
        assert server.arrived[3:] == [(1, "HEAD", "/db"), (2, "HEAD", "/db")]


async def test_write_on_a_kept_alive_connection_closed_unanswered_is_not_sent_again(
    raw_server: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await raw_server(drop=1)
    # the transport alone: the client's retry policy repeats a checked write (test_retry.py)
    async with CouchDB(server.url, retry=False) as client:
        db = Database(client, "db")
        await client.info()
        doc = Document(db, "doc")
        doc["v"] = 1
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await doc.save()
        assert server.count("PUT", "/db/doc") == 1
        # the next request opens a new connection and is answered
        assert (await db.index({"fields": ["v"]}))["ok"] is True
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await db.index({"fields": ["w"]})
    assert server.count("PUT", "/db/doc") == 1
    assert server.count("POST", "/db/_index") == 2
    assert server.connections == 2


async def test_server_closing_after_each_answer_never_gets_a_write_twice(
    raw_server: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await raw_server(close_after_answer=True)
    saved: set[int] = set()
    indexed: set[int] = set()
    async with CouchDB(server.url) as client:
        db = Database(client, "db")
        for round in range(20):
            # odd rounds let each close arrive first: their writes go out on new connections
            pause = 0.05 if round % 2 else 0.0
            # a GET always succeeds: on a fresh connection, or sent again on one
            assert (await client.info())["ok"] is True
            doc = Document(db, f"doc-{round}")
            doc["round"] = round
            await asyncio.sleep(pause)
            try:
                await doc.save()
            except aiohttp.ServerDisconnectedError:
                pass
            else:
                assert doc.rev == "1-a"
                saved.add(round)
            await asyncio.sleep(pause)
            with contextlib.suppress(aiohttp.ServerDisconnectedError):
                await db.index({"fields": [f"field-{round}"]})
                indexed.add(round)
    assert set(range(1, 20, 2)) <= saved & indexed
    for round in range(20):
        # answered: it arrived exactly once; not answered: once or never, never twice
        puts = server.count("PUT", f"/db/doc-{round}")
        assert puts == 1 if round in saved else puts <= 1, round
        posts = server.count_bodies(b'"field-%d"' % round)
        assert posts == 1 if round in indexed else posts <= 1, round
    assert server.count("GET", "/") >= 20


async def test_stray_bytes_on_an_idle_connection_retire_it(
    raw_server: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await raw_server(stray=b"HTTP/1.1 200 OK\r\nContent-Le")
    async with CouchDB(server.url) as client:
        await client.info()
        await asyncio.sleep(0.2)  # the stray bytes arrive while the connection is idle
        assert (await client.info())["ok"] is True
    assert server.arrived == [(0, "GET", "/"), (1, "GET", "/")]


async def test_connection_close_from_the_server_opens_a_new_connection(
    web_server: Callable[..., Awaitable[WebServer]],
) -> None:
    async def closing(request: web.Request) -> web.StreamResponse:
        response = await answer_ok(request)
        response.force_close()
        return response

    server = await web_server(closing)
    async with CouchDB(server.url) as client:
        for _ in range(3):
            assert (await client.info())["ok"] is True
    assert len(set(server.ports)) == 3


async def test_closing_the_client_ends_a_running_feed_with_an_error(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    # (the aiohttp transport's session.close() leaves a running feed alone)
    client = CouchDB(server_url, admin_user, admin_password)
    assert transport_of(client) == LEAN
    db = await client[database.id]
    await Document(db, "first").save()
    feed = db.changes(feed="continuous")
    event = await asyncio.wait_for(feed.__anext__(), 10)
    assert event.id == "first"
    waiting = asyncio.ensure_future(feed.__anext__())
    await asyncio.sleep(0.1)
    await client.close()
    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(waiting, 10)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_a_20_mb_json_body_is_received_intact(
    web_server: Callable[..., Awaitable[WebServer]], chunked: bool
) -> None:
    data = os.urandom(10 * 1024 * 1024).hex()
    body = json.dumps({"_id": "big", "_rev": "1-a", "data": data}).encode()

    async def big(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse()
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 100_000):
            await response.write(body[start : start + 100_000])
        await response.write_eof()
        return response

    server = await web_server(big)
    async with CouchDB(server.url) as client:
        assert transport_of(client) == LEAN
        doc = await asyncio.wait_for(Database(client, "db").get("big"), 30)
        assert doc["data"] == data
        # the connection is back in the pool, in step, and not paused
        doc = await asyncio.wait_for(Database(client, "db").get("big"), 30)
        assert doc["data"] == data
    assert len(set(server.ports)) == 1


async def test_a_pool_of_connections_that_read_small_answers_holds_little_memory(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    async with CouchDB(server_url, admin_user, admin_password) as client:
        assert transport_of(client) == LEAN
        db = await client[database.id]
        await Document(db, "small", data={"n": 1}).save()
        # 32 reads at once: 32 connections, each kept in the pool afterwards
        docs, held = await held_after_reads(db, "small", 32)
    assert [doc["n"] for doc in docs] == [1] * 32
    # (a read buffer of 128 KiB each would be 4 MiB)
    assert held < 32 * 48 * 1024


async def test_uploading_an_attachment_adds_no_copy_of_it_in_memory(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    size = 16 * 1024 * 1024
    data = os.urandom(size)
    async with CouchDB(server_url, admin_user, admin_password) as client:
        assert transport_of(client) == LEAN
        doc = Document(await client[database.id], "with-a-large-attachment")
        await doc.save()
        attachment = doc.attachment("large.bin")
        tracemalloc.start()
        try:
            await attachment.save(data, "application/octet-stream")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert await attachment.fetch() == data
    # the head and the body went out apart, the body in pieces as the socket drained
    assert peak < size // 8
