"""Database events of the server (aiocouch.db_updates): read once, or followed.

pouchdb-server answers every ``/_db_updates`` request with an empty 400 (DIFF.md 14.27-14.32).
How the follower and the one-shot feed read, resume and stop is therefore scripted byte
for byte (``testserver.scripted_server``), in the layout CouchDB sends: one event per line
of a continuous answer, ``results`` and ``last_seq`` in a normal or longpoll answer
(transcript 14.31, 14.32). The tests against the server are ``couchdb_only``: they make
sure a ``_global_changes`` database exists (transcript 14.28; removed again if the test
made it) and watch the events of a database they create, compared as sets, since a
cluster's feed has no global order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from aiocouch import CouchDB, Database, NotFoundError, PreconditionFailedError
from aiocouch.db_updates import DatabaseUpdate, DbUpdatesFollower
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    continuous_feed,
    error_answer,
    http_response,
    in_turn,
    query,
)

TIMEOUT = 10.0
SERVER_TIMEOUT = 60.0
NO_DB_UPDATES = "pouchdb-server's /_db_updates is a stub answering 400 (transcript 14.{})"

Answer = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]


def update(n: int, db_name: str = "", kind: str = "updated") -> dict[str, Any]:
    return {"db_name": db_name or f"db{n}", "type": kind, "seq": f"{n}-g1AAAA"}


def whole(body: dict[str, Any]) -> Answer:
    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, json.dumps(body).encode()))

    return answer


@contextlib.asynccontextmanager
async def scripted_client(*answers: Answer) -> AsyncIterator[tuple[ScriptedServer, CouchDB]]:
    """A client of a server whose n-th request gets the n-th answer (the last repeats)."""
    async with ScriptedServer(in_turn(*answers)) as server:
        client = CouchDB(server.url)
        try:
            yield server, client
        finally:
            await client.close()


@contextlib.asynccontextmanager
async def following(
    *answers: Answer, **options: Any
) -> AsyncIterator[tuple[ScriptedServer, DbUpdatesFollower]]:
    """A scripted server with ``answers``, and a started follower of its ``/_db_updates``."""
    async with scripted_client(*answers) as (server, client):
        follower = client.follow_db_updates(**options)
        try:
            await follower.start()
            yield server, follower
        finally:
            await follower.aclose()


async def take(follower: DbUpdatesFollower, count: int) -> list[DatabaseUpdate]:
    updates: list[DatabaseUpdate] = []

    async def run() -> None:
        async for event in follower:
            updates.append(event)
            if len(updates) == count:
                return

    await asyncio.wait_for(run(), TIMEOUT)
    return updates


# --- the follower, scripted ---


async def test_a_reset_feed_resumes_since_the_last_event_delivered() -> None:
    async with (
        scripted_client(
            continuous_feed(update(1, kind="created"), update(2), then="reset"),
            continuous_feed(update(3, kind="deleted")),
        ) as (server, client),
        client.follow_db_updates(heartbeat=1) as follower,
    ):
        updates = await take(follower, 3)
        assert follower.last_seq == "3-g1AAAA"
        assert follower.resumes == 1
    assert [(u.db_name, u.type, u.seq) for u in updates] == [
        ("db1", "created", "1-g1AAAA"),
        ("db2", "updated", "2-g1AAAA"),
        ("db3", "deleted", "3-g1AAAA"),
    ]
    first, resume = server.requests
    assert urlsplit(first.target).path == "/_db_updates"
    assert query(first) == {"feed": "continuous", "heartbeat": "1000"}
    assert query(resume) == {"feed": "continuous", "heartbeat": "1000", "since": "2-g1AAAA"}


async def test_a_feed_silent_for_three_heartbeats_is_asked_for_again() -> None:
    async with (
        scripted_client(continuous_feed(update(1), then="stall"), continuous_feed(update(2))) as (
            server,
            client,
        ),
        client.follow_db_updates(heartbeat=0.1) as follower,
    ):
        updates = await take(follower, 2)
        assert isinstance(follower.last_error, asyncio.TimeoutError)
    assert [u.db_name for u in updates] == ["db1", "db2"]
    assert query(server.requests[1])["since"] == "1-g1AAAA"


async def test_since_now_is_fixed_once_and_resumed_from() -> None:
    async with following(
        whole({"results": [], "last_seq": "7-g1AAAA"}),  # transcript 14.32
        continuous_feed(then="reset"),
        continuous_feed(update(8)),
        since="now",
    ) as (server, follower):
        assert follower.last_seq == "7-g1AAAA"
        updates = await take(follower, 1)
    assert [u.seq for u in updates] == ["8-g1AAAA"]
    resolve, first, resume = server.requests
    assert query(resolve) == {"since": "now"}
    assert query(first)["since"] == query(resume)["since"] == "7-g1AAAA"


async def test_a_longpoll_follower_asks_again_since_each_answers_last_seq() -> None:
    async with following(
        whole({"results": [update(1), update(2)], "last_seq": "2-g1AAAA"}),
        whole({"results": [update(3)], "last_seq": "3-g1AAAA"}),
        continuous_feed(),  # an answer that never ends: the follower waits there
        feed="longpoll",
        since=0,
    ) as (server, follower):
        updates = await take(follower, 3)
    assert [u.db_name for u in updates] == ["db1", "db2", "db3"]
    assert [query(r)["since"] for r in server.requests] == ["0", "2-g1AAAA", "3-g1AAAA"]


async def test_aclose_stops_the_follower_and_closes_its_connection() -> None:
    closed = asyncio.Event()
    async with scripted_client(continuous_feed(update(1), closed=closed)) as (server, client):
        follower = client.follow_db_updates()
        updates = await take(follower, 1)
        await follower.aclose()
        await asyncio.wait_for(closed.wait(), TIMEOUT)
        assert [u async for u in follower] == []
    assert [u.db_name for u in updates] == ["db1"]
    assert len(server.requests) == 1


async def test_a_server_without_global_changes_stops_the_follower_with_not_found() -> None:
    # transcript 14.27: a single node without _global_changes answers 404.
    async with scripted_client(error_answer(404)) as (server, client):
        follower = client.follow_db_updates()
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(follower.__anext__(), TIMEOUT)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"feed": "normal"}, ValueError),
        ({"heartbeat": 0}, ValueError),
        ({"since": True}, TypeError),
        ({"error_tolerance": -1}, ValueError),
    ],
)
def test_follower_options_that_cannot_follow_raise_at_once(
    couchdb: CouchDB, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        couchdb.follow_db_updates(**options)


# --- the one-shot feed, scripted ---


async def test_a_normal_feed_hands_out_its_results_and_then_its_last_seq() -> None:
    body = {"results": [update(1, kind="created"), update(2)], "last_seq": "2-g1AAAA"}
    async with scripted_client(whole(body)) as (server, client):
        feed = client.db_updates(since="0", limit=10)
        updates = [u async for u in feed]
    assert [u.json for u in updates] == body["results"]
    assert feed.last_seq == "2-g1AAAA"
    assert query(server.requests[0]) == {"feed": "normal", "since": "0", "limit": "10"}


async def test_a_longpoll_feed_sends_its_timeout_in_milliseconds() -> None:
    async with scripted_client(whole({"results": [], "last_seq": "5-g1AAAA"})) as (
        server,
        client,
    ):
        feed = client.db_updates(feed="longpoll", since="now", timeout=1)
        assert [u async for u in feed] == []
    assert feed.last_seq == "5-g1AAAA"
    assert query(server.requests[0]) == {"feed": "longpoll", "since": "now", "timeout": "1000"}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"feed": "continuous"}, ValueError),
        ({"limit": -1}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"since": 1.5}, TypeError),
    ],
)
def test_feed_options_that_cannot_make_a_request_raise_at_once(
    couchdb: CouchDB, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        couchdb.db_updates(**options)


# --- against CouchDB ---


@pytest.fixture
async def global_changes(couchdb: CouchDB) -> AsyncIterator[None]:
    """A ``_global_changes`` database (transcript 14.28), removed after if made here."""
    try:
        created = await couchdb.create("_global_changes", q=1)
    except PreconditionFailedError:
        yield
        return
    try:
        yield
    finally:
        await created.delete()


async def events_of(follower: DbUpdatesFollower, name: str, wanted: set[str]) -> set[str]:
    """The kinds of events of database ``name``, until all ``wanted`` kinds were seen."""
    seen: set[str] = set()

    async def run() -> None:
        async for event in follower:
            if event.db_name == name:
                seen.add(event.type)
                if wanted <= seen:
                    return

    await asyncio.wait_for(run(), SERVER_TIMEOUT)
    return seen


@pytest.mark.couchdb_only(NO_DB_UPDATES.format("31"))
@pytest.mark.usefixtures("global_changes")
async def test_a_follower_sees_a_database_created_updated_and_deleted(couchdb: CouchDB) -> None:
    name = f"aiocouch_test_updates_{uuid.uuid4().hex}"
    async with couchdb.follow_db_updates(since="now", heartbeat=1) as follower:
        start = follower.last_seq
        database = await couchdb.create(name)
        try:
            document = await database.create("doc", data={"v": 1})
            await document.save()
            assert await events_of(follower, name, {"created", "updated"}) >= {
                "created",
                "updated",
            }
        finally:
            await database.delete()
        assert "deleted" in await events_of(follower, name, {"deleted"})
        assert follower.last_seq not in (start, None)


@pytest.mark.couchdb_only(NO_DB_UPDATES.format("31 and 14.32"))
@pytest.mark.usefixtures("global_changes")
async def test_one_shot_reads_go_on_from_each_last_seq(couchdb: CouchDB) -> None:
    now = couchdb.db_updates(since="now")
    async for _ in now:
        pass
    since = now.last_seq
    assert since is not None
    name = f"aiocouch_test_updates_{uuid.uuid4().hex}"
    await couchdb.create(name)
    try:
        seen: set[str] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVER_TIMEOUT
        # The server writes these events a moment later: a longpoll waits for them.
        while "created" not in seen and loop.time() < deadline:
            feed = couchdb.db_updates(feed="longpoll", since=since, timeout=5)
            seen |= {u.type async for u in feed if u.db_name == name}
            since = feed.last_seq
        assert "created" in seen
    finally:
        with contextlib.suppress(NotFoundError):
            await Database(couchdb, name).delete()


@pytest.mark.couchdb_only(NO_DB_UPDATES.format("32"))
@pytest.mark.usefixtures("global_changes")
async def test_a_longpoll_since_now_ends_after_its_timeout(couchdb: CouchDB) -> None:
    feed = couchdb.db_updates(feed="longpoll", since="now", timeout=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    updates = [u async for u in feed]
    assert loop.time() - started < SERVER_TIMEOUT
    assert feed.last_seq is not None
    assert all(isinstance(u, DatabaseUpdate) for u in updates)
