"""The ``_changes`` feed (API.md section 12) and the event classes of ``aiocouch.event``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import pytest
from aiohttp import web

from aiocouch import CouchDB, Database, Document, NotFoundError, ReadTimeoutError
from aiocouch.event import BaseChangeEvent, ChangedEvent, DeletedEvent
from aiocouch.exception import BadRequestError, ForbiddenError, UnauthorizedError
from testserver import scripted_server
from testserver.request_counter import RequestCounter
from testserver.scripted_server import ReceivedRequest, ScriptedConnection, http_response

T = TypeVar("T")

# Every wait on the server is bounded by this many seconds.
TIMEOUT = 10.0
TWO_MB = 2 * 1024 * 1024


@pytest.fixture
def database_params() -> dict[str, Any]:
    """Databases with one shard (``q=1``).

    CouchDB interleaves the changes of several shards in no fixed order; with one shard
    the feed lists changes in the order they were written, as pouchdb-server always does.
    """
    return {"q": 1}


async def bounded(awaitable: Awaitable[T], timeout: float = TIMEOUT) -> T:
    return await asyncio.wait_for(awaitable, timeout)


async def save(database: Database, doc_id: str, **data: Any) -> Document:
    doc = Document(database, doc_id, data=data)
    await doc.save()
    return doc


async def events_of(feed: Any) -> list[BaseChangeEvent]:
    return [event async for event in feed]


async def first_events(feed: Any, count: int) -> list[BaseChangeEvent]:
    """The first ``count`` events of a feed that may never end; the feed is closed after."""
    received: list[BaseChangeEvent] = []
    try:
        async for event in feed:
            received.append(event)
            if len(received) == count:
                break
    finally:
        await feed.aclose()
    return received


def query_of(raw_path_qs: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(raw_path_qs).query, keep_blank_values=True))


async def write_until_done(
    database: Database, task: asyncio.Task[T], prefix: str, attempts: int = 40
) -> list[str]:
    """Writes a document every 0.25 s until ``task`` is done (a feed received something).

    The server resolves ``since=now`` when it gets the request, which the client cannot
    observe; writing until the feed answers avoids guessing a fixed delay.
    """
    written: list[str] = []
    for n in range(attempts):
        doc_id = f"{prefix}-{n}"
        await save(database, doc_id, n=n)
        written.append(doc_id)
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            return written
    task.cancel()
    raise AssertionError(f"the feed received none of {written}")


# --- event classes ---


def test_changed_event_properties() -> None:
    json_row = {"seq": "5-g1AAAA", "id": "doc", "changes": [{"rev": "2-b"}, {"rev": "2-a"}]}
    event = ChangedEvent(json=json_row, database=None)
    assert isinstance(event, BaseChangeEvent)
    assert event.id == "doc"
    assert event.rev == "2-b"  # the first leaf only
    assert event.sequence == "5-g1AAAA"
    assert event.json is json_row
    assert event.database is None


def test_deleted_event_properties() -> None:
    event = DeletedEvent(
        json={"seq": 7, "id": "gone", "changes": [{"rev": "3-c"}], "deleted": True}
    )
    assert isinstance(event, BaseChangeEvent)
    assert not isinstance(event, ChangedEvent)
    assert event.id == "gone"
    assert event.rev == "3-c"
    assert event.sequence == 7


def test_event_without_seq_raises_key_error_for_sequence() -> None:
    event = ChangedEvent(json={"id": "doc", "changes": [{"rev": "1-a"}]}, database=None)
    assert event.id == "doc"
    with pytest.raises(KeyError):
        event.sequence  # noqa: B018


def test_events_are_mutable() -> None:
    event = ChangedEvent(json={"id": "a", "changes": [{"rev": "1-a"}], "seq": 1}, database=None)
    event.json = {"id": "b", "changes": [{"rev": "1-b"}], "seq": 2}
    assert event.id == "b"
    assert event.rev == "1-b"
    sentinel = object()
    event.database = sentinel  # type: ignore[assignment]
    assert event.database is sentinel


async def test_changed_event_doc_from_included_doc_without_database() -> None:
    row = {
        "id": "doc",
        "seq": 1,
        "changes": [{"rev": "1-a"}],
        "doc": {"_id": "doc", "_rev": "1-a", "v": 1},
    }
    doc = await ChangedEvent(json=row, database=None).doc()
    assert isinstance(doc, Document)
    assert doc.id == "doc"
    assert doc.rev == "1-a"
    assert doc["v"] == 1


async def test_changed_event_doc_without_doc_or_database_raises_attribute_error() -> None:
    event = ChangedEvent(json={"id": "doc", "changes": [{"rev": "1-a"}], "seq": 1}, database=None)
    with pytest.raises(AttributeError):
        await event.doc()


# --- normal feed ---


async def test_normal_feed_yields_changed_and_deleted_events(
    database: Database, request_counter: RequestCounter
) -> None:
    kept = await save(database, "kept", v=1)
    gone = await save(database, "gone", v=1)
    assert gone.rev is not None
    _, deletion = await gone._delete(gone.rev)
    request_counter.reset()

    events = await bounded(events_of(database.changes()))

    assert request_counter.requests == [("GET", f"/{database.id}/_changes")]
    assert [type(event) for event in events] == [ChangedEvent, DeletedEvent]
    changed, deleted = events
    assert changed.id == "kept"
    assert changed.rev == kept.rev
    assert changed.sequence is not None
    assert isinstance(changed, ChangedEvent)
    assert changed.database is database
    assert deleted.id == "gone"
    assert deleted.rev == deletion["rev"]
    assert deleted.sequence is not None
    assert deleted.json["deleted"] is True


async def test_creating_the_feed_sends_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    database.changes()
    database.changes(feed="continuous")
    assert request_counter.count == 0


async def test_empty_database_feed_has_no_events_but_a_last_seq(database: Database) -> None:
    feed = database.changes()
    assert feed.last_seq is None
    assert await bounded(events_of(feed)) == []
    assert feed.last_seq is not None


async def test_last_seq_is_set_after_iteration_and_resumes_the_feed(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    feed = database.changes()
    assert feed.last_seq is None
    events = await bounded(events_of(feed))
    assert [event.id for event in events] == ["a", "b", "c"]
    last_seq = feed.last_seq
    assert last_seq is not None

    assert await bounded(events_of(database.changes(since=last_seq))) == []
    await save(database, "d")
    assert [e.id for e in await bounded(events_of(database.changes(since=last_seq)))] == ["d"]


@pytest.mark.couchdb_only("pouchdb-server sends no pending field (DIFF 2)")
async def test_pending_is_set_after_iteration(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    feed = database.changes(limit=1)
    assert len(await bounded(events_of(feed))) == 1
    assert feed.pending == 2


async def test_since_a_sequence_yields_only_later_changes(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    first, *_ = await bounded(events_of(database.changes()))
    later = await bounded(events_of(database.changes(since=first.sequence)))
    assert [event.id for event in later] == ["b", "c"]


async def test_since_now_yields_nothing_old(database: Database) -> None:
    await save(database, "a")
    feed = database.changes(since="now")
    assert await bounded(events_of(feed)) == []
    assert feed.last_seq is not None


async def test_limit(database: Database, request_counter: RequestCounter) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    request_counter.reset()
    events = await bounded(events_of(database.changes(limit=2)))
    assert [event.id for event in events] == ["a", "b"]
    assert query_of(request_counter.requests[-1][1]) == {"limit": "2"}


async def test_descending(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    events = await bounded(events_of(database.changes(descending=True)))
    assert [event.id for event in events] == ["c", "b", "a"]


async def test_updated_document_appears_once_with_its_latest_rev(database: Database) -> None:
    doc = await save(database, "a", v=1)
    doc["v"] = 2
    await doc.save()
    events = await bounded(events_of(database.changes()))
    assert [(event.id, event.rev) for event in events] == [("a", doc.rev)]


async def test_include_docs_builds_documents_without_a_request(
    database: Database, request_counter: RequestCounter
) -> None:
    saved = [await save(database, f"doc{n}", n=n, nested={"list": [n, "x"]}) for n in range(3)]
    events = await bounded(events_of(database.changes(include_docs=True)))
    assert query_of(request_counter.requests[-1][1]) == {"include_docs": "true"}
    request_counter.reset()
    for event, original in zip(events, saved):
        assert isinstance(event, ChangedEvent)
        doc = await event.doc()
        assert isinstance(doc, Document)
        assert doc.id == original.id
        assert doc.rev == event.rev == original.rev
        assert doc["n"] == original["n"]
        assert doc["nested"] == original["nested"]
        assert doc._database is database
    assert request_counter.count == 0


async def test_doc_without_include_docs_gets_the_event_revision(
    database: Database, request_counter: RequestCounter
) -> None:
    doc = await save(database, "a/b", v=1)
    (event,) = await bounded(events_of(database.changes()))
    assert isinstance(event, ChangedEvent)
    old_rev = doc.rev
    doc["v"] = 2
    await doc.save()  # the event now names an older revision
    request_counter.reset()

    fetched = await event.doc()

    assert request_counter.requests == [
        ("GET", f"/{database.id}/a%2Fb?rev={quote(str(old_rev), safe='')}")
    ]
    assert fetched.rev == event.rev == old_rev
    assert fetched["v"] == 1


async def test_last_event_id_is_sent_as_query_parameter(
    database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "b"):
        await save(database, doc_id)
    first, *_ = await bounded(events_of(database.changes()))
    request_counter.reset()
    await bounded(events_of(database.changes(last_event_id=str(first.sequence))))
    await bounded(events_of(database.changes(last_event_id=None)))
    assert query_of(request_counter.requests[0][1]) == {"last-event-id": str(first.sequence)}
    assert query_of(request_counter.requests[1][1]) == {}


@pytest.mark.couchdb_only("pouchdb-server ignores the last-event-id parameter")
async def test_last_event_id_yields_only_later_changes(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    first, *_ = await bounded(events_of(database.changes()))
    later = await bounded(events_of(database.changes(last_event_id=first.sequence)))
    assert [event.id for event in later] == ["b", "c"]


async def test_doc_ids_filter_with_a_json_string(
    database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    request_counter.reset()
    events = await bounded(
        events_of(database.changes(filter="_doc_ids", doc_ids=json.dumps(["a", "c"])))
    )
    assert sorted(event.id for event in events) == ["a", "c"]
    query = query_of(request_counter.requests[-1][1])
    assert query["filter"] == "_doc_ids"
    assert json.loads(query["doc_ids"]) == ["a", "c"]


async def test_doc_ids_filter_with_a_list(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    events = await bounded(events_of(database.changes(filter="_doc_ids", doc_ids=["b"])))
    assert [event.id for event in events] == ["b"]


async def test_doc_ids_filter_on_a_continuous_feed(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    feed = database.changes(feed="continuous", filter="_doc_ids", doc_ids=["a", "c"])
    events = await bounded(first_events(feed, 2))
    assert sorted(event.id for event in events) == ["a", "c"]


@pytest.mark.couchdb_only("pouchdb-server exits on a _changes filter other than _doc_ids")
async def test_design_filter(database: Database) -> None:
    await save(database, "a")
    await save(database, "_design/d", language="javascript")
    events = await bounded(events_of(database.changes(filter="_design")))
    assert [event.id for event in events] == ["_design/d"]


async def test_design_document_filter_function(database: Database) -> None:
    # Runs on pouchdb-server too: it exits only on a filter whose design document is
    # missing (DIFF 8.17); here the design document exists.
    await save(
        database,
        "_design/f",
        filters={"even": "function(doc, req) { return doc.n % 2 === 0; }"},
    )
    for n in range(4):
        await save(database, f"doc{n}", n=n)
    events = await bounded(events_of(database.changes(filter="f/even")))
    assert [event.id for event in events] == ["doc0", "doc2"]


@pytest.mark.couchdb_only("pouchdb-server exits on a _changes filter other than _doc_ids")
async def test_selector_filter_without_body_is_bad_request(database: Database) -> None:
    # _selector needs a POST body, which changes() does not send: CouchDB answers 400
    with pytest.raises(BadRequestError):
        await bounded(events_of(database.changes(filter="_selector")))


@pytest.mark.couchdb_only("pouchdb-server treats an unknown feed type as normal (DIFF 8.27)")
async def test_unknown_feed_type_is_bad_request(database: Database) -> None:
    with pytest.raises(BadRequestError) as caught:
        await bounded(events_of(database.changes(feed="bogus")))
    assert caught.value.status == 400


async def test_changes_of_a_missing_database_raise_not_found(couchdb: CouchDB) -> None:
    missing = Database(couchdb, f"aiocouch_missing_{uuid.uuid4().hex}")
    feed = missing.changes()
    with pytest.raises(NotFoundError) as caught:
        await bounded(feed.__anext__())
    assert caught.value.status == 404
    assert isinstance(caught.value, KeyError)


async def test_continuous_changes_of_a_missing_database_raise_not_found(
    couchdb: CouchDB,
) -> None:
    missing = Database(couchdb, f"aiocouch_missing_{uuid.uuid4().hex}")
    with pytest.raises(NotFoundError) as caught:
        await bounded(events_of(missing.changes(feed="continuous")))
    assert caught.value.status == 404


async def test_two_megabyte_change_in_a_normal_feed(database: Database) -> None:
    await save(database, "big", blob="é" * TWO_MB)
    await save(database, "small", v=1)
    events = await bounded(events_of(database.changes(include_docs=True)))
    assert [event.id for event in events] == ["big", "small"]
    assert isinstance(events[0], ChangedEvent)
    big = await events[0].doc()
    assert big["blob"] == "é" * TWO_MB


async def test_longpoll_returns_when_a_change_arrives(database: Database) -> None:
    await save(database, "old")
    feed = database.changes()
    await bounded(events_of(feed))
    since = feed.last_seq

    longpoll = database.changes(feed="longpoll", since=since)
    task = asyncio.ensure_future(events_of(longpoll))
    written = await bounded(write_until_done(database, task, "new"), TIMEOUT * 2)
    events = task.result()
    assert events
    assert all(event.id in written for event in events)
    assert events[0].id == "new-0"
    assert longpoll.last_seq is not None


# --- continuous feed ---


async def test_continuous_feed_yields_existing_changes_and_sends_heartbeat(
    database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "b"):
        await save(database, doc_id)
    request_counter.reset()
    events = await bounded(first_events(database.changes(feed="continuous"), 2))
    assert [event.id for event in events] == ["a", "b"]
    assert all(isinstance(event, ChangedEvent) for event in events)
    assert query_of(request_counter.requests[0][1]) == {
        "feed": "continuous",
        "heartbeat": "true",
    }


async def test_continuous_feed_delivers_a_write_made_after_it_started(
    database: Database,
) -> None:
    await save(database, "before")
    feed = database.changes(feed="continuous", since="now", include_docs=True)
    task = asyncio.ensure_future(first_events(feed, 1))
    written = await bounded(write_until_done(database, task, "live"), TIMEOUT * 2)
    (event,) = task.result()
    # the first write may race the feed's request; any later one must arrive
    assert event.id in written
    assert isinstance(event, ChangedEvent)
    assert (await event.doc())["n"] == written.index(event.id)


async def test_continuous_feed_delivers_deletions(database: Database) -> None:
    doc = await save(database, "a")
    await doc.delete()
    (event,) = await bounded(first_events(database.changes(feed="continuous"), 1))
    assert isinstance(event, DeletedEvent)
    assert event.id == "a"


async def test_leaving_a_continuous_feed_early_does_not_hang(
    couchdb: CouchDB, database: Database
) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)

    async def first_id() -> str:
        async for event in database.changes(feed="continuous"):
            return event.id
        raise AssertionError("the feed ended")

    # leaving by return, without closing the feed explicitly, several times
    for _ in range(5):
        assert await bounded(first_id()) == "a"

    feed = database.changes(feed="continuous")
    async for event in feed:
        assert event.id == "a"
        break
    await bounded(feed.aclose())
    with pytest.raises(StopAsyncIteration):
        await bounded(feed.__anext__())

    # the client still works and closes promptly
    await save(database, "after")
    assert (await database.get("after")).id == "after"
    await bounded(couchdb.close(), 5)


async def test_continuous_feed_with_a_two_megabyte_change_line(database: Database) -> None:
    # aiocouch 4.0.1 failed on lines longer than aiohttp's line buffer
    await save(database, "big", blob="x" * TWO_MB, tail="end")
    await save(database, "small", v=1)
    feed = database.changes(feed="continuous", include_docs=True)
    events = await bounded(first_events(feed, 2))
    assert [event.id for event in events] == ["big", "small"]
    assert isinstance(events[0], ChangedEvent)
    big = await events[0].doc()
    assert big["blob"] == "x" * TWO_MB
    assert big["tail"] == "end"


@pytest.mark.couchdb_only(
    "pouchdb-server ignores limit on a continuous feed and never ends it (no last_seq line)"
)
async def test_finite_continuous_feed_ends_without_a_last_seq_event(database: Database) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id)
    feed = database.changes(feed="continuous", limit=2)
    events = await bounded(events_of(feed))
    assert [event.id for event in events] == ["a", "b"]
    assert all("last_seq" not in event.json for event in events)
    assert feed.last_seq is not None
    assert [e.id for e in await bounded(events_of(database.changes(since=feed.last_seq)))] == ["c"]


@pytest.mark.couchdb_only("pouchdb-server ignores timeout on a continuous feed (DIFF 8.23)")
async def test_continuous_feed_with_timeout_ends(database: Database) -> None:
    await save(database, "a")
    feed = database.changes(feed="continuous", since="now", timeout=300, heartbeat=None)
    assert await bounded(events_of(feed)) == []
    assert feed.last_seq is not None


# --- scripted server: CouchDB's feed layouts, byte for byte ---
#
# pouchdb-server never ends a continuous feed and sends no ``pending``; these tests replay
# CouchDB 3.4.3's answers (shared/couchdb/couchdb-3.4.3.md, 8.x) from a local aiohttp
# server, so the handling of those bytes is tested on every run.


class ScriptedServer:
    """Answers ``GET /{db}/_changes`` with the chunks of the current script."""

    def __init__(self) -> None:
        self.status = 200
        self.chunks: list[bytes] = []
        self.pause = 0.0
        self.queries: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{db}/_changes", self._changes)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _changes(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        response = web.StreamResponse(
            status=self.status, headers={"Content-Type": "application/json"}
        )
        await response.prepare(request)
        for chunk in self.chunks:
            await response.write(chunk)
            if self.pause:
                await asyncio.sleep(self.pause)
        await response.write_eof()
        return response


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def scripted_db(scripted: ScriptedServer) -> AsyncIterator[Database]:
    async with CouchDB(scripted.url, user="admin", password="secret") as client:
        yield Database(client, "db")


SEQ = "6-g1AAAACTeJzLYWBgYMpgTmHgz8tPSTV0MDQy"


def line(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


def change(n: int, **extra: Any) -> dict[str, Any]:
    return {"seq": f"{n}-g1AAAA", "id": f"c{n}", "changes": [{"rev": f"1-{n:032x}"}], **extra}


async def test_scripted_finite_continuous_feed_ends_at_the_last_seq_line(
    scripted: ScriptedServer, scripted_db: Database
) -> None:
    scripted.chunks = [
        line(change(1)),
        line(change(2, deleted=True)),
        b"\n",
        line({"last_seq": SEQ, "pending": 1}),
        b"\n",
    ]
    feed = scripted_db.changes(feed="continuous", limit=2)
    events = await bounded(events_of(feed))
    assert [type(event) for event in events] == [ChangedEvent, DeletedEvent]
    assert [event.id for event in events] == ["c1", "c2"]
    assert feed.last_seq == SEQ
    assert feed.pending == 1
    assert scripted.queries == [{"feed": "continuous", "limit": "2", "heartbeat": "true"}]


async def test_scripted_continuous_feed_stops_at_the_last_seq_line(
    scripted: ScriptedServer, scripted_db: Database
) -> None:
    # nothing after the last_seq line is read as an event
    scripted.chunks = [line(change(1)), line({"last_seq": SEQ, "pending": 0}), line(change(9))]
    feed = scripted_db.changes(feed="continuous", timeout=1500)
    assert [event.id for event in await bounded(events_of(feed))] == ["c1"]
    assert feed.last_seq == SEQ


async def test_scripted_continuous_feed_with_lines_split_across_chunks(
    scripted: ScriptedServer, scripted_db: Database
) -> None:
    body = b"\n\n" + line(change(1)) + b"\n" + line(change(2)) + line({"last_seq": SEQ})
    scripted.chunks = [body[n : n + 7] for n in range(0, len(body), 7)]
    scripted.pause = 0.001
    feed = scripted_db.changes(feed="continuous")
    assert [event.id for event in await bounded(events_of(feed))] == ["c1", "c2"]
    assert feed.last_seq == SEQ
    assert feed.pending is None


async def test_scripted_continuous_feed_with_a_five_megabyte_line(
    scripted: ScriptedServer, scripted_db: Database
) -> None:
    blob = "☃" * (5 * 1024 * 1024 // 3)
    big = line(change(1, doc={"_id": "c1", "_rev": f"1-{1:032x}", "blob": blob}))
    assert len(big) > 5 * 1024 * 1024
    scripted.chunks = [
        b"\n",
        *(big[n : n + 65536] for n in range(0, len(big), 65536)),
        line(change(2)),
        line({"last_seq": SEQ, "pending": 0}),
    ]
    events = await bounded(events_of(scripted_db.changes(feed="continuous", include_docs=True)))
    assert [event.id for event in events] == ["c1", "c2"]
    assert isinstance(events[0], ChangedEvent)
    assert (await events[0].doc())["blob"] == blob


async def test_scripted_continuous_feed_ended_without_last_seq(
    scripted: ScriptedServer, scripted_db: Database
) -> None:
    scripted.chunks = [line(change(1)), b"\n"]
    feed = scripted_db.changes(feed="continuous")
    assert [event.id for event in await bounded(events_of(feed))] == ["c1"]
    assert feed.last_seq is None


async def test_scripted_normal_feed_in_couchdb_layout_sets_last_seq_and_pending(
    scripted: ScriptedServer, scripted_db: Database
) -> None:
    rows = ",\n".join(json.dumps(change(n), separators=(",", ":")) for n in (1, 2, 3))
    body = f'{{"results":[\n{rows}\n],\n"last_seq":"{SEQ}","pending":4}}\n'.encode()
    scripted.chunks = [body[n : n + 5] for n in range(0, len(body), 5)]
    feed = scripted_db.changes(limit=3)
    assert [event.id for event in await bounded(events_of(feed))] == ["c1", "c2", "c3"]
    assert feed.last_seq == SEQ
    assert feed.pending == 4


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, UnauthorizedError), (403, ForbiddenError), (404, NotFoundError), (400, BadRequestError)],
)
@pytest.mark.parametrize("feed_type", ["continuous", "normal", "longpoll"])
async def test_scripted_error_statuses_are_typed(
    scripted: ScriptedServer,
    scripted_db: Database,
    status: int,
    cls: type[Exception],
    feed_type: str,
) -> None:
    scripted.status = status
    scripted.chunks = [b'{"error":"some_error","reason":"the reason"}']
    with pytest.raises(cls) as caught:
        await bounded(events_of(scripted_db.changes(feed=feed_type)))
    assert isinstance(caught.value, aiohttp.ClientResponseError)
    assert caught.value.status == status
    assert "secret" not in str(caught.value)
    assert "secret" not in repr(caught.value)


# --- time limits of feeds that wait for changes ---

CHANGE_LINE = b'{"seq":"1-a","id":"a","changes":[{"rev":"1-a"}]}\n'


def continuous_feed(beats: int, then_silent: bool) -> Any:
    """A continuous feed: one change, ``beats`` heartbeats 0.1 s apart, then silence or end."""

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        head = http_response(200, headers=[("Transfer-Encoding", "chunked")], length=False)
        await connection.send(head + b"%x\r\n%s\r\n" % (len(CHANGE_LINE), CHANGE_LINE))
        for _ in range(beats):
            await connection.send(b"1\r\n\n\r\n", pause=0.1)
        if then_silent:
            await asyncio.sleep(3600)
        end = b'{"last_seq":"1-a","pending":0}\n'
        await connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(end), end))

    return answer


async def test_a_continuous_feed_is_dropped_after_three_silent_heartbeats() -> None:
    async with (
        scripted_server.ScriptedServer(continuous_feed(0, then_silent=True)) as server,
        CouchDB(server.url, retry=False) as client,
    ):
        feed = Database(client, "db").changes(feed="continuous", heartbeat=200)
        events = []
        started = asyncio.get_running_loop().time()
        with pytest.raises(ReadTimeoutError):
            async for event in feed:
                events.append(event.id)
        # 3 heartbeats of 0.2 s, not the client's 120 s of silence
        assert asyncio.get_running_loop().time() - started < 10
    assert events == ["a"]


async def test_heartbeats_keep_a_quiet_continuous_feed_open_past_the_clients_read_limit() -> None:
    client_limits = aiohttp.ClientTimeout(total=0.5, sock_read=0.5)
    async with (
        scripted_server.ScriptedServer(continuous_feed(12, then_silent=False)) as server,
        CouchDB(server.url, retry=False, timeout=client_limits) as client,
    ):
        # 1.2 s of heartbeats: longer than the client's total and sock_read, which a feed
        # waiting for changes does not take (4.0.1's continuous feeds had no limit at all)
        feed = Database(client, "db").changes(feed="continuous", heartbeat=200)
        assert [event.id async for event in feed] == ["a"]
    assert feed.last_seq == "1-a"
