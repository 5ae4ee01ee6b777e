"""testserver.fault_proxy: each fault does what it says, seen by a plain aiohttp client.

The upstream is the real test server (for what reaches it and what it applied) or a
ScriptedServer (for exact byte offsets and framing). Every client session here turns
off aiohttp's silent second attempt of idempotent requests, so each attempt the test
makes is one request at the proxy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from testserver.fault_proxy import (
    Fault,
    FaultKind,
    FaultProxy,
    ProxiedRequest,
    RandomFaults,
)
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunked,
    http_response,
)

if TYPE_CHECKING:
    from aiocouch import Database

# A connection the proxy reset or closed, seen before or during the answer.
LOST = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


@contextlib.asynccontextmanager
async def plain_client(
    user: str | None = None, password: str | None = None, **kwargs: Any
) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session that never repeats a request on its own."""
    headers = {"Accept": "application/json"}  # pouchdb-server labels JSON text/plain otherwise
    if user and password:
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {credentials}"
    async with aiohttp.ClientSession(headers=headers, **kwargs) as session:
        # aiohttp repeats an idempotent request once after a dropped connection
        # (aiohttp.test_utils turns that off the same way).
        session._retry_connection = False
        yield session


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(server_url) as proxy:
        yield proxy


@pytest.fixture
async def client(admin_user: str, admin_password: str) -> AsyncIterator[aiohttp.ClientSession]:
    """Admin client with one new connection per request (no fault leaks to the next)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with plain_client(admin_user, admin_password, connector=connector) as session:
        yield session


@pytest.fixture
async def direct(admin_user: str, admin_password: str) -> AsyncIterator[aiohttp.ClientSession]:
    """Admin client that talks to the server without the proxy, to see what it holds."""
    async with plain_client(admin_user, admin_password) as session:
        yield session


async def exists(direct: aiohttp.ClientSession, url: str) -> bool:
    async with direct.get(url) as response:
        await response.read()
        return response.status == 200


# --- pass-through and framing -------------------------------------------------------------


async def test_pass_through_keeps_one_client_connection_for_many_requests(
    proxy: FaultProxy, server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with plain_client(admin_user, admin_password, connector=connector) as session:
        for number in range(5):
            async with session.put(f"{proxy.url}/{database.id}/doc{number}", json={"n": number}):
                pass
        async with session.head(f"{proxy.url}/{database.id}") as head:
            assert head.status == 200
        async with session.get(f"{proxy.url}/{database.id}/_all_docs") as response:
            rows = (await response.json())["rows"]
    assert [row["id"] for row in rows] == [f"doc{number}" for number in range(5)]
    stats = proxy.stats
    assert stats.connections == 1
    assert (stats.requests, stats.forwarded, stats.answered, stats.delivered) == (7, 7, 7, 7)
    assert stats.fault_total == 0


async def test_answers_without_body_and_chunked_answers_keep_their_boundaries() -> None:
    answers = [
        http_response(200, b"", headers=[("Content-Length", "5")], length=False),  # HEAD
        http_response(204, content_type=None, length=False),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"ab", b"cde"),
        http_response(200, b"last"),
    ]

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(answers[request.connection])

    async with ScriptedServer(handler) as upstream, FaultProxy(upstream.url) as proxy:
        connector = aiohttp.TCPConnector(limit=1)
        async with plain_client(connector=connector) as session:
            async with session.head(f"{proxy.url}/a") as response:
                assert response.status == 200
            async with session.delete(f"{proxy.url}/b") as response:
                assert response.status == 204
            async with session.get(f"{proxy.url}/c") as response:
                assert await response.read() == b"abcde"
            async with session.get(f"{proxy.url}/d") as response:
                assert await response.read() == b"last"
    assert upstream.connections == 4  # one upstream connection per request
    assert proxy.stats.connections == 1
    assert proxy.stats.delivered == 4


async def test_chunked_request_body_reaches_the_server_whole() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'{"a":', b"1}"):
            yield piece

    received: list[bytes] = []

    async def recording(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        received.append(request.body)
        await connection.send(http_response(201, b'{"ok":true}'))

    async with ScriptedServer(recording) as upstream, FaultProxy(upstream.url) as proxy:
        session: aiohttp.ClientSession
        async with plain_client() as session:
            async with session.put(f"{proxy.url}/db/doc", data=pieces()) as response:
                assert response.status == 201
            async with session.put(f"{proxy.url}/db/doc2", data=b"plain") as response:
                assert response.status == 201
    # ScriptedServer reads Content-Length bodies only: the chunked body arrives as framed.
    assert [request.header("Transfer-Encoding") for request in upstream.requests] == [
        "chunked",
        None,
    ]
    assert proxy.exchanges[0].request.raw.endswith(b'5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n')
    assert received[1] == b"plain"


# --- faults before and after the server ---------------------------------------------------


async def test_reset_before_request_never_reaches_the_server(
    proxy: FaultProxy,
    client: aiohttp.ClientSession,
    direct: aiohttp.ClientSession,
    server_url: str,
    database: Database,
) -> None:
    proxy.force(FaultKind.RESET_BEFORE_REQUEST, method="PUT")
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.put(f"{proxy.url}/{database.id}/never", json={"v": 1}):
            pass
    assert not await exists(direct, f"{server_url}/{database.id}/never")
    stats = proxy.stats
    assert (stats.requests, stats.forwarded, stats.answered) == (1, 0, 0)
    assert stats.faults == {FaultKind.RESET_BEFORE_REQUEST: 1}


@pytest.mark.parametrize("kind", [FaultKind.RESET_AFTER_ANSWER, FaultKind.CLOSE_AFTER_ANSWER])
async def test_answer_lost_after_the_write_was_applied(
    kind: FaultKind,
    proxy: FaultProxy,
    client: aiohttp.ClientSession,
    direct: aiohttp.ClientSession,
    server_url: str,
    database: Database,
) -> None:
    proxy.force(kind, method="PUT", path=f"/{database.id}/")
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.put(f"{proxy.url}/{database.id}/applied", json={"v": 1}):
            pass
    async with direct.get(f"{server_url}/{database.id}/applied") as response:
        assert response.status == 200
        assert (await response.json())["v"] == 1
    (exchange,) = proxy.exchanges
    assert exchange.forwarded and exchange.answered and exchange.status == 201
    assert not exchange.delivered
    assert proxy.stats.faults == {kind: 1}


# --- faults inside the answer -------------------------------------------------------------


async def test_reset_mid_answer_forwards_the_head_and_part_of_the_body(
    proxy: FaultProxy, client: aiohttp.ClientSession, database: Database
) -> None:
    body = {"text": "x" * 10_000}
    async with client.put(f"{proxy.url}/{database.id}/big", json=body) as response:
        assert response.status == 201
    proxy.force(FaultKind.RESET_MID_ANSWER, method="GET")
    async with client.get(f"{proxy.url}/{database.id}/big") as response:
        assert response.status == 200  # the head arrived
        with pytest.raises(LOST):
            await response.read()
    assert proxy.stats.faults == {FaultKind.RESET_MID_ANSWER: 1}
    assert proxy.stats.delivered == 1  # the PUT's answer only


async def test_cut_answer_ends_a_content_length_body_early(
    proxy: FaultProxy, client: aiohttp.ClientSession, database: Database
) -> None:
    async with client.put(f"{proxy.url}/{database.id}/doc", json={"v": "y" * 1000}):
        pass
    proxy.force(FaultKind.CUT_ANSWER, method="GET")
    async with client.get(f"{proxy.url}/{database.id}/doc") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def _raw_exchange(proxy: FaultProxy, request: bytes) -> tuple[bytes, str]:
    """Sends ``request`` on a new socket; returns every byte received and how it ended."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(request)
    received = bytearray()
    try:
        while True:
            piece = await asyncio.wait_for(reader.read(65536), 10)
            if not piece:
                return bytes(received), "fin"
            received += piece
    except ConnectionResetError:
        return bytes(received), "reset"
    finally:
        writer.close()


ANSWER_BODY = bytes(range(100))


async def _serve_fixed(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    if request.target == "/chunked":
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        await connection.send(head + chunked(b"first", b"second"))
    else:
        await connection.send(http_response(200, ANSWER_BODY, content_type=None))


@pytest.mark.parametrize(
    ("fault", "target", "body_bytes", "ending"),
    [
        (Fault(FaultKind.RESET_MID_ANSWER, offset=10), "/fixed", 10, "reset"),
        (Fault(FaultKind.CUT_ANSWER, offset=10), "/fixed", 10, "fin"),
        (Fault(FaultKind.CUT_ANSWER), "/fixed", 50, "fin"),  # half the Content-Length
        (Fault(FaultKind.CUT_ANSWER, offset=0), "/fixed", 0, "fin"),  # the head only
        (Fault(FaultKind.CUT_ANSWER, offset=1000), "/fixed", 99, "fin"),  # never all of it
        (Fault(FaultKind.CUT_ANSWER), "/chunked", len(b"5\r\nfirst\r\n"), "fin"),
    ],
)
async def test_mid_answer_faults_act_at_their_byte_offset(
    fault: Fault, target: str, body_bytes: int, ending: str
) -> None:
    async with ScriptedServer(_serve_fixed) as upstream, FaultProxy(upstream.url) as proxy:
        proxy.force(fault)
        received, how = await _raw_exchange(
            proxy, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == body_bytes
    assert how == ending


@pytest.mark.parametrize(
    ("kind", "reached", "ending"),
    [
        (FaultKind.RESET_BEFORE_REQUEST, 0, "reset"),
        (FaultKind.RESET_AFTER_ANSWER, 1, "reset"),
        (FaultKind.CLOSE_AFTER_ANSWER, 1, "fin"),
    ],
)
async def test_whole_answer_faults_send_nothing_and_end_as_named(
    kind: FaultKind, reached: int, ending: str
) -> None:
    async with ScriptedServer(_serve_fixed) as upstream, FaultProxy(upstream.url) as proxy:
        proxy.force(kind)
        received, how = await _raw_exchange(proxy, b"GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (received, how) == (b"", ending)
    assert len(upstream.requests) == reached


async def test_an_answer_without_body_is_cut_inside_its_head() -> None:
    async def no_body(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(204, content_type=None, length=False))

    async with ScriptedServer(no_body) as upstream, FaultProxy(upstream.url) as proxy:
        proxy.force(FaultKind.CUT_ANSWER)
        received, how = await _raw_exchange(proxy, b"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n")
    expected = http_response(204, content_type=None, length=False)
    assert received == expected[:-1]
    assert how == "fin"


# --- stalls --------------------------------------------------------------------------------


async def test_stall_forever_makes_the_client_time_out(
    proxy: FaultProxy, client: aiohttp.ClientSession, database: Database
) -> None:
    proxy.force(Fault(FaultKind.STALL_ANSWER, offset=0), method="GET")
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    async with client.get(f"{proxy.url}/{database.id}", timeout=timeout) as response:
        assert response.status == 200
        with pytest.raises(asyncio.TimeoutError):
            await response.read()
    stalled = await proxy.wait_for_stall()
    assert stalled.request.method == "GET"


async def test_stall_until_released_then_the_whole_answer_arrives(
    proxy: FaultProxy, client: aiohttp.ClientSession, database: Database
) -> None:
    proxy.force(Fault(FaultKind.STALL_ANSWER, offset=5), method="GET")

    async def fetch() -> Any:
        async with client.get(f"{proxy.url}/{database.id}") as response:
            return await response.json()

    task = asyncio.ensure_future(fetch())
    await proxy.wait_for_stall()
    await asyncio.sleep(0.1)
    assert not task.done()
    proxy.release()
    info = await asyncio.wait_for(task, 10)
    assert info["db_name"] == database.id
    assert proxy.stats.delivered == 1
    assert proxy.stats.faults == {FaultKind.STALL_ANSWER: 1}


async def test_stall_for_some_seconds_delays_the_answer(
    proxy: FaultProxy, client: aiohttp.ClientSession, database: Database
) -> None:
    proxy.force(Fault(FaultKind.STALL_ANSWER, seconds=0.4), method="GET")
    started = time.monotonic()
    async with client.get(f"{proxy.url}/{database.id}") as response:
        assert (await response.json())["db_name"] == database.id
    assert time.monotonic() - started >= 0.35


async def test_stalled_request_reaches_the_server_only_when_released(
    proxy: FaultProxy,
    client: aiohttp.ClientSession,
    direct: aiohttp.ClientSession,
    server_url: str,
    database: Database,
) -> None:
    proxy.force(Fault(FaultKind.STALL_REQUEST, offset=20), method="PUT")

    async def put() -> int:
        async with client.put(f"{proxy.url}/{database.id}/late", json={"v": 1}) as response:
            return response.status

    task = asyncio.ensure_future(put())
    exchange = await proxy.wait_for_stall()
    assert not exchange.forwarded
    assert not await exists(direct, f"{server_url}/{database.id}/late")
    proxy.release()
    assert await asyncio.wait_for(task, 10) == 201
    assert await exists(direct, f"{server_url}/{database.id}/late")


# --- choosing the requests ----------------------------------------------------------------


async def test_forced_faults_hit_only_the_next_matching_requests(
    proxy: FaultProxy,
    client: aiohttp.ClientSession,
    direct: aiohttp.ClientSession,
    server_url: str,
    database: Database,
) -> None:
    proxy.force(FaultKind.RESET_BEFORE_REQUEST, times=2, method="PUT", path=f"/{database.id}/")
    outcomes = []
    for number in range(3):
        async with client.get(f"{proxy.url}/{database.id}") as response:
            assert response.status == 200
        try:
            async with client.put(f"{proxy.url}/{database.id}/d{number}", json={}) as response:
                outcomes.append(response.status)
        except aiohttp.ClientConnectionError:
            outcomes.append("reset")
    assert outcomes == ["reset", "reset", 201]
    assert [await exists(direct, f"{server_url}/{database.id}/d{n}") for n in range(3)] == [
        False,
        False,
        True,
    ]
    assert proxy.stats.faults == {FaultKind.RESET_BEFORE_REQUEST: 2}


async def test_forced_fault_with_a_pattern_and_a_predicate(
    proxy: FaultProxy, client: aiohttp.ClientSession, database: Database
) -> None:
    proxy.force(
        FaultKind.RESET_BEFORE_REQUEST,
        path=re.compile(r"/target$"),
        where=lambda request: request.index == 0,
    )
    async with client.get(f"{proxy.url}/{database.id}/other") as response:
        assert response.status == 404
    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"{proxy.url}/{database.id}/target"):
            pass
    faulted = [exchange.request.path for exchange in proxy.exchanges if exchange.applied]
    assert faulted == [f"/{database.id}/target"]


def _request(number: int) -> ProxiedRequest:
    return ProxiedRequest(number, 0, number, "GET", f"/db/{number}", [], b"")


def test_random_faults_repeat_for_the_same_seed() -> None:
    rates = {FaultKind.RESET_BEFORE_REQUEST: 0.2, FaultKind.CUT_ANSWER: 0.2}
    schedule = RandomFaults(7, rates)
    first = [schedule(_request(n)) for n in range(200)]
    again = RandomFaults(7, rates)
    assert [again(_request(n)) for n in range(200)] == first
    other = RandomFaults(8, rates)
    assert [other(_request(n)) for n in range(200)] != first
    kinds = [fault.kind for fault in first if fault is not None]
    # 200 draws at 0.2 each: far from 0 and from 200 for any seed worth using.
    assert 15 < kinds.count(FaultKind.RESET_BEFORE_REQUEST) < 70
    assert 15 < kinds.count(FaultKind.CUT_ANSWER) < 70


def test_random_faults_refuse_rates_above_one() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        RandomFaults(1, {FaultKind.CUT_ANSWER: 0.7, FaultKind.RESET_AFTER_ANSWER: 0.4})


async def test_random_schedule_through_the_proxy_is_counted(
    server_url: str,
    client: aiohttp.ClientSession,
    direct: aiohttp.ClientSession,
    database: Database,
) -> None:
    rates = {FaultKind.RESET_BEFORE_REQUEST: 0.25, FaultKind.RESET_AFTER_ANSWER: 0.25}
    schedule = RandomFaults(11, rates, where=lambda request: request.method == "PUT")
    replay = RandomFaults(11, rates)
    expected = [replay(_request(n)) for n in range(40)]
    errors = 0
    async with FaultProxy(server_url, schedule=schedule) as proxy:
        for number in range(40):
            try:
                async with client.put(f"{proxy.url}/{database.id}/r{number}", json={}):
                    pass
            except aiohttp.ClientConnectionError:
                errors += 1
    stats = proxy.stats
    assert [exchange.fault.kind for exchange in proxy.exchanges] == [
        FaultKind.PASS if fault is None else fault.kind for fault in expected
    ]
    assert errors == stats.fault_total > 0
    before = stats.faults.get(FaultKind.RESET_BEFORE_REQUEST, 0)
    assert stats.forwarded == 40 - before
    async with direct.get(f"{server_url}/{database.id}/_all_docs") as response:
        stored = len((await response.json())["rows"])
    assert stored == stats.forwarded  # every forwarded PUT was applied, none other


# --- whole-server faults ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def flowing_changes(
    proxy: FaultProxy, user: str, password: str, database: Database, query: str
) -> AsyncIterator[aiohttp.ClientResponse]:
    """A continuous ``_changes?query`` feed of ``database`` through the proxy, once its
    first line (the document "one", saved first) arrived: the feed is flowing."""
    await (await database.create("one")).save()
    changes = f"{proxy.url}/{database.id}/_changes?feed=continuous&{query}"
    # pouchdb-server holds back a gzipped stream: ask for it as it is.
    identity = {"Accept-Encoding": "identity"}
    async with plain_client(user, password) as session:
        feed = await session.get(changes, headers=identity)
        try:
            assert b'"one"' in await asyncio.wait_for(feed.content.readline(), 10)
            yield feed
        finally:
            feed.close()


async def test_drop_connections_resets_a_stream_in_progress(
    proxy: FaultProxy, admin_user: str, admin_password: str, database: Database
) -> None:
    async with flowing_changes(
        proxy, admin_user, admin_password, database, "heartbeat=100"
    ) as feed:
        assert feed.status == 200
        proxy.drop_connections()
        with pytest.raises(LOST):
            while await asyncio.wait_for(feed.content.readline(), 10):
                pass
    assert proxy.stats.delivered == 0


async def test_hold_silences_a_stream_in_progress_until_resumed(
    proxy: FaultProxy, admin_user: str, admin_password: str, database: Database
) -> None:
    async with flowing_changes(proxy, admin_user, admin_password, database, "since=0") as feed:
        proxy.hold()
        await (await database.create("two")).save()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(feed.content.readline(), 0.5)
        proxy.resume()
        assert b'"two"' in await asyncio.wait_for(feed.content.readline(), 10)


async def test_outage_ends_open_exchanges_refuses_connections_then_comes_back(
    proxy: FaultProxy, client: aiohttp.ClientSession, database: Database
) -> None:
    url = f"{proxy.url}/{database.id}"
    proxy.force(Fault(FaultKind.STALL_ANSWER, offset=0), method="GET")

    async def read() -> bytes:
        async with client.get(url) as response:
            return await response.read()

    in_flight = asyncio.ensure_future(read())
    await proxy.wait_for_stall()
    async with proxy.outage():
        with pytest.raises(LOST):
            await asyncio.wait_for(in_flight, 10)
        with pytest.raises(asyncio.TimeoutError):
            await proxy.wait_for_stall(timeout=0.2)  # the stalled exchange ended
        with pytest.raises(aiohttp.ClientConnectorError):
            async with client.get(url):
                pass
    async with client.get(url) as response:
        assert response.status == 200
    assert proxy.url.endswith(f":{proxy.port}")
    assert proxy.stats.delivered == 1


def test_only_plain_http_upstreams_are_accepted() -> None:
    with pytest.raises(ValueError, match="http://"):
        FaultProxy("https://127.0.0.1:6984")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_upstream_down_resets_the_client() -> None:
    async with FaultProxy(f"http://127.0.0.1:{_free_port()}") as proxy, plain_client() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{proxy.url}/"):
                pass
    assert proxy.stats.forwarded == 0
