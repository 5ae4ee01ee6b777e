"""Cluster semantics (aiocouch.cluster): 202 Accepted surfaced, ``w`` and ``r`` sent.

A scripted server plays a CouchDB cluster whose write quorum is not met: writes answer
202 Accepted with the headers and body of a 201, and ``_bulk_docs`` items carry
``"accepted": true`` (as measured on a 3-node CouchDB 3.4.3 cluster with nodes down;
pouchdb-server has no cluster). The test server shows that ``w`` and ``r`` change nothing
where there is one copy.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from aiocouch import CouchDB, Database
from aiocouch.cluster import Quorum
from testserver.scripted_server import ReceivedRequest, ScriptedConnection, ScriptedServer
from testserver.scripted_server import http_response as response

ETAG = [("ETag", '"1-a"')]


async def cluster_short_of_copies(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    """Answers like a cluster where fewer copies than ``w`` confirm each write: 202."""
    path = urlsplit(request.target).path
    if request.method == "GET" and path == "/db/doc":
        await connection.send(response(200, b'{"_id":"doc","_rev":"1-a","a":1}', headers=ETAG))
    elif request.method == "HEAD":
        exists = path == "/db/doc"
        await connection.send(response(200, headers=ETAG) if exists else response(404))
    elif request.method == "POST" and path == "/db/_bulk_docs":
        items = [
            {"ok": True, "id": doc["_id"], "rev": "1-b", "accepted": True}
            if doc["_id"] != "taken"
            else {"id": "taken", "error": "conflict", "reason": "Document update conflict."}
            for doc in json.loads(request.body)["docs"]
        ]
        await connection.send(response(202, json.dumps(items).encode()))
    elif request.method == "POST" and path == "/db/_find":
        await connection.send(response(200, b'{"docs":[],"bookmark":"nil"}'))
    elif request.method == "POST" and path == "/db":
        id = json.loads(request.body)["_id"]
        body = json.dumps({"ok": True, "id": id, "rev": "1-c"}).encode()
        await connection.send(response(202, body, headers=[("ETag", '"1-c"')]))
    else:  # PUT, DELETE and COPY of documents and attachments
        rev = "2-d" if request.method in ("DELETE", "COPY") or "/att" in path else "1-a"
        body = json.dumps({"ok": True, "id": path.split("/")[2], "rev": rev}).encode()
        await connection.send(response(202, body, headers=[("ETag", f'"{rev}"')]))


@contextlib.asynccontextmanager
async def cluster(**options: Any) -> AsyncIterator[tuple[ScriptedServer, Database]]:
    async with ScriptedServer(cluster_short_of_copies) as server:
        client = CouchDB(server.url, **options)
        async with client:
            yield server, Database(client, "db")


def query(request: ReceivedRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.target).query)


async def test_a_save_short_of_its_write_quorum_is_accepted_and_kept() -> None:
    async with cluster() as (server, db):
        document = await db.create("new", data={"a": 1})
        response = await document.save(w=3)
    assert response is not None and response.status == 202 and response.accepted
    assert document.rev == "1-a" and not document._dirty_cache
    put = server.requests[-1]
    assert (put.method, query(put)) == ("PUT", {"w": ["3"]})


async def test_a_delete_short_of_its_write_quorum_is_accepted() -> None:
    async with cluster() as (server, db):
        document = await db.get("doc")
        response = await document.delete(w=2)
    assert response.status == 202 and response.accepted
    assert query(server.requests[-1]) == {"rev": ["1-a"], "w": ["2"]}


async def test_bulk_items_accepted_short_of_the_quorum_are_saved_and_listed() -> None:
    async with cluster() as (server, db):
        bulk = db.create_docs(["one", "taken", "two"], w=3)
        async with bulk:
            pass
    assert bulk.ok is not None and bulk.accepted is not None and bulk.error is not None
    assert [doc.id for doc in bulk.ok] == ["one", "two"]
    assert [doc.id for doc in bulk.accepted] == ["one", "two"]
    assert [doc.id for doc in bulk.error] == ["taken"]
    assert all(doc.rev == "1-b" for doc in bulk.ok)
    assert query(server.requests[-1]) == {"w": ["3"]}


async def test_the_client_quorum_goes_with_every_document_write_and_read() -> None:
    async with cluster(quorum=Quorum(w=3, r=2)) as (server, db):
        document = await db.get("doc")  # GET ?r=2
        await db.get("doc", r=1)  # the call's own r
        await document.info()  # HEAD ?r=2
        document["a"] = 2
        assert (await document.save()) is not None  # PUT ?w=3
        await document.attachment("att").save(b"x", "text/plain")  # PUT ?rev&w=3, GET
        await document.copy("copy")  # COPY ?w=3
        await document.delete()  # DELETE ?rev&w=3
        posted = await db.post({"b": 1}, w=1)  # POST ?w=1
        async with db.create_docs(["one"]):  # _bulk_docs ?w=3
            pass
        assert [doc async for doc in db.find({"a": 1})] == []  # body "r": 2
    sent = [(request.method, query(request)) for request in server.requests]
    assert sent == [
        ("GET", {"r": ["2"]}),
        ("GET", {"r": ["1"]}),
        ("HEAD", {"r": ["2"]}),
        ("PUT", {"w": ["3"]}),
        ("PUT", {"rev": ["1-a"], "w": ["3"]}),
        ("GET", {"r": ["2"]}),
        ("COPY", {"w": ["3"]}),
        ("DELETE", {"rev": ["1-a"], "w": ["3"]}),
        ("POST", {"w": ["1"]}),
        ("POST", {"w": ["3"]}),
        ("POST", {}),
    ]
    assert posted.rev == "1-c"
    assert json.loads(server.requests[-1].body)["r"] == 2


async def test_without_a_quorum_nothing_is_added_to_the_requests() -> None:
    async with cluster() as (server, db):
        document = await db.get("doc")
        document["a"] = 2
        await document.save()
        async with db.create_docs(["one"]):
            pass
        assert [doc async for doc in db.find({"a": 1})] == []
    assert [query(request) for request in server.requests] == [{}, {}, {}, {}]
    assert "r" not in json.loads(server.requests[-1].body)


@pytest.mark.parametrize("value", [0, -2, True, 2.0])
async def test_a_bad_quorum_is_refused_before_any_request(value: Any) -> None:
    async with cluster() as (server, db):
        document = await db.create("new", data={"a": 1})
        with pytest.raises(ValueError, match="w must be"):
            await document.save(w=value)
        with pytest.raises(ValueError, match="w must be"):
            await db.post({"a": 1}, w=value)
        with pytest.raises(ValueError, match="w must be"):
            db.create_docs(["x"], w=value)
        with pytest.raises(ValueError, match="r must be"):
            await db.get("doc", r=value)
        requests = len(server.requests)
    assert requests == 1  # only the HEAD of create()


async def test_a_quorum_changes_nothing_where_there_is_one_copy(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    async with CouchDB(server_url, admin_user, admin_password, quorum=Quorum(w=1, r=1)) as client:
        db = Database(client, database.id)
        document = await db.create("doc", data={"a": 1})
        response = await document.save(w=1)
        assert response is not None and response.status == 201 and not response.accepted
        assert (await db.get("doc", r=1))["a"] == 1
        async with db.create_docs(["one", "two"], w=1) as bulk:
            pass
        assert bulk.accepted == [] and bulk.ok is not None and len(bulk.ok) == 2
        assert [doc.id async for doc in db.find({"_id": {"$gt": "o"}}, r=1)] == ["one", "two"]
        deleted = await (await db.get("doc")).delete(w=1)
        assert deleted.status == 200 and not deleted.accepted
