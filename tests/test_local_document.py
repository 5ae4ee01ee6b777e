"""Local documents: CRUD, COPY and the _local_docs listing (aiocouch.local_document).

Against the test server (transcript 4.71-4.74, 5.27, 14.57, 14.58, 14.63-14.66), and on a
scripted server for writes whose answer was lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from aiocouch import ConflictError, CouchDB, Database, Document, LocalDocument, NotFoundError
from aiocouch.local_document import LocalDocsView
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
    in_turn,
)


async def saved_local(database: Database, name: str, **fields: Any) -> LocalDocument:
    document = database.local(name, data=dict(fields))
    await document.save()
    return document


# --- construction ---


@pytest.mark.parametrize("name", ["x", "_local/x"])
def test_a_local_document_is_named_with_or_without_its_prefix(
    database: Database, request_counter: RequestCounter, name: str
) -> None:
    document = database.local(name)
    assert isinstance(document, LocalDocument)
    assert (document.id, document.name) == ("_local/x", "x")
    assert dict(document) == {"_id": "_local/x"}
    assert document.endpoint == f"/{database.id}/_local/x"
    assert LocalDocument(database, "a/b").endpoint == f"/{database.id}/_local/a%2Fb"
    assert request_counter.count == 0


@pytest.mark.parametrize(
    ("name", "error"), [("", ValueError), ("_local/", ValueError), (1, TypeError)]
)
def test_a_local_document_needs_a_name(
    database: Database, name: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        database.local(name)


def test_a_local_document_takes_no_attachments(database: Database) -> None:
    with pytest.raises(ValueError, match="_local documents do not accept attachments"):
        _ = database.local("x").attachment("a.txt").endpoint


# --- reading and writing ---


async def test_save_creates_it_with_revision_0_1_and_fetch_reads_it(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 4.71, 4.72
    document = database.local("x", data={"local": True})
    response = await document.save()
    assert response is not None and response.status == 201
    assert document.rev == "0-1"
    assert request_counter.requests == [("PUT", f"/{database.id}/_local/x")]
    again = database.local("_local/x")
    await again.fetch()
    assert dict(again) == {"_id": "_local/x", "_rev": "0-1", "local": True}


async def test_each_save_counts_the_revision_up_and_a_stale_one_conflicts(
    database: Database,
) -> None:
    document = await saved_local(database, "x", n=1)
    document["n"] = 2
    await document.save()
    assert document.rev == "0-2"
    stale = database.local("x", data={"n": 3, "_rev": "0-1"})
    with pytest.raises(ConflictError):
        await stale.save()
    await stale.fetch(discard_changes=True)
    assert stale["n"] == 2


async def test_info_reads_the_revision_with_a_get(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved_local(database, "x", n=1)
    request_counter.reset()
    info = await database.local("x").info()
    assert info == {"ok": True, "id": "_local/x", "rev": "0-1"}
    assert request_counter.requests == [("GET", f"/{database.id}/_local/x")]


async def test_delete_removes_it(database: Database, request_counter: RequestCounter) -> None:
    # transcript 14.65, 14.66
    document = await saved_local(database, "x", n=1)
    request_counter.reset()
    response = await document.delete()
    assert response.status == 200
    assert request_counter.requests == [("DELETE", f"/{database.id}/_local/x?rev=0-1")]
    assert dict(document) == {"_id": "_local/x"}
    with pytest.raises(NotFoundError):
        await database.local("x").fetch()


async def test_local_documents_are_not_in_all_docs(database: Database) -> None:
    await saved_local(database, "x", n=1)
    await Document(database, "plain", data={"n": 1}).save()
    assert [id async for id in database.akeys()] == ["plain"]


# --- COPY and _local_docs (CouchDB) ---


@pytest.mark.couchdb_only("pouchdb-server answers COPY of a _local document 404 (DIFF 14.63)")
async def test_copy_writes_another_local_document(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 14.63, 14.64
    document = await saved_local(database, "x", local=True)
    request_counter.reset()
    response = await document.copy("x_copy")
    assert response.status == 201
    assert response.etag == "0-1"
    assert request_counter.requests == [("COPY", f"/{database.id}/_local/x")]
    copy = database.local("x_copy")
    await copy.fetch()
    assert dict(copy) == {"_id": "_local/x_copy", "_rev": "0-1", "local": True}


def test_local_docs_is_a_view_of_the_local_documents(database: Database) -> None:
    view = database.local_docs
    assert isinstance(view, LocalDocsView)
    assert view.endpoint == f"/{database.id}/_local_docs"


@pytest.mark.couchdb_only("pouchdb-server has no _local_docs (DIFF 5.27, 14.57, 14.58)")
async def test_local_docs_lists_streams_and_queries_the_local_documents(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 5.27, 14.57, 14.58
    await saved_local(database, "x", local=True)
    await saved_local(database, "y", local=False)
    request_counter.reset()
    listed = await database.local_docs.get()
    assert request_counter.requests == [("GET", f"/{database.id}/_local_docs")]
    assert [(row["id"], row["value"]) for row in listed.rows] == [
        ("_local/x", {"rev": "0-1"}),
        ("_local/y", {"rev": "0-1"}),
    ]
    assert (listed.total_rows, listed.offset) == (None, None)

    ids = [id async for id in database.local_docs.ids(["_local/y", "_local/missing"])]
    assert ids == ["_local/y"]

    documents = [doc async for doc in database.local_docs.docs()]
    assert all(isinstance(doc, LocalDocument) for doc in documents)
    assert [dict(doc) for doc in documents] == [
        {"_id": "_local/x", "_rev": "0-1", "local": True},
        {"_id": "_local/y", "_rev": "0-1", "local": False},
    ]
    documents[1]["local"] = True
    await documents[1].save()
    assert documents[1].rev == "0-2"

    answers = [
        [row async for row in result]
        async for result in database.local_docs.queries(
            [{"keys": ["_local/x"], "include_docs": True}, {"start_key": "_local/y", "limit": 1}]
        )
    ]
    assert answers[0][0]["doc"] == {"_id": "_local/x", "_rev": "0-1", "local": True}
    assert [row["id"] for row in answers[1]] == ["_local/y"]


# --- writes whose answer was lost (scripted server) ---


@pytest.fixture
def database_at(client_factory: Callable[..., CouchDB]) -> Callable[[str], Database]:
    return lambda url: Database(client_factory(url), "db")


async def lost_answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    """Takes the request as applied, then drops the connection without an answer."""
    connection.reset()


def answer(status: int, body: Any) -> Callable[[ReceivedRequest, ScriptedConnection], Any]:
    async def send(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(status, json.dumps(body).encode()))

    return send


CONFLICT = answer(409, {"error": "conflict", "reason": "Document update conflict."})
MISSING = answer(404, {"error": "not_found", "reason": "missing"})


async def test_a_save_whose_answer_was_lost_is_confirmed_by_the_document_now(
    database_at: Callable[[str], Database],
) -> None:
    stored = {"_id": "_local/x", "_rev": "0-2", "n": 2}
    script = in_turn(lost_answer, CONFLICT, answer(200, stored))
    async with ScriptedServer(script) as server:
        document = database_at(server.url).local("x", data={"_rev": "0-1", "n": 2})
        response = await document.save()
        assert response is not None and response.status == 201
        assert document.rev == "0-2"
        assert [(r.method, r.target) for r in server.requests] == [
            ("PUT", "/db/_local/x"),
            ("PUT", "/db/_local/x"),
            ("GET", "/db/_local/x"),
        ]


@pytest.mark.parametrize(
    "now",
    [
        {"_id": "_local/x", "_rev": "0-2", "n": 3},  # someone else's write
        {"_id": "_local/x", "_rev": "0-3", "n": 2},  # written on after ours, or not ours
    ],
)
async def test_a_conflict_stands_if_the_document_now_is_not_the_one_sent(
    database_at: Callable[[str], Database], now: dict[str, Any]
) -> None:
    async with ScriptedServer(in_turn(lost_answer, CONFLICT, answer(200, now))) as server:
        document = database_at(server.url).local("x", data={"_rev": "0-1", "n": 2})
        with pytest.raises(ConflictError):
            await document.save()
        assert document.rev == "0-1"


async def test_a_delete_whose_answer_was_lost_is_confirmed_by_the_document_being_gone(
    database_at: Callable[[str], Database],
) -> None:
    async with ScriptedServer(in_turn(lost_answer, MISSING, MISSING)) as server:
        document = database_at(server.url).local("x", data={"_rev": "0-1", "n": 2})
        response = await document.delete(discard_changes=True)
        assert response.status == 200
        assert [(r.method, r.target) for r in server.requests] == [
            ("DELETE", "/db/_local/x?rev=0-1"),
            ("DELETE", "/db/_local/x?rev=0-1"),
            ("HEAD", "/db/_local/x"),
        ]


async def test_a_delete_answered_404_at_once_raises(database_at: Callable[[str], Database]) -> None:
    async with ScriptedServer(MISSING) as server:
        document = database_at(server.url).local("x", data={"_rev": "0-1"})
        with pytest.raises(NotFoundError):
            await document.delete(discard_changes=True)
        assert len(server.requests) == 1
