"""The changes follower (``database.follow``): every change, in order, through breaks.

The first half scripts the server byte for byte (``testserver.scripted_server``): feeds
that reset, go silent, end, answer 503 or replay a change, laid out as CouchDB sends them
(transcript 8.8-8.23: one change per line in a continuous feed, ``{"last_seq"...}`` as its
last line; ``results`` and ``last_seq`` in a longpoll answer). The tests assert the
requests that resume the feed and that no change is lost or handed out twice.

The second half follows the test server: through a fault-injecting proxy
(``testserver.fault_proxy``) whose connections are cut over and over, across a restart of
a private pouchdb-server, and with each filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database, Document
from aiocouch.event import BaseChangeEvent, ChangedEvent, DeletedEvent
from aiocouch.exception import NotFoundError, ServiceUnavailableError
from aiocouch.follower import ChangesFollower
from testserver.fault_proxy import Fault, FaultKind, FaultProxy
from testserver.pouchdb_server import LocalCouchServer
from testserver.scripted_server import (
    CHUNKED_HEAD,
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunk,
    continuous_feed,
    error_answer,
    hold,
    http_response,
    json_line,
    json_lines,
    query,
    scripted,
)

LEAN, AIOHTTP = "lean", "aiohttp"
TIMEOUT = 10.0

Answer = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]


def change(n: int, doc_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "seq": f"{n}-g1AAAA",
        "id": doc_id or f"c{n}",
        "changes": [{"rev": f"1-{n:032x}"}],
        **extra,
    }


@pytest.fixture
def scripted_db(client_factory: Callable[..., CouchDB]) -> Callable[[str], Database]:
    """Databases named ``db`` on scripted servers (stopped by the test itself)."""
    return lambda url: Database(client_factory(url), "db")


@contextlib.asynccontextmanager
async def following(
    *answers: Answer, transport: str = LEAN, **options: Any
) -> AsyncIterator[tuple[ScriptedServer, ChangesFollower]]:
    """A scripted server with ``answers``, and a started follower of its database ``db``."""
    client_options = {"connector": aiohttp.TCPConnector()} if transport == AIOHTTP else {}
    async with scripted(*answers) as server:
        client = CouchDB(server.url, **client_options)
        try:
            async with Database(client, "db").follow(**options) as follower:
                yield server, follower
        finally:
            await client.close()


@contextlib.asynccontextmanager
async def proxied_client(
    server_url: str, user: str, password: str, transport: str = LEAN
) -> AsyncIterator[tuple[FaultProxy, CouchDB]]:
    """A client that reaches the test server through a proxy the test breaks on purpose."""
    options = {"connector": aiohttp.TCPConnector()} if transport == AIOHTTP else {}
    async with FaultProxy(server_url) as proxy:
        client = CouchDB(proxy.url, user=user, password=password, **options)
        try:
            yield proxy, client
        finally:
            await client.close()


async def take(
    follower: ChangesFollower, count: int, *, signal: tuple[int, asyncio.Event] | None = None
) -> list[BaseChangeEvent]:
    """The first ``count`` events; ``signal`` sets an event once that many were handed out."""
    events: list[BaseChangeEvent] = []

    async def run() -> None:
        async for event in follower:
            events.append(event)
            if signal is not None and len(events) == signal[0]:
                signal[1].set()
            if len(events) == count:
                return

    await asyncio.wait_for(run(), TIMEOUT)
    return events


# --- resuming, against scripted servers ---


async def test_a_reset_feed_resumes_since_the_last_change_handed_out() -> None:
    handed_out = asyncio.Event()
    async with following(
        continuous_feed(change(1), change(2), change(3), then="reset", handed_out=handed_out),
        continuous_feed(change(4), change(5)),
        heartbeat=1,
    ) as (server, follower):
        events = await take(follower, 5, signal=(3, handed_out))
        assert follower.last_seq == "5-g1AAAA"
        assert (follower.resumes, follower.duplicates) == (1, 0)
    assert [event.id for event in events] == ["c1", "c2", "c3", "c4", "c5"]
    first, resume = server.requests
    assert query(first) == {"feed": "continuous", "heartbeat": "1000"}
    assert query(resume) == {"feed": "continuous", "heartbeat": "1000", "since": "3-g1AAAA"}
    assert resume.method == "GET"
    assert resume.header("Accept-Encoding") == "identity"


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
async def test_a_feed_silent_for_three_heartbeats_counts_as_dropped(transport: str) -> None:
    async with following(
        continuous_feed(change(1), change(2), then="stall"),
        continuous_feed(change(3)),
        transport=transport,
        heartbeat=0.1,
    ) as (server, follower):
        events = await asyncio.wait_for(take(follower, 3), 3)
        assert isinstance(follower.last_error, asyncio.TimeoutError)
    assert [event.id for event in events] == ["c1", "c2", "c3"]
    assert query(server.requests[1])["since"] == "2-g1AAAA"


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
async def test_heartbeats_keep_a_quiet_feed_open(transport: str) -> None:
    async def quiet(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(json_line(change(1))))
        for _ in range(20):  # 1 s of newlines, one per half heartbeat
            await asyncio.sleep(0.05)
            await connection.send(chunk(b"\n"))
        await connection.send(chunk(json_line(change(2))))
        await hold(connection)

    async with following(quiet, transport=transport, heartbeat=0.1) as (server, follower):
        events = await take(follower, 2)
        assert follower.resumes == 0
    assert [event.id for event in events] == ["c1", "c2"]
    assert len(server.requests) == 1


async def test_a_feed_ended_by_its_last_seq_line_goes_on_from_there() -> None:
    async with following(
        continuous_feed(change(1), {"last_seq": "9-g1AAAA", "pending": 0}, then="end"),
        continuous_feed(change(10)),
    ) as (server, follower):
        events = await take(follower, 2)
    assert [event.id for event in events] == ["c1", "c10"]
    assert query(server.requests[1])["since"] == "9-g1AAAA"


async def test_longpoll_asks_again_since_each_answers_last_seq_and_resumes_a_cut_answer() -> None:
    handed_out = asyncio.Event()

    async def cut_answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        body = b'{"results":[\n' + json_line(change(1))[:-1] + b",\n" + json_line(change(2))
        await connection.send(CHUNKED_HEAD + chunk(body))
        await asyncio.wait_for(handed_out.wait(), TIMEOUT)
        connection.reset()

    async def rest(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        body = (
            b'{"results":[\n' + json_line(change(3)) + b'],\n"last_seq":"4-g1AAAA","pending":0}\n'
        )
        await connection.send(CHUNKED_HEAD + chunk(body) + b"0\r\n\r\n")

    async def waiting(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(b'{"results":[\n'))
        await hold(connection)

    async with following(cut_answer, rest, waiting, feed="longpoll", since=0) as (server, follower):
        events = await take(follower, 3, signal=(2, handed_out))
        while len(server.requests) < 3:
            await asyncio.sleep(0.01)
    assert [event.id for event in events] == ["c1", "c2", "c3"]
    assert [query(r)["since"] for r in server.requests] == ["0", "2-g1AAAA", "4-g1AAAA"]
    assert {query(r)["feed"] for r in server.requests} == {"longpoll"}


async def test_since_now_is_fixed_once_and_resumes_from_that_sequence() -> None:
    async def now(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        # transcript 8.20
        await connection.send(
            http_response(200, b'{"results":[],"last_seq":"7-g1AAAA","pending":0}')
        )

    async with following(
        now, continuous_feed(then="reset"), continuous_feed(change(8)), since="now"
    ) as (
        server,
        follower,
    ):
        assert follower.last_seq == "7-g1AAAA"
        events = await take(follower, 1)
    assert [event.id for event in events] == ["c8"]
    resolve, first, resume = server.requests
    assert query(resolve) == {"since": "now"}
    assert query(first)["since"] == query(resume)["since"] == "7-g1AAAA"


@pytest.mark.parametrize(
    ("options", "expected_query", "expected_body"),
    [
        # transcript 8.13
        ({"doc_ids": ["c1", "c3"]}, {"filter": "_doc_ids"}, {"doc_ids": ["c1", "c3"]}),
        # transcript 8.15
        (
            {"selector": {"n": {"$gte": 3}}},
            {"filter": "_selector"},
            {"selector": {"n": {"$gte": 3}}},
        ),
        ({"view": "d/by_n"}, {"filter": "_view", "view": "d/by_n"}, None),
        ({"filter": "d/mine", "owner": "bob"}, {"filter": "d/mine", "owner": "bob"}, None),
    ],
    ids=["doc_ids", "selector", "view", "design-filter"],
)
async def test_filters_are_sent_again_unchanged_on_resume(
    options: dict[str, Any],
    expected_query: dict[str, str],
    expected_body: dict[str, Any] | None,
) -> None:
    handed_out = asyncio.Event()
    async with following(
        continuous_feed(change(1), then="reset", handed_out=handed_out),
        continuous_feed(change(3)),
        include_docs=True,
        **options,
    ) as (server, follower):
        events = await take(follower, 2, signal=(1, handed_out))
    assert [event.id for event in events] == ["c1", "c3"]
    for request, since in zip(server.requests, [None, "1-g1AAAA"]):
        expected = {"feed": "continuous", "heartbeat": "10000", "include_docs": "true"}
        expected.update(expected_query)
        if since is not None:
            expected["since"] = since
        assert query(request) == expected
        if expected_body is None:
            assert (request.method, request.body) == ("GET", b"")
        else:
            assert request.method == "POST"
            assert json.loads(request.body) == expected_body


async def test_a_change_sent_again_after_a_resume_is_handed_out_and_counted() -> None:
    handed_out = asyncio.Event()
    # the same change at another sequence, as a CouchDB cluster replays a rewound shard
    replayed = {**change(2), "seq": "12-g1AAAA"}
    async with following(
        continuous_feed(change(1), change(2), then="reset", handed_out=handed_out),
        continuous_feed(replayed, change(3)),
    ) as (server, follower):
        events = await take(follower, 4, signal=(2, handed_out))
        assert (follower.resumes, follower.duplicates) == (1, 1)
    assert [event.id for event in events] == ["c1", "c2", "c2", "c3"]
    assert query(server.requests[1])["since"] == "2-g1AAAA"


async def test_503_answers_are_waited_out_with_growing_pauses() -> None:
    async with following(error_answer(503), error_answer(503), continuous_feed(change(1))) as (
        server,
        follower,
    ):
        events = await take(follower, 1)
        assert follower.resumes == 2
        assert isinstance(follower.last_error, ServiceUnavailableError)
    assert [event.id for event in events] == ["c1"]
    assert len(server.requests) == 3


async def test_pauses_between_attempts_double_and_stop_growing_at_the_maximum() -> None:
    arrivals: list[float] = []

    async def unavailable(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        arrivals.append(asyncio.get_running_loop().time())
        await error_answer(503)(request, connection)

    answers = [unavailable] * 6 + [continuous_feed(change(1))]
    async with following(*answers, max_retry_delay=0.2) as (server, follower):
        await take(follower, 1)
    pauses = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    # 0.1 s doubled per failure up to the 0.2 s cap, jittered down to at most half...
    for pause, shortest in zip(pauses, [0.05, 0.1, 0.1, 0.1, 0.1]):
        assert pause >= shortest * 0.95
    # ...and capped: uncapped, the five pauses would take at least 1.55 s
    assert sum(pauses) < 1.5
    assert len(server.requests) == 7


async def test_errors_lasting_longer_than_the_tolerance_are_raised(
    scripted_db: Callable[[str], Database],
) -> None:
    async with scripted(error_answer(503)) as server:
        follower = scripted_db(server.url).follow(error_tolerance=0.3, max_retry_delay=0.1)
        with pytest.raises(ServiceUnavailableError):
            await take(follower, 1)
    assert len(server.requests) >= 2


async def test_a_server_that_is_not_there_is_raised_once_the_tolerance_passed(
    scripted_db: Callable[[str], Database],
) -> None:
    async with scripted(error_answer(503)) as server:
        url = server.url
    follower = scripted_db(url).follow(error_tolerance=0.3)
    with pytest.raises(aiohttp.ClientOSError):
        await take(follower, 1)
    assert follower.resumes >= 1


async def test_a_missing_database_is_raised_at_once(scripted_db: Callable[[str], Database]) -> None:
    with pytest.raises(NotFoundError):
        async with following(error_answer(404)) as (server, follower):
            await take(follower, 1)
    assert len(server.requests) == 1


async def test_batches_hold_what_arrived_together(scripted_db: Callable[[str], Database]) -> None:
    first_batch = asyncio.Event()

    async def two_reads(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(json_lines(change(1), change(2), change(3))))
        await asyncio.wait_for(first_batch.wait(), TIMEOUT)
        await connection.send(chunk(json_lines(change(4), change(5))))
        await hold(connection)

    async with following(two_reads) as (server, follower):
        batches: list[list[str]] = []
        seqs = []
        async for batch in follower.batches():
            batches.append([event.id for event in batch])
            seqs.append(follower.last_seq)
            first_batch.set()
            if len(batches) == 2:
                break
    assert batches == [["c1", "c2", "c3"], ["c4", "c5"]]
    assert seqs == ["3-g1AAAA", "5-g1AAAA"]
    assert len(server.requests) == 1


async def test_events_are_the_changes_feed_classes_with_included_docs() -> None:
    doc = {"_id": "c1", "_rev": f"1-{1:032x}", "n": 1}
    async with following(
        continuous_feed(change(1, doc=doc), change(2, deleted=True)), include_docs=True
    ) as (server, follower):
        changed, deleted = await take(follower, 2)
        assert isinstance(changed, ChangedEvent)
        assert isinstance(deleted, DeletedEvent)
        document = await changed.doc()
    assert (document.id, document["n"], document.rev) == ("c1", 1, changed.rev)
    assert len(server.requests) == 1


# --- stopping ---


@pytest.mark.parametrize("how", ["aclose", "cancel", "async-with"])
async def test_stopping_ends_the_iteration_and_closes_the_connection(
    scripted_db: Callable[[str], Database], how: str
) -> None:
    closed = asyncio.Event()

    async def feed(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(json_line(change(1))))
        await hold(connection, closed)

    received: list[str] = []
    async with scripted(feed) as server:
        follower = scripted_db(server.url).follow()

        async def consume() -> None:
            if how == "async-with":
                async with follower:
                    async for event in follower:
                        received.append(event.id)
                        return
            async for event in follower:
                received.append(event.id)

        task = asyncio.create_task(consume())
        while not received:
            await asyncio.wait_for(asyncio.sleep(0.01), TIMEOUT)
        if how == "aclose":
            await follower.aclose()
            await asyncio.wait_for(task, TIMEOUT)  # the iteration ended by itself
        elif how == "cancel":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            await asyncio.wait_for(task, TIMEOUT)
        await asyncio.wait_for(closed.wait(), TIMEOUT)
    assert received == ["c1"]
    with pytest.raises(StopAsyncIteration):
        await follower.__anext__()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"feed": "normal"}, ValueError),
        ({"feed": "eventsource"}, ValueError),
        ({"heartbeat": 0}, ValueError),
        ({"heartbeat": float("nan")}, ValueError),
        ({"max_retry_delay": -1}, ValueError),
        ({"error_tolerance": -1}, ValueError),
        ({"since": 1.5}, TypeError),
        ({"since": True}, TypeError),
        ({"doc_ids": "c1"}, TypeError),
        ({"doc_ids": [1]}, TypeError),
        ({"selector": [1]}, TypeError),
        ({"view": "no-slash"}, ValueError),
        ({"filter": ""}, ValueError),
        ({"doc_ids": ["a"], "selector": {}}, ValueError),
        ({"view": "d/v", "filter": "d/f"}, ValueError),
        ({"limit": 5}, ValueError),
        ({"descending": True}, ValueError),
        ({"timeout": 1000}, ValueError),
    ],
)
def test_options_that_make_no_follower_raise_before_any_request(
    options: dict[str, Any], error: type[Exception]
) -> None:
    database = Database(CouchDB("http://127.0.0.1:9"), "db")
    with pytest.raises(error):
        database.follow(**options)


def test_a_view_filter_may_name_its_filter() -> None:
    database = Database(CouchDB("http://127.0.0.1:9"), "db")
    assert isinstance(database.follow(view="d/v", filter="_view"), ChangesFollower)


# --- against the test server ---


@pytest.fixture
def database_params() -> dict[str, Any]:
    """Databases with one shard (``q=1``): CouchDB lists their changes in write order."""
    return {"q": 1}


async def save(database: Database, doc_id: str, **data: Any) -> None:
    await Document(database, doc_id, data=data).save()


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
@pytest.mark.parametrize("feed", ["continuous", "longpoll"])
async def test_a_follower_gets_every_change_in_order_while_its_connection_is_cut(
    database: Database,
    server_url: str,
    admin_user: str,
    admin_password: str,
    feed: str,
    transport: str,
) -> None:
    ids = [f"doc{n:03}" for n in range(60)]
    user, password = admin_user, admin_password
    dropped = 0
    async with proxied_client(server_url, user, password, transport) as (proxy, client):
        proxied = Database(client, database.id)
        async with proxied.follow(feed=feed, since="now", heartbeat=0.5) as follower:
            received = asyncio.create_task(take(follower, len(ids)))
            for number, doc_id in enumerate(ids):
                await save(database, doc_id, n=number)
                if number % 10 == 5:
                    # between attempts the follower has no connection to cut
                    await asyncio.wait_for(connected(proxy), TIMEOUT)
                    dropped += proxy.drop_connections()
            events = await received
            assert follower.duplicates == 0
            if feed == "continuous":
                # The first cut breaks the open feed; later ones may come while the
                # follower waits to ask again (only an idle pooled connection is cut then),
                # and a longpoll follower may be between two requests at any cut.
                assert follower.resumes >= 1
    assert dropped > 0
    assert [event.id for event in events] == ids


async def connected(proxy: FaultProxy) -> None:
    while proxy.open_connections == 0:
        await asyncio.sleep(0.01)


async def test_a_follower_goes_on_after_the_server_restarts() -> None:
    with LocalCouchServer() as server:
        async with CouchDB(server.url, user=server.user, password=server.password) as client:
            database = await client.create("followed")
            async with database.follow(heartbeat=0.5, include_docs=True) as follower:
                received = asyncio.create_task(take(follower, 10))
                for n in range(5):
                    await save(database, f"before{n}", n=n)
                await asyncio.get_running_loop().run_in_executor(None, server.restart)
                for n in range(5):
                    await save(database, f"after{n}", n=n)
                events = await received
                assert follower.resumes >= 1
    expected = [f"before{n}" for n in range(5)] + [f"after{n}" for n in range(5)]
    assert [event.id for event in events] == expected
    assert [event.json["doc"]["n"] for event in events] == list(range(5)) * 2


async def test_since_now_skips_the_changes_made_before_start(database: Database) -> None:
    await save(database, "before")
    async with database.follow(since="now", heartbeat=0.5) as follower:
        await save(database, "after")
        [event] = await take(follower, 1)
    assert event.id == "after"


async def test_doc_ids_filter_follows_only_those_documents(database: Database) -> None:
    async with database.follow(doc_ids=["b", "d"], heartbeat=0.5) as follower:
        for doc_id in "abcde":
            await save(database, doc_id)
        events = await take(follower, 2)
    assert [event.id for event in events] == ["b", "d"]


async def test_a_deletion_arrives_as_a_deleted_event(database: Database) -> None:
    async with database.follow(heartbeat=0.5) as follower:
        doc = Document(database, "gone")
        await doc.save()
        await doc.delete()
        created, deleted = await take(follower, 2)
    assert isinstance(created, ChangedEvent)
    assert isinstance(deleted, DeletedEvent)
    assert deleted.id == "gone"
    assert deleted.rev.startswith("2-")


@pytest.mark.couchdb_only(
    "pouchdb-server exits on a _changes filter other than _doc_ids (DIFF.md 1, 8.15); "
    "written from transcript 8.15"
)
async def test_selector_filter_follows_the_matching_documents(database: Database) -> None:
    async with database.follow(selector={"n": {"$gte": 3}}, heartbeat=0.5) as follower:
        for n in range(1, 6):
            await save(database, f"c{n}", n=n)
        events = await take(follower, 3)
    assert [event.id for event in events] == ["c3", "c4", "c5"]


@pytest.mark.couchdb_only(
    "pouchdb-server exits on a _changes filter other than _doc_ids (DIFF.md 1, 8.16-8.17); "
    "written from transcript 8.16 and CouchDB's filter functions"
)
async def test_design_document_filter_gets_its_query_parameters(database: Database) -> None:
    await save(
        database,
        "_design/f",
        filters={"owned": "function(doc, req) { return doc.owner === req.query.owner; }"},
    )
    async with database.follow(filter="f/owned", owner="bob", heartbeat=0.5) as follower:
        for n, owner in enumerate(["ann", "bob", "ann", "bob"]):
            await save(database, f"d{n}", owner=owner)
        events = await take(follower, 2)
    assert [event.id for event in events] == ["d1", "d3"]


@pytest.mark.couchdb_only(
    "pouchdb-server exits on a _changes filter other than _doc_ids (DIFF.md 1, 8.15-8.17); "
    "CouchDB's filter=_view (not in the transcript)"
)
async def test_view_filter_follows_the_documents_the_view_emits(database: Database) -> None:
    await save(
        database,
        "_design/v",
        views={"red": {"map": "function(doc) { if (doc.red) { emit(doc._id, null); } }"}},
    )
    async with database.follow(view="v/red", heartbeat=0.5) as follower:
        for n in range(4):
            await save(database, f"d{n}", red=n % 2 == 1)
        events = await take(follower, 2)
    assert [event.id for event in events] == ["d1", "d3"]


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
async def test_all_docs_iteration_cut_midway_resumes_without_loss_or_repeat(
    database: Database, server_url: str, admin_user: str, admin_password: str, transport: str
) -> None:
    ids = [f"doc{n:04}" for n in range(400)]
    async with database.create_docs() as bulk:
        for doc_id in ids:
            # random, so that a compressed answer is large too
            bulk.create(doc_id, data={"padding": os.urandom(500).hex()})
    user, password = admin_user, admin_password
    async with proxied_client(server_url, user, password, transport) as (proxy, client):
        proxy.force(
            Fault(FaultKind.RESET_MID_ANSWER, offset=50_000), path=f"/{database.id}/_all_docs"
        )
        got = [doc.id async for doc in Database(client, database.id).docs()]
        assert proxy.stats.faults == {FaultKind.RESET_MID_ANSWER: 1}
        assert proxy.stats.connections == 2
    assert got == ids
