"""The retry policy, over real sockets: what is repeated, after which failures, how long the
client waits, and what is never sent twice (see ``aiocouch.retry``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database, Document
from aiocouch.exception import (
    ConflictError,
    ReadTimeoutError,
    ServerError,
    ServiceUnavailableError,
    TooManyRequestsError,
)
from aiocouch.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from testserver.scripted_server import (
    CHUNKED_HEAD,
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunk,
    chunked,
    http_response,
)

QUICK = RetryPolicy(backoff=0.01, backoff_max=0.05)
"""Repeats without noticeable waits."""

Handler = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]


def answers(*replies: bytes | None) -> Handler:
    """A handler giving the n-th request the n-th reply (None: a reset once it was read);
    the last reply answers every later request."""
    waiting = list(replies)

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        reply = waiting.pop(0) if len(waiting) > 1 else waiting[0]
        if reply is None:
            connection.reset()
        else:
            await connection.send(reply)

    return handler


OK = http_response(200, b'{"ok":true}')
WELCOME = http_response(200, b'{"couchdb":"Welcome","version":"3.4.3"}')
CREATED = http_response(201, b'{"ok":true,"id":"doc","rev":"1-a"}')
UNAVAILABLE = http_response(503, b'{"error":"service unavailable","reason":"all_workers_died"}')
BAD_GATEWAY = http_response(502, b"<html>bad gateway</html>", content_type="text/html")
TIMED_OUT = http_response(504, b"<html>gateway timeout</html>", content_type="text/html")
CONFLICT = http_response(409, b'{"error":"conflict","reason":"Document update conflict."}')


def throttled(retry_after: str | None = None) -> bytes:
    headers = [("Retry-After", retry_after)] if retry_after is not None else []
    return http_response(429, b'{"error":"too_many_requests"}', headers=headers)


@contextlib.asynccontextmanager
async def serving(
    handler: Handler, **options: Any
) -> AsyncIterator[tuple[ScriptedServer, CouchDB]]:
    """A scripted server answering with ``handler``, and a client of it built with ``options``."""
    async with ScriptedServer(handler) as server, CouchDB(server.url, **options) as client:
        yield server, client


@pytest.fixture(params=["lean", "aiohttp"])
async def transport_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Client options that pick each transport: a connector makes it aiohttp's."""
    if request.param == "lean":
        return {}
    return {"connector": aiohttp.TCPConnector()}


async def test_a_read_answered_503_is_repeated_until_answered() -> None:
    async with serving(answers(UNAVAILABLE, UNAVAILABLE, WELCOME), retry=QUICK) as (server, client):
        assert (await client.info())["couchdb"] == "Welcome"
    assert server.count("GET", "/") == 3


@pytest.mark.parametrize("failure", [BAD_GATEWAY, TIMED_OUT, throttled(), None])
async def test_a_read_is_repeated_after_each_failure_that_may_pass(failure: bytes | None) -> None:
    async with serving(answers(failure, WELCOME), retry=QUICK) as (server, client):
        assert (await client.info())["couchdb"] == "Welcome"
    assert server.count("GET", "/") == 2


async def test_attempts_bound_the_repeats_and_the_last_error_is_raised() -> None:
    async with ScriptedServer(answers(UNAVAILABLE)) as server:
        policy = RetryPolicy(attempts=3, backoff=0.01)
        async with CouchDB(server.url, retry=policy) as client:
            with pytest.raises(ServiceUnavailableError):
                await client.info()
    assert server.count("GET", "/") == 3


async def test_retry_false_sends_every_call_once() -> None:
    async with serving(answers(UNAVAILABLE, WELCOME), retry=False) as (server, client):
        with pytest.raises(ServiceUnavailableError):
            await client.info()
    assert server.count("GET", "/") == 1


async def test_other_errors_are_never_repeated() -> None:
    not_found = http_response(404, b'{"error":"not_found","reason":"missing"}')
    internal = http_response(500, b'{"error":"unknown_error","reason":"badarg"}')
    async with serving(answers(not_found, internal, WELCOME), retry=QUICK) as (server, client):
        db = Database(client, "db")
        with pytest.raises(KeyError):
            await db.get("doc")
        with pytest.raises(ServerError):
            await db.get("doc")
    assert server.count("GET", "/db/doc") == 2


async def test_retry_after_in_seconds_is_waited_for() -> None:
    arrivals: list[float] = []

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        arrivals.append(time.monotonic())
        await connection.send(throttled("1") if len(arrivals) == 1 else WELCOME)

    # without Retry-After, no wait at all: a wait of a second is the header's
    async with serving(handler, retry=RetryPolicy(backoff=0)) as (_, client):
        assert (await client.info())["couchdb"] == "Welcome"
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.95


async def test_retry_after_as_an_http_date_is_waited_for() -> None:
    arrivals: list[float] = []

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            # dates have whole seconds: two seconds from now is at least one from now
            await connection.send(throttled(formatdate(time.time() + 2, usegmt=True)))
        else:
            await connection.send(WELCOME)

    async with serving(handler, retry=RetryPolicy(backoff=0)) as (_, client):
        assert (await client.info())["couchdb"] == "Welcome"
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= 0.95


async def test_retry_after_is_capped_by_retry_after_max() -> None:
    async with ScriptedServer(answers(throttled("3600"), WELCOME)) as server:
        policy = RetryPolicy(retry_after_max=0.2)
        started = time.monotonic()
        async with CouchDB(server.url, retry=policy) as client:
            assert (await client.info())["couchdb"] == "Welcome"
        assert time.monotonic() - started < 30
    assert server.count("GET", "/") == 2


async def test_a_wait_that_would_end_after_the_budget_is_not_begun() -> None:
    async with ScriptedServer(answers(throttled("30"), WELCOME)) as server:
        started = time.monotonic()
        async with CouchDB(server.url, retry=RetryPolicy(budget=5)) as client:
            with pytest.raises(TooManyRequestsError):
                await client.info()
        assert time.monotonic() - started < 5
    assert server.count("GET", "/") == 1


async def test_backoff_waits_end_within_the_budget() -> None:
    async with ScriptedServer(answers(UNAVAILABLE)) as server:
        policy = RetryPolicy(attempts=10_000, backoff=0.05, backoff_max=0.1, budget=1.0)
        started = time.monotonic()
        async with CouchDB(server.url, retry=policy) as client:
            with pytest.raises(ServiceUnavailableError):
                await client.info()
        # each wait was begun only if it ended within the budget: the call ends within
        # it, give or take the last answer's round trip
        assert time.monotonic() - started < 1.5
    assert server.count("GET", "/") >= 3


async def test_the_budget_bounds_an_attempt_in_flight() -> None:
    async def stall(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await asyncio.Event().wait()

    async with ScriptedServer(stall) as server:
        started = time.monotonic()
        async with CouchDB(server.url, retry=RetryPolicy(budget=0.5)) as client:
            with pytest.raises(ReadTimeoutError):
                await client.info()
        assert time.monotonic() - started < 5
    assert server.count("GET", "/") == 1


async def test_the_call_time_limit_is_the_default_budget_retries_included() -> None:
    async with ScriptedServer(answers(UNAVAILABLE)) as server:
        policy = RetryPolicy(attempts=10_000, backoff=0.05, backoff_max=0.1)
        timeout = aiohttp.ClientTimeout(total=1.0)
        started = time.monotonic()
        async with CouchDB(server.url, retry=policy, timeout=timeout) as client:
            with pytest.raises(ServiceUnavailableError):
                await client.info()
        assert time.monotonic() - started < 1.5
    assert server.count("GET", "/") >= 3


def free_port() -> int:
    """A loopback port on which nothing listens (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LateServer:
    """A server on ``port`` that starts listening when the client's second attempt begins,
    so the first one finds the port closed (connection refused)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.attempts = 0
        self.requests: list[str] = []
        self._server: asyncio.AbstractServer | None = None
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        self.trace_configs = [trace]

    async def _on_request_start(
        self, session: Any, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        self.attempts += 1
        if self.attempts == 2:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.split(b" ", 2)[0].decode())
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        writer.write(http_response(201, b'{"ok":true}'))
        await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def late_server() -> AsyncIterator[LateServer]:
    server = LateServer(free_port())
    yield server
    await server.close()


async def test_a_read_refused_a_connection_is_repeated_when_the_server_is_up(
    late_server: LateServer,
) -> None:
    url = f"http://127.0.0.1:{late_server.port}"
    async with CouchDB(url, retry=QUICK, trace_configs=late_server.trace_configs) as client:
        assert (await client.info())["ok"] is True
    assert late_server.attempts == 2
    assert late_server.requests == ["GET"]


async def test_a_write_refused_a_connection_is_repeated_it_was_never_sent(
    late_server: LateServer,
) -> None:
    # PUT /{db} may be repeated only if it was not applied; a refused connection proves
    # that. (aiohttp's transport: it reports a refusal as ClientConnectorError.)
    url = f"http://127.0.0.1:{late_server.port}"
    async with CouchDB(
        url,
        retry=QUICK,
        trace_configs=late_server.trace_configs,
        connector=aiohttp.TCPConnector(),
    ) as client:
        await client.create("db")
    assert late_server.attempts == 2
    assert late_server.requests == ["PUT"]


async def test_a_write_that_reached_the_server_is_not_repeated_after_a_reset(
    transport_options: dict[str, Any],
) -> None:
    async with serving(answers(None), retry=QUICK, **transport_options) as (server, client):
        db = Database(client, "db")
        with pytest.raises(aiohttp.ClientConnectionError):
            await db._purge({"doc": ["1-a"]})
        with pytest.raises(aiohttp.ClientConnectionError):
            await Document(db, "doc").copy("other")
    assert server.count("POST", "/db/_purge") == 1
    assert server.count("COPY", "/db/doc") == 1


@pytest.mark.parametrize("failure", [BAD_GATEWAY, TIMED_OUT])
async def test_a_write_is_not_repeated_after_a_gateway_error(failure: bytes) -> None:
    # the gateway may have forwarded it: nothing proves it was not applied
    async with serving(answers(failure, OK), retry=QUICK) as (server, client):
        with pytest.raises(ServerError):
            await Database(client, "db")._purge({"doc": ["1-a"]})
    assert server.count("POST", "/db/_purge") == 1


@pytest.mark.parametrize("refusal", [UNAVAILABLE, throttled()])
async def test_a_write_the_server_refused_is_repeated(refusal: bytes) -> None:
    async with serving(answers(refusal, OK), retry=QUICK) as (server, client):
        assert (await Database(client, "db")._purge({"doc": ["1-a"]}))["ok"] is True
    assert server.count("POST", "/db/_purge") == 2


async def test_a_read_only_post_is_repeated_after_a_reset(
    transport_options: dict[str, Any],
) -> None:
    bulk_get = http_response(200, b'{"results":[]}')
    async with serving(answers(None, bulk_get), retry=QUICK, **transport_options) as (
        server,
        client,
    ):
        result = await Database(client, "db")._bulk_get([{"id": "doc"}])
    assert result == {"results": []}
    assert server.count("POST", "/db/_bulk_get") == 2


async def test_a_document_put_is_repeated_after_a_reset_and_saved_once() -> None:
    async with serving(answers(None, CREATED), retry=QUICK) as (server, client):
        doc = Document(Database(client, "db"), "doc", data={"v": 1})
        response = await doc.save()
    assert response is not None and response.status == 201
    assert doc.rev == "1-a"
    assert server.count("PUT", "/db/doc") == 2


async def test_a_conflict_without_a_lost_attempt_is_raised_without_checking() -> None:
    async with serving(answers(CONFLICT), retry=QUICK) as (server, client):
        doc = Document(Database(client, "db"), "doc", data={"v": 1})
        with pytest.raises(ConflictError):
            await doc.save()
    assert [request.method for request in server.requests] == ["PUT"]


async def test_a_conflict_after_a_refusal_is_raised_without_checking() -> None:
    # a 429 proves the first attempt was not applied: the conflict is someone else's
    async with serving(answers(throttled(), CONFLICT), retry=QUICK) as (server, client):
        doc = Document(Database(client, "db"), "doc", data={"v": 1})
        with pytest.raises(ConflictError):
            await doc.save()
    assert [request.method for request in server.requests] == ["PUT", "PUT"]


ALL_DOCS_HEAD = CHUNKED_HEAD + chunked(b'{"total_rows":2,"offset":0,"rows":[\r\n')
ROW_A = b'{"id":"a","key":"a","value":{"rev":"1-a"},"doc":{"_id":"a","_rev":"1-a"}},\r\n'
ROW_B = b'{"id":"b","key":"b","value":{"rev":"1-b"},"doc":{"_id":"b","_rev":"1-b"}}\r\n'


async def test_a_stream_is_repeated_while_it_opens() -> None:
    whole = ALL_DOCS_HEAD[: -len(b"0\r\n\r\n")] + chunk(ROW_A) + chunked(ROW_B, b"]}")
    async with serving(answers(None, UNAVAILABLE, whole), retry=QUICK) as (server, client):
        ids = [doc.id async for doc in Database(client, "db").docs()]
    assert ids == ["a", "b"]
    assert server.count("GET") == 3


async def test_a_stream_is_never_repeated_once_a_row_was_handed_out() -> None:
    # _find pages cannot be resumed exactly once a document was handed out (see
    # test_stream_resume.py): what is left of the retries must not send it again either.
    async def cut_after_one_doc(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(
            CHUNKED_HEAD + chunk(b'{"docs":[\r\n{"_id":"a","_rev":"1-a"},\r\n'),
            pause=0.05,
        )
        connection.reset()

    async with serving(cut_after_one_doc, retry=QUICK) as (server, client):
        ids = []
        with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
            async for doc in Database(client, "db").find({"x": 1}):
                ids.append(doc.id)
    assert ids == ["a"]
    assert server.count("POST") == 1


async def test_a_find_stream_is_repeated_while_it_opens() -> None:
    found = http_response(200, b'{"docs":[{"_id":"a","_rev":"1-a"}],"bookmark":"x"}')
    async with serving(answers(None, found), retry=QUICK) as (server, client):
        ids = [doc.id async for doc in Database(client, "db").find({"x": 1})]
    assert ids == ["a"]
    assert server.count("POST", "/db/_find") == 2


def test_the_defaults_are_documented_values() -> None:
    documented = RetryPolicy(
        attempts=5,
        backoff=0.25,
        backoff_max=10.0,
        retry_after_max=60.0,
        budget=None,
        statuses=frozenset({429, 502, 503, 504}),
    )
    assert documented == DEFAULT_RETRY
    assert NO_RETRY.attempts == 1


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"attempts": 1.5},
        {"backoff": -1},
        {"backoff_max": float("nan")},
        {"budget": 0},
    ],
)
def test_a_policy_refuses_values_that_make_no_sense(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)


def test_retry_must_be_a_policy_or_a_bool() -> None:
    with pytest.raises(TypeError, match="retry must be"):
        CouchDB("http://127.0.0.1:1", retry="yes")


def test_waits_grow_exponentially_with_full_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff=0.5, backoff_max=3.0)
    error = ServiceUnavailableError("busy")
    for repeat, bound in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (10, 3.0)]:
        waits = [policy.wait(repeat, error) for _ in range(200)]
        assert all(0 <= wait <= bound for wait in waits)
        assert max(waits) > bound / 2  # spread over the range, not a fixed value
        assert len(set(waits)) > 100


def test_an_invalid_retry_after_falls_back_to_the_backoff() -> None:
    policy = RetryPolicy(backoff=0.5)
    for value in ["soon", "-3", "1.5", "²"]:
        error = TooManyRequestsError("slow down", headers={"Retry-After": value})
        assert 0 <= policy.wait(1, error) <= 0.5


async def test_a_cancelled_call_stops_waiting_at_once() -> None:
    async with ScriptedServer(answers(throttled("30"))) as server, CouchDB(server.url) as client:
        call = asyncio.ensure_future(client.info())
        while not server.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        assert call.cancelled()
    assert server.count("GET", "/") == 1
