"""https:// servers: the lean transport over TLS, verification, client certificates, failures.

The servers are real: :class:`~testserver.tls_proxy.TLSProxy` terminates TLS with
certificates that ``trustme`` makes for the test and relays to the test server (or to a
:class:`~testserver.scripted_server.ScriptedServer` whose answers are scripted byte for
byte); a stalled or reset handshake comes from a loopback server that never speaks TLS.
Parity tests run on both transports (``connector=`` selects aiohttp's): the errors of
the lean transport are the ones code written for aiocouch 4.0.1 catches from aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import struct
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import trustme

from aiocouch import CouchDB, Database, Document
from aiocouch._http import HTTPConnection
from aiocouch._http_transport import HTTPTransport
from aiocouch._tls import open_tls_connection
from aiocouch.cluster import Quorum
from aiocouch.exception import (
    ConnectTimeoutError,
    IncompleteResponseError,
    InvalidResponseError,
    ReadTimeoutError,
)
from testserver.pouchdb_server import CouchServer
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)
from testserver.tls_proxy import TLSProxy
from testserver.traced_memory import held_after_reads

LEAN, AIOHTTP = "HTTPTransport", "AiohttpTransport"
GUARD = 20.0
"""Seconds after which a test fails instead of hanging."""
STALL_LIMIT = 0.3
PASSWORD = "tls-pass-w0rd-secret"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The certificate authority of this module's servers (trusted by no system)."""
    return trustme.CA()


def server_context(
    ca: trustme.CA, *names: str, client_certificates: trustme.CA | None = None
) -> ssl.SSLContext:
    """A server's context with a certificate for ``names`` (default ``localhost``); with
    ``client_certificates``, clients must show a certificate that CA issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost",))).configure_cert(context)
    if client_certificates is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        client_certificates.configure_trust(context)
    return context


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that verifies certificates against ``ca``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def transport_of(client: CouchDB) -> str:
    return type(client._server._transport).__name__


@pytest.fixture(params=[LEAN, AIOHTTP], ids=["lean", "aiohttp"])
def transport_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def open_client(transport_name: str) -> AsyncIterator[Callable[..., CouchDB]]:
    """Opens clients on the chosen transport, each call sent once (``retry=False``)."""
    clients: list[CouchDB] = []

    def open_client(url: str, **options: Any) -> CouchDB:
        if transport_name == AIOHTTP:
            options["connector"] = aiohttp.TCPConnector()
        options.setdefault("retry", False)
        client = CouchDB(url, **options)
        assert transport_of(client) == transport_name
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


async def guarded(awaitable: Awaitable[Any]) -> Any:
    """``awaitable``, or a test failure after :data:`GUARD` seconds instead of a hang."""
    return await asyncio.wait_for(awaitable, GUARD)


async def answer_well(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    doc_id = request.target.split("?")[0].rsplit("/", 1)[-1]
    if request.method in ("PUT", "POST"):
        await connection.send(http_response(201, b'{"ok":true,"id":"doc","rev":"1-a"}'))
    else:
        body = b'{"_id":"%s","_rev":"1-a","name":"%s"}' % (doc_id.encode(), doc_id.encode())
        await connection.send(http_response(200, body))


@contextlib.asynccontextmanager
async def https_scripted(
    handler: Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]],
    context: ssl.SSLContext,
) -> AsyncIterator[tuple[TLSProxy, ScriptedServer]]:
    """A scripted server behind a TLS proxy presenting ``context``'s certificate."""
    async with ScriptedServer(handler) as server, TLSProxy(server.url, context) as proxy:
        yield proxy, server


# --- the whole public API over https, on the lean transport ---


@pytest.fixture
async def https_couch(couch_server: CouchServer, ca: trustme.CA) -> AsyncIterator[TLSProxy]:
    """The test server behind a TLS proxy with a certificate for ``localhost``."""
    async with TLSProxy(couch_server.url, server_context(ca)) as proxy:
        yield proxy


async def test_the_public_api_works_over_https_on_the_lean_transport(
    https_couch: TLSProxy, couch_server: CouchServer, ca: trustme.CA, quorum: Quorum | None
) -> None:
    async with CouchDB(
        https_couch.url, couch_server.user, couch_server.password, ssl=trusting(ca), quorum=quorum
    ) as couchdb:
        assert transport_of(couchdb) == LEAN
        assert "version" in await couchdb.info()
        db = await couchdb.create(f"aiocouch_tls_{uuid.uuid4().hex}")
        try:
            doc = await db.create("a", data={"n": 1})
            await doc.save()
            doc["n"] = 2
            await doc.save()
            assert (await db.get("a"))["n"] == 2
            async with db.create_docs() as bulk:
                for i in range(20):
                    bulk.create(f"b{i}", data={"n": 3})
            assert len([d async for d in db.docs()]) == 21
            assert len([d async for d in db.find({"n": 3})]) == 20
            ddoc = await db.design_doc("d")
            await ddoc.create_view("by_n", map_function="function (doc) { emit(doc.n, null); }")
            assert len([doc_id async for doc_id in db.view("d", "by_n").akeys()]) == 21
            assert len([event async for event in db.changes()]) == 22
            attachment = doc.attachment("big")
            body = bytes(range(256)) * 4096  # 1 MiB: written in pieces as TLS drains
            await attachment.save(body, "application/octet-stream")
            assert await attachment.fetch() == body
            before = len(https_couch.server_names)
            for _ in range(10):
                await db.get("a")
            # One kept-alive TLS connection serves them all: no new handshake.
            assert len(https_couch.server_names) == before
        finally:
            await db.delete()
    # SNI: the host name of the URL went to the server.
    assert set(https_couch.server_names) == {"localhost"}


async def test_a_pool_of_tls_connections_that_read_small_answers_holds_little_memory(
    https_couch: TLSProxy, couch_server: CouchServer, ca: trustme.CA, database: Database
) -> None:
    async with CouchDB(
        https_couch.url, couch_server.user, couch_server.password, ssl=trusting(ca)
    ) as couchdb:
        assert transport_of(couchdb) == LEAN
        db = await couchdb[database.id]
        await Document(db, "small", data={"n": 1}).save()
        # 32 reads at once: 32 TLS connections, each kept in the pool afterwards
        docs, held = await held_after_reads(db, "small", 32)
    assert [doc["n"] for doc in docs] == [1] * 32
    assert len(https_couch.server_names) >= 32
    # (buffers of 256 KiB for the records and 128 KiB for the answer each would be 12 MiB)
    assert held < 32 * 96 * 1024


async def test_ssl_is_ignored_for_http_servers_as_aiohttp_does(server_url: str) -> None:
    async with CouchDB(server_url, ssl=False) as couchdb:
        assert transport_of(couchdb) == LEAN
        assert "version" in await couchdb.info()


def test_the_lean_transport_serves_https_with_each_ssl_choice_it_honours(
    ca: trustme.CA,
) -> None:
    for choice in (None, True, False, trusting(ca)):
        assert HTTPTransport.serves("https://127.0.0.1:6984", {"ssl": choice})
        assert HTTPTransport.serves("HTTPS://couch/prefix", {"ssl": choice, "user": "u"})
    fingerprint = aiohttp.Fingerprint(bytes(32))
    assert not HTTPTransport.serves("https://127.0.0.1:6984", {"ssl": fingerprint})


def test_an_ssl_option_of_another_type_raises_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="ssl must be"):
        CouchDB("https://127.0.0.1:6984", ssl="yes")
    with pytest.raises(TypeError, match="ssl must be"):
        CouchDB("https://127.0.0.1:6984", ssl=ssl.CERT_NONE)


# --- verification: on by default, before anything is sent ---


async def test_an_untrusted_certificate_raises_before_any_request_is_sent(
    open_client: Callable[..., CouchDB], ca: trustme.CA
) -> None:
    async with https_scripted(answer_well, server_context(ca)) as (proxy, server):
        db = Database(open_client(proxy.url, user="admin", password=PASSWORD), "db")
        doc = Document(db, "doc", data={"secret": "body"})
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
            await guarded(doc.save())
    error = caught.value
    assert isinstance(error, aiohttp.ClientSSLError)
    assert isinstance(error, aiohttp.ClientConnectorError)  # what 4.0.1 code catches
    assert isinstance(error.certificate_error, ssl.SSLCertVerificationError)
    assert error.host == "localhost"
    assert proxy.relayed == 0
    assert server.requests == []
    assert PASSWORD not in f"{error} {error!r}"


async def test_a_certificate_for_another_host_raises(
    open_client: Callable[..., CouchDB], ca: trustme.CA
) -> None:
    async with https_scripted(answer_well, server_context(ca, "elsewhere.test")) as (proxy, _):
        client = open_client(proxy.url, ssl=trusting(ca))
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
            await guarded(client.info())
    assert "Hostname mismatch" in str(caught.value.certificate_error)
    assert proxy.relayed == 0


async def test_ssl_false_connects_to_an_untrusted_server(ca: trustme.CA) -> None:
    async with https_scripted(answer_well, server_context(ca)) as (proxy, server):
        couchdb = CouchDB(proxy.url, ssl=False)
        assert transport_of(couchdb) == LEAN
        try:
            doc = await guarded(Database(couchdb, "db").get("doc"))
        finally:
            await couchdb.close()
    assert doc["name"] == "doc"
    assert [request.method for request in server.requests] == ["GET"]


@pytest.mark.parametrize("verified", [True, False], ids=["context", "ssl-false"])
async def test_a_connector_with_ssl_as_aiocouch_4_0_1_took_it_still_works(
    ca: trustme.CA, verified: bool
) -> None:
    choice: ssl.SSLContext | bool = trusting(ca) if verified else False
    connector = aiohttp.TCPConnector(ssl=choice)
    async with https_scripted(answer_well, server_context(ca)) as (proxy, _):
        couchdb = CouchDB(proxy.url, connector=connector)
        assert transport_of(couchdb) == AIOHTTP
        try:
            assert (await guarded(Database(couchdb, "db").get("doc")))["name"] == "doc"
        finally:
            await couchdb.close()


async def test_a_fingerprint_goes_to_aiohttp_and_is_checked(ca: trustme.CA) -> None:
    certificate = ca.issue_cert("localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    der = ssl.PEM_cert_to_DER_cert(certificate.cert_chain_pems[0].bytes().decode())
    right = aiohttp.Fingerprint(hashlib.sha256(der).digest())
    wrong = aiohttp.Fingerprint(bytes(32))
    async with https_scripted(answer_well, context) as (proxy, _):
        async with CouchDB(proxy.url, ssl=right, retry=False) as couchdb:
            assert transport_of(couchdb) == AIOHTTP
            assert (await guarded(Database(couchdb, "db").get("doc")))["name"] == "doc"
        async with CouchDB(proxy.url, ssl=wrong, retry=False) as couchdb:
            with pytest.raises(aiohttp.ServerFingerprintMismatch):
                await guarded(couchdb.info())


@pytest.mark.parametrize("char", ["\r", "\n", "\x00", "\x7f"], ids=repr)
async def test_a_control_character_in_a_header_is_refused_before_connecting(
    ca: trustme.CA, char: str
) -> None:
    async with https_scripted(answer_well, server_context(ca)) as (proxy, server):
        couchdb = CouchDB(proxy.url, ssl=trusting(ca))
        try:
            doc = Document(Database(couchdb, "db"), "doc", data={"_rev": "1-a"})
            with pytest.raises(ValueError, match="Content-Type"):
                await guarded(doc.attachment("att").save(b"data", f"text/plain{char}x"))
        finally:
            await couchdb.close()
    assert proxy.server_names == []
    assert server.requests == []


# --- client certificates ---


async def test_a_client_certificate_in_the_context_is_sent(
    open_client: Callable[..., CouchDB], ca: trustme.CA
) -> None:
    clients_ca = trustme.CA()
    context = trusting(ca)
    clients_ca.issue_cert("client.aiocouch.test").configure_cert(context)
    required = server_context(ca, client_certificates=clients_ca)
    async with https_scripted(answer_well, required) as (proxy, server):
        doc = await guarded(Database(open_client(proxy.url, ssl=context), "db").get("doc"))
    assert doc["name"] == "doc"
    (shown,) = proxy.client_certificates
    assert ("DNS", "client.aiocouch.test") in shown["subjectAltName"]
    assert len(server.requests) == 1


async def test_a_server_requiring_a_client_certificate_refuses_a_client_without_one(
    open_client: Callable[..., CouchDB], ca: trustme.CA
) -> None:
    required = server_context(ca, client_certificates=trustme.CA())
    async with https_scripted(answer_well, required) as (proxy, server):
        client = open_client(proxy.url, ssl=trusting(ca))
        # TLS 1.3: the server refuses after the client's side of the handshake is done,
        # so the refusal arrives as the connection ends instead of an answer.
        with pytest.raises(aiohttp.ClientConnectionError):
            await guarded(client.info())
    assert server.requests == []


# --- handshakes that stall or break ---


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never says anything (a handshake that stalls)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.parametrize("limit", ["sock_connect", "connect"])
async def test_a_stalled_handshake_raises_connect_timeout(
    open_client: Callable[..., CouchDB], limit: str
) -> None:
    limits = {"sock_connect": 10.0, "connect": 10.0, "sock_read": 10.0, limit: STALL_LIMIT}
    with silent_listener() as port:
        client = open_client(f"https://localhost:{port}", timeout=aiohttp.ClientTimeout(**limits))
        started = time.monotonic()
        with pytest.raises(ConnectTimeoutError) as caught:
            await guarded(client.info())
        assert time.monotonic() - started < 5.0
    assert isinstance(caught.value, aiohttp.ConnectionTimeoutError)


async def test_a_stalled_handshake_ends_by_its_own_limit_without_the_callers() -> None:
    """With no connect limits set, the handshake still ends (60 s; here the limit given)."""
    with silent_listener() as port:
        started = time.monotonic()
        with pytest.raises(ConnectionAbortedError, match="TLS handshake"):
            await guarded(
                open_tls_connection(
                    HTTPConnection, "localhost", port, ssl.create_default_context(), timeout=0.3
                )
            )
        assert time.monotonic() - started < 5.0


@contextlib.asynccontextmanager
async def breaking_handshakes(how: str) -> AsyncIterator[int]:
    """A port whose server reads the client's first TLS bytes, then resets or closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        if how == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_a_peer_breaking_the_handshake_raises_client_connector_error(
    open_client: Callable[..., CouchDB], how: str
) -> None:
    async with breaking_handshakes(how) as port:
        client = open_client(f"https://localhost:{port}")
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await guarded(client.info())
    assert caught.value.port == port
    assert not isinstance(caught.value, aiohttp.ClientConnectorCertificateError)


# --- back-pressure: a slow reader over TLS holds little, the server waits ---

PIECE = b"x" * (1 << 20)


async def test_a_slow_reader_over_tls_holds_bounded_memory_while_the_server_waits(
    ca: trustme.CA,
) -> None:
    size = 64 * len(PIECE)
    sent = 0
    finished = asyncio.Event()

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        nonlocal sent
        await connection.send(
            http_response(200, headers=[("Content-Length", str(size))], length=False)
        )
        for _ in range(size // len(PIECE)):
            await connection.send(PIECE)  # each write waits until the network took it
            sent += len(PIECE)
        finished.set()

    async with https_scripted(handler, server_context(ca)) as (proxy, _):
        couchdb = CouchDB(proxy.url, ssl=trusting(ca), retry=False)
        doc = Document(Database(couchdb, "db"), "doc", data={"_rev": "1-a"})
        tracemalloc.start()
        try:
            async with doc.attachment("att").stream() as pieces:
                await guarded(pieces.__aiter__().__anext__())
                # Wait until the server can send no more, or sent it all.
                while not finished.is_set():
                    before = sent
                    await asyncio.sleep(0.3)
                    if sent == before:
                        break
                current, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            await couchdb.close()
    assert not finished.is_set()
    assert sent < size // 2
    # The server's send buffer and the proxy's pieces count in too.
    assert current < 16 * len(PIECE)


async def aenumerate(pieces: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    number = 0
    async for piece in pieces:
        yield number, piece
        number += 1


async def test_a_large_answer_read_with_pauses_arrives_whole(ca: trustme.CA) -> None:
    """Reading pauses (more than 4 MiB unread) and resumes with records still undecrypted."""
    body = hashlib.sha256(b"seed").digest() * (24 * (1 << 20) // 32)  # 24 MiB

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, body, content_type="application/octet-stream"))

    async with https_scripted(handler, server_context(ca)) as (proxy, _):
        couchdb = CouchDB(proxy.url, ssl=trusting(ca), retry=False)
        doc = Document(Database(couchdb, "db"), "doc", data={"_rev": "1-a"})
        received = hashlib.sha256()
        try:
            async with doc.attachment("att").stream() as pieces:
                async for number, piece in aenumerate(pieces):
                    received.update(piece)
                    # Slower than the network at first: more than 4 MiB arrive unread.
                    await asyncio.sleep(0.2 if number < 3 else 0)
        finally:
            await couchdb.close()
    assert received.digest() == hashlib.sha256(body).digest()


# --- a hostile server behind TLS: the same errors as over http, no reuse after them ---


def first_connection_sends(answer: bytes, then: str) -> Callable[..., Awaitable[None]]:
    """The first connection answers with ``answer``, then closes or stalls; others well."""

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if connection.number != 0:
            await answer_well(request, connection)
            return
        await connection.send(answer)
        if then == "close":
            connection.close()
        elif then == "reset":
            connection.reset()
        else:
            await asyncio.sleep(3600)

    return handler


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
HOSTILE = {
    "cut-body": (HEAD + b'Content-Length: 100\r\n\r\n{"_id":', "close", IncompleteResponseError),
    "reset-mid-body": (
        HEAD + b'Content-Length: 100\r\n\r\n{"_id":',
        "reset",
        IncompleteResponseError,
    ),
    "stall-after-head": (HEAD + b"Content-Length: 100\r\n\r\n", "stall", ReadTimeoutError),
    "malformed-head": (b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "stall", InvalidResponseError),
    "closed-before-answer": (b"", "close", aiohttp.ServerDisconnectedError),
}


@pytest.mark.parametrize(("answer", "then", "error"), HOSTILE.values(), ids=list(HOSTILE.keys()))
async def test_a_hostile_server_behind_tls_raises_the_typed_error_and_is_not_reused(
    ca: trustme.CA, answer: bytes, then: str, error: type[Exception]
) -> None:
    handler = first_connection_sends(answer, then)
    async with https_scripted(handler, server_context(ca)) as (proxy, _):
        limits = aiohttp.ClientTimeout(sock_read=STALL_LIMIT, connect=10.0, sock_connect=10.0)
        async with CouchDB(proxy.url, ssl=trusting(ca), timeout=limits, retry=False) as couchdb:
            assert transport_of(couchdb) == LEAN
            db = Database(couchdb, "db")
            with pytest.raises(error):
                await guarded(db.get("doc"))
            doc = await guarded(db.get("next-doc"))
    assert doc["name"] == "next-doc"
    assert len(proxy.server_names) == 2  # the broken connection was not used again


# --- records written by hand: cut, corrupted, a close with and without close_notify ---


class BareTLSServer:
    """A loopback TLS server whose records each test writes itself (``ssl.SSLObject`` over
    memory BIOs, on a plain socket), so that it can cut a record, corrupt one, or close
    the connection with or without TLS's ``close_notify``.

    The first connection reads one request and hands ``script`` a :class:`BareTLS`; any
    later one answers every request with :func:`answer_well`'s document.
    """

    def __init__(
        self, context: ssl.SSLContext, script: Callable[[BareTLS], Awaitable[None]]
    ) -> None:
        self._context = context
        self._script = script
        self._server: asyncio.AbstractServer | None = None
        self.connections = 0
        self.requests = 0
        self.url = ""

    async def __aenter__(self) -> BareTLSServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"https://localhost:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        tls = BareTLS(self._context, reader, writer)
        try:
            await tls.handshake()
            while await tls.read_request():
                self.requests += 1
                if number > 0:
                    await tls.send(http_response(200, b'{"_id":"next-doc","_rev":"1-a"}'))
                else:
                    await self._script(tls)
                    return
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


class BareTLS:
    """One connection of :class:`BareTLSServer`: TLS records in the test's hands."""

    def __init__(
        self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.reader, self.writer = reader, writer

    async def handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._exchange()
            except ssl.SSLError:
                await self.send()  # the alert that tells the client why
                raise
        await self.send()

    async def read_request(self) -> bool:
        """Reads one request head (the tests' requests have no body); False at the end."""
        request = b""
        while b"\r\n\r\n" not in request:
            try:
                request += self._tls.read(65536)
            except ssl.SSLWantReadError:
                if not await self._exchange():
                    return False
            except ssl.SSLZeroReturnError:
                return False
        return True

    def record(self, data: bytes) -> bytes:
        """``data`` encrypted as one record (nothing is sent)."""
        self._tls.write(data)
        return self._outgoing.read()

    def close_notify(self) -> bytes:
        """TLS's close_notify alert (nothing is sent)."""
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.unwrap()
        return self._outgoing.read()

    async def send(self, data: bytes = b"", raw: bytes = b"") -> None:
        """Sends ``data`` in a record, or ``raw`` bytes as they are (records made before)."""
        if data:
            self._tls.write(data)
        self.writer.write(self._outgoing.read() + raw)
        await self.writer.drain()

    async def _exchange(self) -> bool:
        if self._outgoing.pending:
            self.writer.write(self._outgoing.read())
        data = await self.reader.read(65536)
        self._incoming.write(data)
        return bool(data)


PART = HEAD + b'Content-Length: 100\r\n\r\n{"_id":"doc",'


async def cut_record(tls: BareTLS) -> None:
    """The head and part of the body in one record, then half of the next, then FIN."""
    first = tls.record(PART)
    rest = tls.record(b'"_rev":"1-a","more":"' + b"x" * 40 + b'"}')
    await tls.send(raw=first + rest[: len(rest) // 2])
    tls.writer.close()


async def corrupted_record(tls: BareTLS) -> None:
    """The head in one record, then a record with one byte changed; then silence."""
    first = tls.record(PART)
    rest = bytearray(tls.record(b'"_rev":"1-a","more":"' + b"x" * 40 + b'"}'))
    rest[-5] ^= 0xFF
    await tls.send(raw=first + rest)
    await asyncio.sleep(3600)


def close_delimited(*, close_notify: bool) -> Callable[[BareTLS], Awaitable[None]]:
    """A whole document whose end only the close tells, with or without close_notify."""

    async def script(tls: BareTLS) -> None:
        await tls.send(HEAD + b"Connection: close\r\n\r\n" + b'{"_id":"doc","_rev":"1-a"}')
        if close_notify:
            await tls.send(raw=tls.close_notify())
        tls.writer.close()

    return script


BARE = {
    "record-cut-then-close": (cut_record, IncompleteResponseError),
    "corrupted-record": (corrupted_record, IncompleteResponseError),
    "close-delimited-without-close-notify": (
        close_delimited(close_notify=False),
        IncompleteResponseError,
    ),
}


@pytest.mark.parametrize(("script", "error"), BARE.values(), ids=list(BARE.keys()))
async def test_records_cut_or_corrupted_raise_the_typed_error_and_are_not_reused(
    ca: trustme.CA, script: Callable[[BareTLS], Awaitable[None]], error: type[Exception]
) -> None:
    async with BareTLSServer(server_context(ca), script) as server:
        limits = aiohttp.ClientTimeout(sock_read=10.0, connect=10.0, sock_connect=10.0)
        async with CouchDB(server.url, ssl=trusting(ca), timeout=limits, retry=False) as couchdb:
            db = Database(couchdb, "db")
            started = time.monotonic()
            with pytest.raises(error):
                await guarded(db.get("doc"))
            # The TLS failure itself ended it, not the 10 s silence limit.
            assert time.monotonic() - started < 5.0
            doc = await guarded(db.get("next-doc"))
    assert doc["_id"] == "next-doc"
    assert server.connections == 2


async def test_a_close_delimited_answer_ended_by_close_notify_is_complete(ca: trustme.CA) -> None:
    script = close_delimited(close_notify=True)
    async with BareTLSServer(server_context(ca), script) as server:
        couchdb = CouchDB(server.url, ssl=trusting(ca), retry=False)
        try:
            doc = await guarded(Database(couchdb, "db").get("doc"))
        finally:
            await couchdb.close()
    assert doc["_id"] == "doc"


# --- protocol versions ---


async def test_a_tls_1_2_server_serves_reads_and_writes(
    open_client: Callable[..., CouchDB], ca: trustme.CA
) -> None:
    context = server_context(ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    async with https_scripted(answer_well, context) as (proxy, server):
        db = Database(open_client(proxy.url, ssl=trusting(ca)), "db")
        for _ in range(3):  # one connection, kept alive
            assert (await guarded(db.get("doc")))["name"] == "doc"
        await guarded(Document(db, "doc", data={"n": 1}).save())
    assert [request.method for request in server.requests] == ["GET"] * 3 + ["PUT"]
    assert len(proxy.server_names) == 1


async def test_no_common_protocol_version_raises_client_connector_ssl_error(
    open_client: Callable[..., CouchDB], ca: trustme.CA
) -> None:
    context = server_context(ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    client_context = trusting(ca)
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    async with BareTLSServer(context, close_delimited(close_notify=True)) as server:
        with pytest.raises(aiohttp.ClientConnectorSSLError) as caught:
            await guarded(open_client(server.url, ssl=client_context).info())
    assert not isinstance(caught.value, aiohttp.ClientConnectorCertificateError)
    assert "PROTOCOL_VERSION" in str(caught.value.os_error).upper()
    assert server.requests == 0
