"""Replication (aiocouch.replication): POST /_replicate, _replicator documents, the scheduler.

What pouchdb-server does honestly (one-shot replications through ``POST /_replicate`` and
``_replicator`` documents, DIFF.md 11.1, 11.5, 11.7, 11.10) is tested on the test server.
pouchdb-server has no ``_scheduler``, gives no id for a continuous replication and
ignores its cancel (DIFF summary 15), and it exits when the ``_replicator`` document of a
running replication is deleted (14.103): continuous replications are never sent to it.
Those tests are ``couchdb_only``, written from the CouchDB 3.4.3 transcript, and the same
exchanges are played at the protocol level by a :class:`ScriptedServer` answering what
the transcript shows, so that CI exercises them too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiocouch import (
    CouchDB,
    Database,
    JWTAuth,
    NotFoundError,
    ProxyAuth,
    RemoteResponseError,
    ReplicationEndpoint,
    ReplicationError,
    ReplicationProgress,
    SchedulerDocument,
    SchedulerJob,
    SessionAuth,
)
from aiocouch.exception import InvalidResponseError
from testserver.exposed_text import exposed_text
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)

WAIT_LIMIT = 60.0
SECRET = f"s3cr3t{uuid.uuid4().hex}"
USER = f"repl_user_{uuid.uuid4().hex[:8]}"
"""Never the admin's name with a wrong password: CouchDB would lock the admin out."""
ODD_SECRET = f"p@ss:w/rd+%{uuid.uuid4().hex[:8]} x"
"""A password that would need percent-encoding in a URL."""
# pouchdb-server 4.2.0 exits when a replication fails (an unreachable or missing endpoint,
# refused credentials: an unhandled rejection, measured here): every replication sent to
# it succeeds; failures are played by the scripted server or are couchdb_only.


# --- helpers ---


def assert_hidden(secret: str, text: str) -> None:
    """Neither ``secret`` nor a basic token of it shows, nor (an excerpt of a body cuts
    text short) its first eight characters."""
    for user in (USER, "admin"):
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        assert token[:8] not in text
    assert secret[:8] not in text


def with_credentials(server_url: str, user: str, password: str, db: str) -> str:
    scheme, _, rest = server_url.partition("://")
    return f"{scheme}://{user}:{password}@{rest}/{db}"


@pytest.fixture
async def scratch_names(couchdb: CouchDB) -> AsyncIterator[Callable[[], str]]:
    """Makes unique database names; the databases are deleted after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"aiocouch_repl_{uuid.uuid4().hex}")
        return made[-1]

    yield make
    for name in made:
        with contextlib.suppress(Exception):
            await Database(couchdb, name).delete()


async def fill(database: Database, count: int) -> dict[str, int]:
    """Writes ``count`` documents ``doc-<i>`` holding ``{"n": i}``."""
    async with database.create_docs([f"doc-{i}" for i in range(count)]) as bulk:
        async for document in bulk:
            document["n"] = int(document.id.partition("-")[2])
    assert bulk.ok is not None and len(bulk.ok) == count
    return {f"doc-{i}": i for i in range(count)}


async def contents(couchdb: CouchDB, name: str, ids: list[str]) -> dict[str, int]:
    """The ``n`` of each document ``ids`` of database ``name``, read one by one (a read
    of each document, not of a view, so it holds on a cluster too)."""
    database = Database(couchdb, name)
    found: dict[str, int] = {}
    for doc_id in ids:
        with contextlib.suppress(NotFoundError):
            found[doc_id] = (await database.get(doc_id))["n"]
    return found


# --- one-shot replication on the test server ---


async def test_one_shot_replication_by_database_name_copies_every_document(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    written = await fill(database, 7)
    target = scratch_names()

    replication = await couchdb.replicate(database.id, target, create_target=True)

    assert replication.result is not None
    assert replication.result.ok
    assert replication.result.docs_written == 7
    assert replication.status == 200
    assert replication.id is None  # a one-shot replication has ended: nothing to cancel
    assert await contents(couchdb, target, list(written)) == written


async def test_one_shot_replication_of_database_objects_and_urls(
    couchdb: CouchDB,
    database: Database,
    scratch_names: Callable[[], str],
    server_url: str,
    admin_user: str,
    admin_password: str,
) -> None:
    written = await fill(database, 3)
    by_object = await couchdb.create(scratch_names())
    by_url = scratch_names()

    first = await couchdb.replications.replicate(database, by_object)
    second = await couchdb.replicate(
        with_credentials(server_url, admin_user, admin_password, by_object.id),
        ReplicationEndpoint(f"{server_url}/{by_url}", user=admin_user, password=admin_password),
        create_target=True,
    )

    assert first.result is not None and first.result.docs_written == 3
    assert second.result is not None and second.result.docs_written == 3
    assert await contents(couchdb, by_url, list(written)) == written


async def test_replicating_again_copies_nothing_new(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 4)
    target = scratch_names()
    await couchdb.replicate(database.id, target, create_target=True)

    again = await couchdb.replicate(database.id, target)

    assert again.result is not None
    assert again.result.docs_written == 0


@pytest.mark.couchdb_only(
    "pouchdb-server's POST /_replicate ignores doc_ids and copies every document "
    "(measured on pouchdb-server 4.2.0; the transcript has no such block: the body sent is "
    "checked by test_options_go_into_the_request_as_given)"
)
async def test_doc_ids_choose_what_is_replicated(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    written = await fill(database, 5)
    target = scratch_names()

    await couchdb.replicate(database.id, target, create_target=True, doc_ids=["doc-1", "doc-3"])

    assert await contents(couchdb, target, list(written)) == {"doc-1": 1, "doc-3": 3}


# --- _replicator documents on the test server (one-shot: safe to delete once completed) ---


async def test_replication_document_progress_ends_completed_with_the_documents_written(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    written = await fill(database, 6)
    target = scratch_names()
    job = await couchdb.replications.create(database.id, target, create_target=True)

    seen: list[ReplicationProgress] = []

    async def follow() -> None:
        async for progress in job.progress(max_interval=0.5):
            seen.append(progress)

    await asyncio.wait_for(follow(), WAIT_LIMIT)

    assert seen[-1].state == "completed"
    assert seen[-1].finished
    assert seen[-1].docs_written == 6
    assert all(progress.state != "completed" for progress in seen[:-1])
    assert await contents(couchdb, target, list(written)) == written
    stored = await job.fetch()
    assert stored["_id"] == job.id
    await job.cancel()
    with pytest.raises(NotFoundError):
        await job.fetch()


async def test_replication_document_wait_returns_the_final_progress(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 2)
    doc_id = f"aiocouch_job_{uuid.uuid4().hex}"
    job = await couchdb.replications.create(
        database, scratch_names(), id=doc_id, create_target=True
    )
    try:
        final = await asyncio.wait_for(job.wait(max_interval=0.5), WAIT_LIMIT)
        assert final.state == "completed"
        assert final.docs_written == 2
        same = couchdb.replications.document(doc_id)
        assert (await asyncio.wait_for(same.wait(), WAIT_LIMIT)).state == "completed"
    finally:
        await job.cancel()


async def test_a_replication_document_with_an_existing_id_is_refused(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    job = await couchdb.replications.create(database.id, scratch_names(), create_target=True)
    try:
        await asyncio.wait_for(job.wait(max_interval=0.5), WAIT_LIMIT)
        with pytest.raises(KeyError):  # ConflictError
            await couchdb.replications.create(database.id, scratch_names(), id=job.id)
    finally:
        await job.cancel()


async def test_cancelling_a_gone_replication_document_raises_not_found(
    couchdb: CouchDB,
) -> None:
    with pytest.raises(NotFoundError):
        await couchdb.replications.document(f"missing_{uuid.uuid4().hex}").cancel()


# --- bad input: refused before any request ---


@pytest.mark.parametrize(
    ("source", "target", "options", "error"),
    [
        ("Bad Name", "target", {}, ValueError),
        ("source", "_underscore", {}, ValueError),
        ("ftp://host/db", "target", {}, ValueError),
        ("http:///db", "target", {}, ValueError),
        ("http://host/d b", "target", {}, ValueError),
        ("http://host/db\r\nX: y", "target", {}, ValueError),
        (42, "target", {}, TypeError),
        ({"headers": {}}, "target", {}, ValueError),
        ("source", "target", {"continuous": "yes"}, TypeError),
        ("source", "target", {"doc_ids": "doc-1"}, TypeError),
        ("source", "target", {"selector": ["x"]}, TypeError),
        ("source", "target", {"filter": ""}, TypeError),
        ("source", "target", {"cancel": True}, ValueError),
        ("source", "target", {"replication_id": "x"}, ValueError),
    ],
)
async def test_invalid_replications_are_refused_before_any_request(
    couchdb: CouchDB,
    request_counter: RequestCounter,
    source: Any,
    target: Any,
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    request_counter.reset()
    with pytest.raises(error):
        await couchdb.replicate(source, target, **options)
    with pytest.raises(error):
        await couchdb.replications.create(source, target, **options)
    assert request_counter.count == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.replications.document("job", replicator_db="not_a_replicator"),
        lambda c: c.replications.document("_design/job"),
        lambda c: c.replications.document(""),
        lambda c: c.replications.create("a", "b", replicator_db="mydb"),
        lambda c: c.replications.status("job", replicator_db="_users"),
        lambda c: anext_of(c.replications.docs("query_db")),  # transcript 14.102
        lambda c: anext_of(c.replications.document("job").progress(interval=0)),
        lambda c: anext_of(c.replications.document("job").progress(interval=2, max_interval=1)),
    ],
)
async def test_invalid_replication_documents_are_refused_before_any_request(
    couchdb: CouchDB, request_counter: RequestCounter, call: Callable[[CouchDB], Any]
) -> None:
    request_counter.reset()
    with pytest.raises(ValueError):
        result = call(couchdb)
        if isinstance(result, Awaitable):
            await result
    assert request_counter.count == 0


async def anext_of(iterator: AsyncIterator[Any]) -> Any:
    return await iterator.__anext__()


async def test_a_client_with_changing_credentials_must_name_them_for_the_server(
    server_url: str,
) -> None:
    async with CouchDB(server_url, auth=JWTAuth(lambda: "token")) as client:
        with pytest.raises(ValueError, match="ReplicationEndpoint"):
            await client.replicate("source", "target")


# --- credentials never show ---


async def test_reprs_never_show_credentials(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str], server_url: str
) -> None:
    endpoint = ReplicationEndpoint(f"{server_url}/{scratch_names()}", user=USER, password=SECRET)
    odd = ReplicationEndpoint(f"{server_url}/x", headers={"Authorization": f"Bearer {SECRET}"})
    by_url = ReplicationEndpoint(f"http://{USER}:{SECRET}@127.0.0.1:1/db")
    replication = await couchdb.replicate(database.id, scratch_names(), create_target=True)
    objects = [
        endpoint,
        odd,
        by_url,
        replication,
        replication.result,
        couchdb.replications,
        couchdb.replications.document("job"),
    ]
    shown = exposed_text(*objects)
    assert_hidden(SECRET, shown)
    assert "127.0.0.1:1/db" in repr(by_url)


async def test_log_records_never_show_credentials(
    caplog: pytest.LogCaptureFixture,
    couchdb: CouchDB,
    database: Database,
    server_url: str,
    admin_user: str,
    admin_password: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    await fill(database, 1)
    target = await couchdb.create(f"aiocouch_repl_{uuid.uuid4().hex}")
    try:
        source = ReplicationEndpoint(
            f"{server_url}/{database.id}", user=admin_user, password=admin_password
        )
        await couchdb.replicate(source, target)
        job = await couchdb.replications.create(source, target)
        await asyncio.wait_for(job.wait(max_interval=0.5), WAIT_LIMIT)
        await job.cancel()
    finally:
        await target.delete()
    # A failed attempt is logged (then repeated): the scripted server answers 503 once.
    async with replaying(answers_with(503, b'{"error":"unavailable"}'), ok_one_shot) as (
        server,
        client,
    ):
        await client.replicate(f"http://{USER}:{SECRET}@127.0.0.1:1/a", "b")
    assert server.count("POST", "/_replicate") == 2
    assert any("POST /_replicate failed" in record.getMessage() for record in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    assert_hidden(SECRET, logged)
    assert_hidden(admin_password, logged)


# --- the protocol, as CouchDB answers (transcript blocks named), on a scripted server ---

Handler = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]

ONE_SHOT_ANSWER = {  # transcript 11.1
    "ok": True,
    "session_id": "b6d0c1c8f0a4e1d5",
    "source_last_seq": "10-g1AAAA",
    "replication_id_version": 4,
    "history": [
        {
            "session_id": "b6d0c1c8f0a4e1d5",
            "start_last_seq": 0,
            "end_last_seq": "10-g1AAAA",
            "recorded_seq": "10-g1AAAA",
            "missing_checked": 9,
            "missing_found": 9,
            "docs_read": 9,
            "docs_written": 9,
            "doc_write_failures": 0,
            "bulk_get_docs": 6,
            "bulk_get_attempts": 6,
        },
        {"session_id": "an-earlier-run", "docs_read": 40, "docs_written": 40},
    ],
}
JOB_ID = "0a81b645497e6270611ec3419767a584+continuous+create_target"


def json_answer(status: int, body: Any) -> bytes:
    return http_response(status, json.dumps(body).encode(), reason="Status")


def answers_with(status: int, body: bytes) -> Handler:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(status, body))

    return handler


async def ok_one_shot(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    await connection.send(json_answer(200, ONE_SHOT_ANSWER))


@contextlib.asynccontextmanager
async def replaying(
    *handlers: Handler, password: str = SECRET
) -> AsyncIterator[tuple[ScriptedServer, CouchDB]]:
    """A ScriptedServer giving the n-th request to the n-th handler (the last repeats),
    and a client of it logged in as ``admin`` with ``password``."""
    arrived = 0

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        nonlocal arrived
        arrived += 1
        await handlers[min(arrived, len(handlers)) - 1](request, connection)

    async with ScriptedServer(handler) as server, CouchDB(server.url, "admin", password) as c:
        yield server, c


def body_of(request: ReceivedRequest) -> Any:
    return json.loads(request.body)


async def test_one_shot_counts_come_from_this_runs_history_entry() -> None:
    async with replaying(ok_one_shot) as (server, client):
        replication = await client.replicate("source", "target", create_target=True)

    assert replication.result is not None
    assert (replication.result.docs_read, replication.result.docs_written) == (9, 9)
    assert replication.result.session_id == "b6d0c1c8f0a4e1d5"
    assert replication.result.source_last_seq == "10-g1AAAA"
    sent = body_of(server.requests[0])
    assert sent == {
        "source": f"http://admin:{SECRET}@{server.url[7:]}/source",
        "target": f"http://admin:{SECRET}@{server.url[7:]}/target",
        "create_target": True,
    }


async def test_options_go_into_the_request_as_given() -> None:
    created = answers_with(201, b'{"ok":true,"id":"job","rev":"1-a"}')
    async with replaying(created) as (server, client):
        await client.replications.create(
            "source",
            "target",
            id="job",
            doc_ids=["a", "b"],
            selector={"kind": "fruit"},
            filter="ddoc/by_kind",
            query_params={"kind": "fruit"},
            since_seq="10-g1AAAA",
            winning_revs_only=True,
        )
    sent = body_of(server.requests[0])
    assert server.requests[0].method == "PUT"
    assert {key: value for key, value in sent.items() if key not in ("source", "target")} == {
        "_id": "job",
        "doc_ids": ["a", "b"],
        "selector": {"kind": "fruit"},
        "filter": "ddoc/by_kind",
        "query_params": {"kind": "fruit"},
        "since_seq": "10-g1AAAA",
        "winning_revs_only": True,
    }


async def test_no_changes_means_nothing_was_copied_whatever_the_history_says() -> None:
    answer = {**ONE_SHOT_ANSWER, "no_changes": True, "session_id": "another"}
    async with replaying(answers_with(200, json.dumps(answer).encode())) as (_, client):
        replication = await client.replicate("source", "target")
    assert replication.result is not None
    assert replication.result.no_changes
    assert replication.result.docs_written == 0


async def test_credentials_that_need_encoding_go_in_a_header_not_the_url() -> None:
    async with replaying(ok_one_shot, password=ODD_SECRET) as (server, client):
        await client.replicate("source", "target")

    sent = body_of(server.requests[0])
    for role in ("source", "target"):
        assert sent[role]["url"] == f"{server.url}/{role}"
        kind, _, token = sent[role]["headers"]["Authorization"].partition(" ")
        assert kind == "Basic"
        assert base64.b64decode(token).decode() == f"admin:{ODD_SECRET}"


async def test_each_kind_of_client_credentials_reaches_the_replicator() -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if request.target == "/_session":  # a SessionAuth login (transcript 2.3)
            cookie = ("Set-Cookie", "AuthSession=c00k1e; Version=1; Max-Age=600; Path=/")
            await connection.send(http_response(200, b'{"ok":true}', headers=[cookie]))
        else:
            await ok_one_shot(request, connection)

    async with ScriptedServer(handler) as server:
        clients = {
            "session": CouchDB(server.url, auth=SessionAuth(USER, SECRET)),
            "cookie": CouchDB(server.url, cookie="c00k1e"),
            "proxy": CouchDB(server.url, auth=ProxyAuth(USER, ["r"], token="t0k3n")),
            "other server": CouchDB(server.url.replace("127.0.0.1", "localhost"), USER, SECRET),
        }
        sent = {}
        for kind, client in clients.items():
            async with client:
                source = Database(clients["other server"], "source")
                await client.replicate(source, "target")
                sent[kind] = body_of(server.requests[-1])

    here, other = server.url[7:], server.url[7:].replace("127.0.0.1", "localhost")
    assert sent["session"]["target"] == f"http://{USER}:{SECRET}@{here}/target"
    assert sent["cookie"]["target"] == {
        "url": f"http://{here}/target",
        "headers": {"Cookie": "AuthSession=c00k1e"},
    }
    assert sent["proxy"]["target"]["headers"]["X-Auth-CouchDB-Token"] == "t0k3n"
    assert sent["proxy"]["target"]["headers"]["X-Auth-CouchDB-UserName"] == USER
    # A Database brings its own client's server and credentials.
    for kind in clients:
        assert sent[kind]["source"] == f"http://{USER}:{SECRET}@{other}/source"


async def test_a_server_echoing_credentials_in_its_error_never_shows_them() -> None:
    async def echo(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        reason = f"could not open {body_of(request)['source']}"
        await connection.send(json_answer(500, {"error": "db_not_found", "reason": reason}))

    source = f"http://{USER}:{SECRET}@127.0.0.1:1/missing"
    async with replaying(echo) as (_, client):
        with pytest.raises(RemoteResponseError) as raised:
            await client.replicate(source, "target")
    assert raised.value.status == 500
    assert "could not open http://***@127.0.0.1:1/missing" in str(raised.value)
    assert_hidden(SECRET, exposed_text(raised.value))


async def test_an_invalid_answer_echoing_credentials_never_shows_them() -> None:
    async def html_echo(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        page = b"<pre>" + request.body + b"</pre>"
        await connection.send(http_response(200, page, content_type="text/html"))

    async with replaying(html_echo) as (_, client):
        with pytest.raises(InvalidResponseError) as raised:
            await client.replicate("source", "target")
    assert_hidden(SECRET, exposed_text(raised.value))


async def test_continuous_replication_is_followed_and_cancelled_by_its_id() -> None:
    """Transcript 14.94 (202 with _local_id), 14.95 (the job), 14.97/14.98 (cancel)."""
    job = {
        "database": None,
        "id": JOB_ID,
        "source": "http://127.0.0.1:5985/source/",
        "target": "http://127.0.0.1:5985/target/",
        "user": "admin",
        "doc_id": None,
        "info": {"docs_read": 11, "docs_written": 11, "changes_pending": 0},
        "history": [{"timestamp": "t2", "type": "started"}, {"timestamp": "t1", "type": "added"}],
        "node": "couchdb@127.0.0.1",
        "start_time": "t1",
    }
    starting = {**job, "info": None, "history": [{"timestamp": "t1", "type": "added"}]}

    def jobs(*listed: Any) -> Handler:
        body = {"total_rows": len(listed), "offset": 0, "jobs": list(listed)}
        return answers_with(200, json.dumps(body).encode())

    async with replaying(
        answers_with(202, json.dumps({"ok": True, "_local_id": JOB_ID}).encode()),
        jobs(),
        jobs(starting),
        jobs(job),
        answers_with(200, json.dumps({"ok": True, "_local_id": JOB_ID}).encode()),
        answers_with(404, b'{"error":"not_found","reason":"missing"}'),
    ) as (server, client):
        replication = await client.replicate("source", "target", continuous=True)
        assert (replication.status, replication.id) == (202, JOB_ID)
        final = await asyncio.wait_for(replication.wait(interval=0.01), WAIT_LIMIT)
        await replication.cancel()
        seen = [p async for p in replication.progress(interval=0.01)]
        with pytest.raises(NotFoundError):
            await replication.cancel()

    assert final is not None and final.caught_up and final.docs_written == 11
    assert seen == []
    assert body_of(server.requests[0])["continuous"] is True
    assert body_of(server.requests[4]) == {"replication_id": JOB_ID, "cancel": True}
    assert [r.target for r in server.requests[1:4]] == ["/_scheduler/jobs"] * 3
    assert len(server.requests) == 6  # nothing polled once cancelled


async def test_scheduler_jobs_are_typed_and_show_no_credentials() -> None:
    """Transcript 14.95."""
    row = {
        "database": "_replicator",
        "id": JOB_ID,
        "source": f"http://{USER}:{SECRET}@host/source/",
        "target": "http://host/target/",
        "doc_id": "job2",
        "info": {"docs_written": 3, "changes_pending": 2},
        "history": [{"type": "crashed", "reason": "db_not_found"}, {"type": "added"}],
    }
    listing = {"total_rows": 1, "offset": 0, "jobs": [row]}
    async with replaying(answers_with(200, json.dumps(listing).encode())) as (server, client):
        jobs = [job async for job in client.replications.jobs(limit=5)]
    assert server.requests[0].target == "/_scheduler/jobs?limit=5"
    (job,) = jobs
    assert isinstance(job, SchedulerJob)
    assert (job.id, job.doc_id, job.database) == (JOB_ID, "job2", "_replicator")
    assert job.source == "http://host/source/"
    assert job.progress == ReplicationProgress(
        state="crashing", docs_written=3, changes_pending=2, error="db_not_found"
    )
    assert_hidden(SECRET, exposed_text(job))


async def test_replication_document_progress_as_couchdb_reports_it() -> None:
    """Transcript 11.5 (PUT), 11.8 (not yet known: 404), 14.101 (running), 11.6
    (completed), 11.10 (DELETE)."""
    known = {
        "database": "_replicator",
        "doc_id": "job",
        "id": None,
        "source": "http://127.0.0.1:5985/source/",
        "target": "http://127.0.0.1:5985/target/",
        "state": "running",
        "error_count": 0,
        "info": None,
    }
    completed = {
        **known,
        "state": "completed",
        "info": {"docs_read": 9, "docs_written": 9, "changes_pending": None},
    }
    async with replaying(
        answers_with(201, b'{"ok":true,"id":"job","rev":"1-a"}'),
        answers_with(404, b'{"error":"not_found","reason":"missing"}'),
        answers_with(200, json.dumps({"_id": "job", "_rev": "1-a"}).encode()),
        answers_with(200, json.dumps(known).encode()),
        answers_with(200, json.dumps(completed).encode()),
        answers_with(200, json.dumps({"_id": "job", "_rev": "2-b"}).encode()),
        answers_with(200, b'{"ok":true,"id":"job","rev":"3-c"}'),
    ) as (server, client):
        job = await client.replications.create("source", "target", id="job", create_target=True)
        seen = [p async for p in job.progress(interval=0.01)]
        await job.cancel()

    assert [p.state for p in seen] == [None, "running", "completed"]
    assert seen[-1].docs_written == 9
    assert [(r.method, r.target) for r in server.requests] == [
        ("PUT", "/_replicator/job"),
        ("GET", "/_scheduler/docs/_replicator/job"),
        ("GET", "/_replicator/job"),
        ("GET", "/_scheduler/docs/_replicator/job"),
        ("GET", "/_scheduler/docs/_replicator/job"),
        ("GET", "/_replicator/job"),
        ("DELETE", "/_replicator/job?rev=2-b"),
    ]
    assert body_of(server.requests[0])["create_target"] is True


async def test_a_failed_replication_document_raises_replication_error() -> None:
    failed = {"doc_id": "job", "state": "failed", "info": {"error": "Invalid filter"}}
    async with replaying(answers_with(200, json.dumps(failed).encode())) as (_, client):
        with pytest.raises(ReplicationError, match="Invalid filter") as raised:
            await client.replications.document("job").wait()
    assert raised.value.progress.state == "failed"


async def test_scheduler_docs_are_typed() -> None:
    """Transcript 14.100 (docs of one replicator database) and 1.9 (all)."""
    row = {
        "database": "other/_replicator",
        "doc_id": "job2",
        "id": "abc+continuous",
        "source": "http://127.0.0.1:5985/source/",
        "target": "http://127.0.0.1:5985/target/",
        "state": "running",
        "info": None,
        "error_count": 0,
    }
    listing = answers_with(200, json.dumps({"total_rows": 1, "offset": 0, "docs": [row]}).encode())
    single = answers_with(200, json.dumps(row).encode())
    async with replaying(listing, listing, single) as (server, client):
        one = [d async for d in client.replications.docs("other/_replicator")]
        every = [d async for d in client.replications.docs(limit=1)]
        status = await client.replications.status("job2", replicator_db="other/_replicator")
    assert [r.target for r in server.requests] == [
        "/_scheduler/docs/other%2F_replicator",
        "/_scheduler/docs?limit=1",
        "/_scheduler/docs/other%2F_replicator/job2",
    ]
    assert one == every
    assert isinstance(one[0], SchedulerDocument)
    assert (one[0].doc_id, one[0].id, one[0].state) == ("job2", "abc+continuous", "running")
    assert status.progress == ReplicationProgress(state="running")


# --- CouchDB only: the scheduler, continuous replications ---


@pytest.mark.couchdb_only(
    "pouchdb-server gives no id for a continuous POST /_replicate and ignores cancel "
    "(transcript 14.94-14.98)"
)
async def test_continuous_replication_runs_until_cancelled(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    written = await fill(database, 5)
    target = scratch_names()
    replication = await couchdb.replicate(database.id, target, continuous=True, create_target=True)
    try:
        assert replication.status == 202
        assert replication.id is not None
        caught_up = await asyncio.wait_for(replication.wait(max_interval=0.5), WAIT_LIMIT)
        assert caught_up is not None and caught_up.docs_written == 5
        assert replication.id in [job.id async for job in couchdb.replications.jobs()]
        await database.post({"_id": "later", "n": 99})
        late = await asyncio.wait_for(_until_present(couchdb, target, "later"), WAIT_LIMIT)
        assert late == 99
    finally:
        await replication.cancel()
    assert replication.id not in [job.id async for job in couchdb.replications.jobs()]
    with pytest.raises(NotFoundError):
        await replication.cancel()
    assert await contents(couchdb, target, list(written)) == written


async def _until_present(couchdb: CouchDB, name: str, doc_id: str) -> int:
    while True:
        found = await contents(couchdb, name, [doc_id])
        if found:
            return found[doc_id]
        await asyncio.sleep(0.2)


@pytest.mark.couchdb_only(
    "pouchdb-server has no _scheduler and exits when the _replicator document of a "
    "running replication is deleted (transcript 14.99-14.103)"
)
async def test_continuous_replication_document_status_and_cancel(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 3)
    job = await couchdb.replications.create(
        database.id, scratch_names(), continuous=True, create_target=True
    )
    cancelled = False
    try:
        caught_up = await asyncio.wait_for(job.wait(max_interval=0.5), WAIT_LIMIT)
        assert caught_up.state == "running"
        assert caught_up.docs_written == 3
        status = await job.status()
        assert (status.doc_id, status.database, status.state) == (job.id, "_replicator", "running")
        assert status.id is not None
        listed = [d.doc_id async for d in couchdb.replications.docs("_replicator")]
        assert job.id in listed
        assert job.id in [d.doc_id async for d in couchdb.replications.docs()]
        await job.cancel()
        cancelled = True
        with pytest.raises(NotFoundError):
            await job.fetch()
    finally:
        if not cancelled:
            await job.cancel()


@pytest.mark.couchdb_only("pouchdb-server has no _scheduler (transcript 11.8)")
async def test_scheduler_status_of_a_missing_document_is_not_found(couchdb: CouchDB) -> None:
    with pytest.raises(NotFoundError):
        await couchdb.replications.status(f"missing_{uuid.uuid4().hex}")


@pytest.mark.couchdb_only("pouchdb-server has no _scheduler (transcript 1.8, 1.9, 11.6)")
async def test_the_scheduler_lists_a_completed_replication_document(
    couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 4)
    job = await couchdb.replications.create(database.id, scratch_names(), create_target=True)
    try:
        await asyncio.wait_for(job.wait(max_interval=0.5), WAIT_LIMIT)
        status = await job.status()
        listed = {doc.doc_id: doc async for doc in couchdb.replications.docs("_replicator")}
        everywhere = [doc.doc_id async for doc in couchdb.replications.docs()]
        jobs = [scheduled async for scheduled in couchdb.replications.jobs()]
    finally:
        await job.cancel()
    assert (status.state, status.database, status.progress.docs_written) == (
        "completed",
        "_replicator",
        4,
    )
    assert listed[job.id].state == "completed"
    assert job.id in everywhere
    assert all(isinstance(scheduled, SchedulerJob) for scheduled in jobs)


@pytest.mark.couchdb_only(
    "pouchdb-server creates a missing source instead of failing (transcript 11.3), and exits "
    "when a replication fails (measured on pouchdb-server 4.2.0)"
)
async def test_a_missing_source_raises_db_not_found_without_the_credentials(
    couchdb: CouchDB,
    scratch_names: Callable[[], str],
    server_url: str,
    admin_user: str,
    admin_password: str,
) -> None:
    source = with_credentials(server_url, admin_user, admin_password, scratch_names())
    with pytest.raises(RemoteResponseError) as raised:
        await couchdb.replicate(source, scratch_names())
    assert raised.value.status == 500
    assert raised.value.error == "db_not_found"
    assert_hidden(admin_password, exposed_text(raised.value))
