"""Database maintenance (``aiocouch.maintenance``): compaction and waiting for it, view
cleanup, revision and purge limits, purge, shards, shard sync, full commit.

pouchdb-server serves ``_compact`` on a database, ``_view_cleanup`` and
``_ensure_full_commit``; those tests run on both servers. It lacks the rest (DIFF summary
10): those tests are ``couchdb_only`` and written from the CouchDB 3.4.3 transcript blocks
they name. A loopback server that answers as CouchDB does (``ScriptedServer``) shows what
goes on the wire and what a wrong answer raises. Where a test reads its own write back, it
writes with ``w`` equal to the number of copies, so that it holds on a cluster too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database, NotFoundError
from aiocouch.exception import (
    BadRequestError,
    InvalidResponseError,
    ReadTimeoutError,
    TimeLimitError,
)
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
    routed,
)

PURGE_REASON = "pouchdb-server has no _purge (transcript 10.7, 10.8, 14.86; DIFF 10.7)"
SHARDS_REASON = "pouchdb-server has no _shards (transcript 10.16, 10.17; DIFF 10.16)"
UNKNOWN_REV = "1-ffffffffffffffffffffffffffffffff"
ACCEPTED = http_response(202, b'{"ok":true}')


async def copies(db: Database) -> int:
    """How many copies of each shard the database has (CouchDB's ``cluster.n``)."""
    cluster: dict[str, int] = (await db.info())["cluster"]
    return cluster["n"]


async def write(db: Database, *docs: dict[str, Any]) -> dict[str, str]:
    """Writes ``docs`` to every copy; returns their revisions by id."""
    items = await db._bulk_docs(list(docs), w=await copies(db))
    assert all("rev" in item for item in items), items
    return {item["id"]: item["rev"] for item in items}


# Compaction


async def test_compact_and_wait_leaves_every_document_at_its_latest_revision(
    database: Database,
) -> None:
    doc = await database.create("doc")
    for value in range(5):
        doc["value"] = value
        await doc.save()
    await database.compact(wait=True)
    assert not (await database.info()).get("compact_running")
    stored = await database.get("doc")
    assert (stored.rev, stored["value"]) == (doc.rev, 4)


async def test_waiting_on_a_database_without_compaction_reads_its_info_once(
    database: Database, request_counter: RequestCounter
) -> None:
    await database.wait_for_compaction()
    assert request_counter.requests == [("GET", f"/{database.id}")]


async def test_compact_without_wait_sends_one_post(
    database: Database, request_counter: RequestCounter
) -> None:
    await database.compact()
    assert request_counter.requests == [("POST", f"/{database.id}/_compact")]


@pytest.mark.couchdb_only("pouchdb-server has no _compact/{ddoc} (transcript 10.3; DIFF 10.3)")
async def test_compact_views_and_wait_keeps_the_view_answering(database: Database) -> None:
    await write(
        database,
        {"_id": "_design/d", "views": {"by_v": {"map": "function(doc) { emit(doc.v); }"}}},
        *({"_id": f"doc{v}", "v": v} for v in range(3)),
    )
    view = database.view("d", "by_v")
    before = [key async for key, _ in view.aitems()]
    await database.compact_views("d", wait=True)
    assert [key async for key, _ in view.aitems()] == before == [0, 1, 2]


async def test_view_cleanup_is_accepted(
    database: Database, request_counter: RequestCounter
) -> None:
    await database.view_cleanup()
    assert request_counter.requests == [("POST", f"/{database.id}/_view_cleanup")]


async def test_ensure_full_commit_is_accepted(
    database: Database, request_counter: RequestCounter
) -> None:
    await database.ensure_full_commit()
    assert request_counter.requests == [("POST", f"/{database.id}/_ensure_full_commit")]


# Limits


@pytest.mark.couchdb_only("pouchdb-server has no _revs_limit (transcript 10.10-10.12; DIFF 10.10)")
async def test_revs_limit_is_1000_until_set(database: Database) -> None:
    assert await database.revs_limit() == 1000
    await database.set_revs_limit(500)
    assert await database.revs_limit() == 500


@pytest.mark.couchdb_only(
    "pouchdb-server has no _purged_infos_limit (transcript 10.9, 14.87, 14.88; DIFF 10.9)"
)
async def test_purged_infos_limit_is_1000_until_set(database: Database) -> None:
    assert await database.purged_infos_limit() == 1000
    await database.set_purged_infos_limit(500)
    assert await database.purged_infos_limit() == 500


# Purge


@pytest.mark.couchdb_only(PURGE_REASON)
async def test_purge_removes_the_revision_and_remembers_the_request(database: Database) -> None:
    revs = await write(database, {"_id": "purgeme", "v": 1})
    result = await database.purge(
        {"purgeme": [revs["purgeme"]], "missing_doc": [UNKNOWN_REV]}, w=await copies(database)
    )
    assert result["purged"] == {"purgeme": [revs["purgeme"]], "missing_doc": []}
    with pytest.raises(NotFoundError):
        await database.get("purgeme")
    remembered = {(info["id"], tuple(info["revs"])) async for info in database.purged_infos()}
    assert remembered == {("purgeme", (revs["purgeme"],)), ("missing_doc", (UNKNOWN_REV,))}


@pytest.mark.couchdb_only(PURGE_REASON)
async def test_a_new_database_remembers_no_purge(database: Database) -> None:
    assert [info async for info in database.purged_infos()] == []


async def test_purge_of_nothing_sends_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    assert await database.purge({}) == {"purge_seq": None, "purged": {}}
    assert request_counter.count == 0


# Shards


@pytest.mark.couchdb_only(SHARDS_REASON)
async def test_shards_map_each_range_to_its_copies(database: Database) -> None:
    cluster = (await database.info())["cluster"]
    shards = await database.shards()
    assert len(shards) == cluster["q"]
    for hash_range, nodes in shards.items():
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}", hash_range)
        assert len(set(nodes)) == cluster["n"]


@pytest.mark.couchdb_only(SHARDS_REASON)
@pytest.mark.parametrize("doc_id", ["doc1", "_design/x", "a/b ?%", "ça🛋"])
async def test_document_shard_is_one_of_the_shards(database: Database, doc_id: str) -> None:
    shards = await database.shards()
    shard = await database.document_shard(doc_id)
    assert set(shard["nodes"]) == set(shards[shard["range"]])


@pytest.mark.couchdb_only("pouchdb-server has no _sync_shards (transcript 14.93; DIFF 14.93)")
async def test_sync_shards_is_accepted(database: Database, request_counter: RequestCounter) -> None:
    await database.sync_shards()
    assert request_counter.requests == [("POST", f"/{database.id}/_sync_shards")]


# Bad input: refused before any request


def refused_calls(db: Database) -> list[tuple[type[Exception], Callable[[], Awaitable[Any]]]]:
    return [
        (ValueError, lambda: db.set_revs_limit(0)),
        (TypeError, lambda: db.set_revs_limit("500")),  # type: ignore[arg-type]
        (TypeError, lambda: db.set_revs_limit(True)),
        (ValueError, lambda: db.set_purged_infos_limit(-1)),
        (TypeError, lambda: db.set_purged_infos_limit(1.5)),  # type: ignore[arg-type]
        (TypeError, lambda: db.purge({"doc": "1-abc"})),  # type: ignore[dict-item]
        (TypeError, lambda: db.purge(["doc"])),  # type: ignore[arg-type]
        (ValueError, lambda: db.purge({"doc": []})),
        (ValueError, lambda: db.purge({"doc": [""]})),
        (ValueError, lambda: db.purge({"": ["1-abc"]})),
        (ValueError, lambda: db.purge({"doc": ["1-abc"]}, w=0)),
        (ValueError, lambda: db.document_shard("")),
        (TypeError, lambda: db.document_shard(7)),  # type: ignore[arg-type]
        (BadRequestError, lambda: db.document_shard("\ud800")),
        (ValueError, lambda: db.compact(timeout=0)),
        (ValueError, lambda: db.compact_views("")),
        (TypeError, lambda: db.compact_views(None)),  # type: ignore[arg-type]
        (ValueError, lambda: db.wait_for_compaction(timeout=-1)),
        (ValueError, lambda: db.wait_for_compaction(timeout=float("nan"))),
    ]


async def test_bad_input_raises_before_any_request(
    database: Database, request_counter: RequestCounter
) -> None:
    for error, call in refused_calls(database):
        with pytest.raises(error):
            await call()
    assert request_counter.count == 0


# On the wire, against a server answering as CouchDB does


Answers = dict[tuple[str, str], list[bytes]]
Scripted = Callable[[Answers], Awaitable[tuple[ScriptedServer, Database]]]


@pytest.fixture(params=["lean", "aiohttp"])
async def scripted(request: pytest.FixtureRequest) -> AsyncIterator[Scripted]:
    """``await scripted(answers)``: a server answering as CouchDB (see ``routed``) and its
    database ``db``, through either transport, both closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(answers: Answers) -> tuple[ScriptedServer, Database]:
            server = await stack.enter_async_context(ScriptedServer(routed(answers)))
            options = {"connector": aiohttp.TCPConnector()} if request.param == "aiohttp" else {}
            client = await stack.enter_async_context(CouchDB(server.url, **options))
            return server, Database(client, "db")

        yield start


@pytest.mark.parametrize(
    "call, target, status",
    [
        (lambda db: db.compact(), "/db/_compact", 202),
        (lambda db: db.compact_views("d"), "/db/_compact/d", 202),
        (lambda db: db.view_cleanup(), "/db/_view_cleanup", 202),
        (lambda db: db.sync_shards(), "/db/_sync_shards", 202),
        (lambda db: db.ensure_full_commit(), "/db/_ensure_full_commit", 201),
    ],
)
async def test_maintenance_posts_are_labelled_json_without_a_body(
    scripted: Scripted,
    call: Callable[[Database], Awaitable[None]],
    target: str,
    status: int,
) -> None:
    # transcript 10.1-10.5, 14.93: answered 201/202; without the label 415 (10.2)
    server, db = await scripted({("POST", target): [http_response(status, b'{"ok":true}')]})
    assert await call(db) is None
    [request] = server.requests
    assert (request.method, request.target, request.body) == ("POST", target, b"")


async def test_a_design_document_name_is_one_quoted_segment(scripted: Scripted) -> None:
    server, db = await scripted({("POST", "/db/_compact/a%2Fb%20c"): [ACCEPTED]})
    await db.compact_views("a/b c")
    assert server.count("POST", "/db/_compact/a%2Fb%20c") == 1


def db_info(compact_running: bool) -> bytes:
    body = {"db_name": "db", "doc_count": 0, "compact_running": compact_running}
    return http_response(200, json.dumps(body).encode())


async def test_wait_for_compaction_polls_until_compact_running_is_false(
    scripted: Scripted,
) -> None:
    running, done = db_info(True), db_info(False)
    server, db = await scripted(
        {("POST", "/db/_compact"): [ACCEPTED], ("GET", "/db"): [running, running, done]}
    )
    await db.compact(wait=True)
    assert [(r.method, r.target) for r in server.requests] == [
        ("POST", "/db/_compact"),
        ("GET", "/db"),
        ("GET", "/db"),
        ("GET", "/db"),
    ]


async def test_wait_for_view_compaction_polls_the_design_document_info(
    scripted: Scripted,
) -> None:
    def info(compact_running: bool) -> bytes:
        body = {"name": "d", "view_index": {"compact_running": compact_running}}
        return http_response(200, json.dumps(body).encode())

    server, db = await scripted(
        {
            ("POST", "/db/_compact/d"): [ACCEPTED],
            ("GET", "/db/_design/d/_info"): [info(True), info(False)],
        }
    )
    await db.compact_views("d", wait=True)
    assert server.count("GET", "/db/_design/d/_info") == 2


async def test_a_compaction_that_never_ends_raises_a_time_limit_error(
    scripted: Scripted,
) -> None:
    _, db = await scripted({("GET", "/db"): [db_info(True)]})
    with pytest.raises(TimeLimitError, match=r"still running after 0\.3 s") as caught:
        await db.wait_for_compaction(timeout=0.3)
    assert isinstance(caught.value, asyncio.TimeoutError)


async def test_a_poll_that_outlasts_its_own_time_limit_raises_that_error() -> None:
    async def silent(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await asyncio.sleep(3600)

    options: dict[str, Any] = {"timeout": aiohttp.ClientTimeout(sock_read=0.2), "retry": False}
    async with ScriptedServer(silent) as server, CouchDB(server.url, **options) as client:
        with pytest.raises(ReadTimeoutError) as caught:
            await Database(client, "db").wait_for_compaction(timeout=60)
    assert "still running" not in str(caught.value)


async def test_a_limit_is_sent_as_a_bare_json_integer(scripted: Scripted) -> None:
    # transcript 10.11 and 14.87: the body is the number itself
    server, db = await scripted(
        {
            ("PUT", "/db/_revs_limit"): [http_response(200, b'{"ok":true}')],
            ("PUT", "/db/_purged_infos_limit"): [http_response(200, b'{"ok":true}')],
        }
    )
    await db.set_revs_limit(500)
    await db.set_purged_infos_limit(7)
    assert [(r.target, r.body, r.header("Content-Type")) for r in server.requests] == [
        ("/db/_revs_limit", b"500", "application/json"),
        ("/db/_purged_infos_limit", b"7", "application/json"),
    ]


@pytest.mark.parametrize(
    "call, target, body",
    [
        (lambda db: db.revs_limit(), "/db/_revs_limit", b'"1000"'),
        (lambda db: db.purged_infos_limit(), "/db/_purged_infos_limit", b"-1"),
        (lambda db: db.shards(), "/db/_shards", b'{"shards":{"00000000-ffffffff":"node"}}'),
        (lambda db: db.document_shard("doc"), "/db/_shards/doc", b'{"range":"0-f"}'),
        (lambda db: db.purge({"doc": ["1-a"]}), "/db/_purge", b'{"ok":true}'),
        (lambda db: db.wait_for_compaction("d"), "/db/_design/d/_info", b'{"name":"d"}'),
    ],
)
async def test_an_answer_of_the_wrong_shape_raises_invalid_response(
    scripted: Scripted,
    call: Callable[[Database], Awaitable[Any]],
    target: str,
    body: bytes,
) -> None:
    method = "POST" if target.endswith("_purge") else "GET"
    _, db = await scripted({(method, target): [http_response(200, body)]})
    with pytest.raises(InvalidResponseError):
        await call(db)


async def test_a_purged_info_of_the_wrong_shape_raises_invalid_response(
    scripted: Scripted,
) -> None:
    body = b'{"purged_infos":[{"id":"a","revs":["1-a"]},{"id":"b","revs":"1-b"}]}'
    _, db = await scripted({("GET", "/db/_purged_infos"): [http_response(200, body)]})
    seen = []
    with pytest.raises(InvalidResponseError, match="not a purged document"):
        async for info in db.purged_infos():
            seen.append(info)
    assert seen == [{"id": "a", "revs": ["1-a"]}]


async def test_a_purge_whose_answer_was_lost_is_not_sent_again() -> None:
    async def reset(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        connection.reset()

    async with ScriptedServer(reset) as server, CouchDB(server.url) as client:
        with pytest.raises(aiohttp.ClientConnectionError):
            await Database(client, "db").purge({"doc": ["1-a"]})
    assert server.count("POST", "/db/_purge") == 1
