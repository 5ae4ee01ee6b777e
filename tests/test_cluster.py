"""A client of several nodes (aiocouch.cluster): failover, health checks, nodes used again.

The nodes are the test server behind two fault-injecting proxies (one server: what one
node wrote, the other reads, as on a cluster), one of which goes down and comes back; or
scripted servers, for the answers of CouchDB that pouchdb-server cannot give (503,
``/_up`` in maintenance mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database, SessionAuth
from aiocouch.cluster import Failover, NodeStatus, Quorum
from aiocouch.retry import RetryPolicy
from testserver.fault_proxy import FaultKind, FaultProxy
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)

QUICK = RetryPolicy(backoff=0.01, backoff_max=0.05)
"""Repeats without noticeable waits."""
SOON = Failover(recheck=0.1)
Handler = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]
"""A failed node is checked again a tenth of a second after its failure."""


def requests_to(proxy: FaultProxy, method: str | None = None, path: str = "") -> int:
    """How many requests (of ``method``, under ``path``) reached the server through ``proxy``."""
    return sum(
        1
        for exchange in proxy.exchanges
        if exchange.forwarded
        and (method is None or exchange.request.method == method)
        and exchange.request.path.startswith(path)
    )


async def until(condition: Callable[[], bool], call: Callable[[], Awaitable[Any]]) -> int:
    """Makes ``call`` until ``condition()`` holds (at most 10 s); returns how many calls."""
    calls = 0
    async with deadline(10):
        while not condition():
            await call()
            calls += 1
            await asyncio.sleep(0.02)
    return calls


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """Cancels the block after ``seconds`` (``asyncio.timeout`` of Python 3.11, earlier)."""
    task = asyncio.current_task()
    assert task is not None
    handle = asyncio.get_running_loop().call_later(seconds, task.cancel)
    try:
        yield
    finally:
        handle.cancel()


@pytest.fixture
async def proxies(server_url: str) -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    """Two nodes: the test server behind two proxies."""
    async with FaultProxy(server_url) as first, FaultProxy(server_url) as second:
        yield first, second


@pytest.fixture(params=["lean", "aiohttp"])
async def transport_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Client options that pick each transport: a connector makes it aiohttp's (and the
    nodes share it)."""
    return {} if request.param == "lean" else {"connector": aiohttp.TCPConnector()}


async def test_a_node_stopped_mid_run_fails_no_call_and_is_used_again_once_back(
    proxies: tuple[FaultProxy, FaultProxy],
    database: Database,
    admin_user: str,
    admin_password: str,
    transport_options: dict[str, Any],
) -> None:
    first, second = proxies
    written: list[str] = []
    errors: list[BaseException] = []
    progress = asyncio.Event()
    stop = asyncio.Event()

    async with CouchDB(
        [first.url, second.url],
        admin_user,
        admin_password,
        failover=SOON,
        retry=QUICK,
        **transport_options,
    ) as client:
        db = Database(client, database.id)

        async def write_and_read() -> None:
            """Writes a document and reads it back, again and again, until told to stop."""
            try:
                while not stop.is_set():
                    id = f"doc-{len(written)}"
                    document = await db.create(id, data={"n": len(written)})
                    await document.save()
                    assert (await db.get(id))["n"] == len(written)
                    written.append(id)
                    progress.set()
            except BaseException as exc:
                errors.append(exc)
                raise

        async def written_more(count: int) -> None:
            target = len(written) + count
            while len(written) < target and not errors:
                progress.clear()
                await asyncio.wait_for(progress.wait(), 10)

        writer = asyncio.ensure_future(write_and_read())
        try:
            await written_more(5)
            assert requests_to(second) == 0  # the first node serves while it is healthy
            async with first.outage():  # connections reset, new ones refused
                served_by_first = requests_to(first)
                await written_more(20)
                assert client.nodes[0].healthy is False
                assert requests_to(first) == served_by_first
            await written_more(1)
            # Back: checked again once recheck has passed, then preferred again.
            served_by_first = requests_to(first)
            async with deadline(10):
                while requests_to(first, "PUT", f"/{database.id}/") == 0 or (
                    requests_to(first) <= served_by_first + 2
                ):
                    await written_more(1)
            assert client.nodes[0].healthy is True
        finally:
            stop.set()
            await asyncio.gather(writer, return_exceptions=True)
    assert errors == []
    # pouchdb-server has no /_up: GET / answered is its health.
    assert requests_to(first, "GET", "/_up") >= 1
    assert any(e.request.target == "/" for e in first.exchanges if e.forwarded)
    # Nothing lost, nothing written twice (a write cut by the outage was confirmed).
    assert written
    async for document in database.docs(written):
        assert document.rev is not None and document.rev.startswith("1-")
        assert document["n"] == written.index(document.id)


async def test_a_write_whose_answer_was_lost_is_repeated_on_the_other_node_and_confirmed(
    proxies: tuple[FaultProxy, FaultProxy],
    database: Database,
    admin_user: str,
    admin_password: str,
) -> None:
    first, second = proxies
    first.force(FaultKind.RESET_AFTER_ANSWER, method="PUT", path=f"/{database.id}/doc")
    async with CouchDB(
        [first.url, second.url], admin_user, admin_password, failover=SOON, retry=QUICK
    ) as client:
        document = await Database(client, database.id).create("doc", data={"a": 1})
        response = await document.save()
    assert response is not None and response.status == 201
    assert document.rev is not None and document.rev.startswith("1-")
    repeats = [e for e in second.exchanges if e.request.method == "PUT"]
    assert [e.status for e in repeats] == [409]  # applied on the first, confirmed on the other
    stored = await database.get("doc")
    assert stored.rev == document.rev and stored["a"] == 1


async def test_a_write_that_may_not_be_repeated_is_not_sent_to_the_other_node(
    proxies: tuple[FaultProxy, FaultProxy],
    database: Database,
    admin_user: str,
    admin_password: str,
) -> None:
    first, second = proxies
    source = await database.create("source", data={"a": 1})
    await source.save()
    first.force(FaultKind.RESET_AFTER_ANSWER, method="COPY")
    async with CouchDB(
        [first.url, second.url], admin_user, admin_password, failover=SOON, retry=QUICK
    ) as client:
        copied = await Database(client, database.id).get("source")
        with pytest.raises(aiohttp.ClientConnectionError):
            await copied.copy("target")
    assert requests_to(second, "COPY") == 0  # a COPY repeated could copy twice
    assert (await database.get("target"))["a"] == 1  # applied once, on the first node


async def test_a_stream_that_breaks_midway_resumes_on_the_other_node(
    proxies: tuple[FaultProxy, FaultProxy],
    database: Database,
    admin_user: str,
    admin_password: str,
) -> None:
    first, second = proxies
    ids = [f"doc-{n:03}" for n in range(60)]
    async with database.create_docs(ids):
        pass
    first.force(FaultKind.CUT_ANSWER, method="GET", path=f"/{database.id}/_all_docs")
    async with CouchDB(
        [first.url, second.url], admin_user, admin_password, failover=SOON, retry=QUICK
    ) as client:
        seen = [document.id async for document in Database(client, database.id).docs()]
    assert seen == ids  # every document once, in order
    assert requests_to(first, "GET", f"/{database.id}/_all_docs") == 1
    assert requests_to(second, "GET", f"/{database.id}/_all_docs") == 1  # the rest


async def test_one_session_serves_every_node(
    proxies: tuple[FaultProxy, FaultProxy], throwaway_user: tuple[str, str]
) -> None:
    first, second = proxies
    async with CouchDB(
        [first.url, second.url], auth=SessionAuth(*throwaway_user), failover=SOON
    ) as client:
        assert (await client._server._check_session())["userCtx"]["name"] == throwaway_user[0]
        async with first.outage():
            session = await client._server._check_session()
    assert session["userCtx"]["name"] == throwaway_user[0]
    logins = requests_to(first, "POST", "/_session") + requests_to(second, "POST", "/_session")
    assert logins == 1
    assert requests_to(second, "GET", "/_session") == 1
    sent = next(e.request for e in second.exchanges if e.request.path == "/_session")
    assert (sent.header("Cookie") or "").startswith("AuthSession=")


@contextlib.asynccontextmanager
async def scripted_nodes(*handlers: Handler) -> AsyncIterator[list[ScriptedServer]]:
    """A scripted server for each handler."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(ScriptedServer(handler)) for handler in handlers]


def node(name: str, state: dict[str, str]) -> Handler:
    """A scripted node: GET / answers its ``name``; ``state["mode"]`` says how it fails.

    Modes: ``reset`` (every connection reset), ``maintenance`` (``/_up`` answers 404
    maintenance_mode, as CouchDB does in maintenance mode), ``ok``, ``unavailable``
    (every request answered 503).
    """

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        mode = state["mode"]
        if mode == "reset":
            connection.reset()
        elif mode == "unavailable":
            body = b'{"error":"service_unavailable","reason":"all_workers_died"}'
            await connection.send(http_response(503, body))
        elif request.target == "/_up" and mode == "maintenance":
            await connection.send(http_response(404, b'{"status":"maintenance_mode"}'))
        elif request.target == "/_up":
            await connection.send(http_response(200, b'{"status":"ok","seeds":{}}'))
        else:
            body = b'{"couchdb":"Welcome","node":"%s"}' % name.encode()
            await connection.send(http_response(200, body))

    return handler


async def test_a_node_in_maintenance_mode_is_left_alone_until_up_says_ok() -> None:
    state = {"mode": "reset"}
    async with scripted_nodes(node("a", state), node("b", {"mode": "ok"})) as (a, b):
        urls = [a.url, b.url]
        async with CouchDB(urls, failover=SOON, retry=QUICK) as client:
            assert (await client.info())["node"] == "b"  # reset by a, repeated on b
            assert client.nodes[0] == NodeStatus(a.url, healthy=False, failures=1)
            state["mode"] = "maintenance"
            await until(lambda: a.count("GET", "/_up") >= 2, client.info)
            assert client.nodes[0].healthy is False
            assert a.count("GET", "/") == 1  # only the first call went to a
            state["mode"] = "ok"
            answers = []

            async def call() -> None:
                answers.append((await client.info())["node"])

            await until(lambda: "a" in answers, call)
            assert client.nodes[0] == NodeStatus(a.url, healthy=True, failures=0)
            assert (await client.info())["node"] == "a"


async def test_a_node_answering_503_is_passed_over_even_for_a_write() -> None:
    unavailable, ok = node("a", {"mode": "unavailable"}), node("b", {"mode": "ok"})
    async with scripted_nodes(unavailable, ok) as (a, b):
        urls = [a.url, b.url]
        async with CouchDB(urls, failover=Failover(recheck=60), retry=QUICK) as client:
            for _ in range(3):
                assert (await client.info())["node"] == "b"
            # PUT /{db} is repeated only where it was not applied: 503 says so.
            await client.create("db")
    assert len(a.requests) == 1  # once failed, the node is not asked before recheck
    assert b.count("PUT", "/db") == 1


async def test_a_node_refusing_connections_is_passed_over_in_the_same_attempt() -> None:
    with contextlib.closing(_listening_nowhere()) as closed:
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
        async with scripted_nodes(node("b", {"mode": "ok"})) as (b,):
            urls = [nowhere, b.url]
            async with CouchDB(urls, retry=False) as client:
                # retry=False: one attempt, which goes on to the next node (nothing was sent)
                assert (await client.info())["node"] == "b"
                assert client.nodes[0].healthy is False


async def test_every_node_down_raises_the_connection_error() -> None:
    with (
        contextlib.closing(_listening_nowhere()) as one,
        contextlib.closing(_listening_nowhere()) as other,
    ):
        urls = [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in (one, other)]
        async with CouchDB(urls, retry=RetryPolicy(attempts=3, backoff=0.01)) as client:
            with pytest.raises(aiohttp.ClientConnectorError):
                await client.info()
            assert [status.healthy for status in client.nodes] == [False, False]
            assert [status.failures for status in client.nodes] == [3, 3]


def _listening_nowhere() -> socket.socket:
    """A bound socket that does not listen: connecting to its port is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_one_url_keeps_its_single_transport() -> None:
    client = CouchDB("http://127.0.0.1:5984/")
    assert client._server._http.nodes is None
    assert client.nodes == (NodeStatus("http://127.0.0.1:5984", True, 0),)
    assert repr(client) == "<CouchDB http://127.0.0.1:5984>"


def test_several_urls_name_every_node_without_credentials() -> None:
    client = CouchDB(("http://u:secret@127.0.0.1:5984", "http://127.0.0.1:5985"))
    assert "secret" not in repr(client)
    assert [status.url for status in client.nodes] == [
        "http://127.0.0.1:5984",
        "http://127.0.0.1:5985",
    ]
    assert repr(client) == "<CouchDB http://127.0.0.1:5984, http://127.0.0.1:5985>"


@pytest.mark.parametrize(
    ("server", "error"),
    [
        ([], ValueError),
        (["http://a:5984", "http://a:5984/"], ValueError),
        (["http://u:p@a:5984", "http://a:5984"], ValueError),
        ([b"http://a:5984"], TypeError),
        (42, TypeError),
    ],
)
def test_a_list_of_urls_that_names_no_node_or_one_twice_is_refused(
    server: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        CouchDB(server)


def test_a_session_cannot_be_combined_with_credentials_in_any_url() -> None:
    with pytest.raises(ValueError, match="once"):
        CouchDB(["http://a:5984", "http://u:p@b:5984"], auth=SessionAuth("u", "p"))


@pytest.mark.parametrize(
    "options",
    [
        {"recheck": 0},
        {"recheck": -1},
        {"check_timeout": 0},
        {"recheck": True},
        {"recheck": "5"},
    ],
)
def test_failover_refuses_a_duration_that_is_not_positive(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Failover(**options)


def test_the_client_refuses_options_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError, match="Failover"):
        CouchDB(["http://a:5984", "http://b:5984"], failover=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Quorum"):
        CouchDB("http://a:5984", quorum=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "3"])
def test_a_quorum_must_be_a_positive_int(value: Any) -> None:
    with pytest.raises(ValueError):
        Quorum(w=value)
    with pytest.raises(ValueError):
        Quorum(r=value)
