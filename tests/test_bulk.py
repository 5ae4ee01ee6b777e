"""Bulk operations (API.md section 11): BulkOperation, create_docs, update_docs, batches."""

from __future__ import annotations

import json
import warnings
from typing import Any, Callable

import aiohttp
import pytest

from aiocouch import (
    BadRequestError,
    CouchDB,
    Database,
    Document,
    InvalidResponseError,
    NotFoundError,
)
from aiocouch.bulk import BulkCreateOperation, BulkOperation, BulkUpdateOperation
from aiocouch.exception import RemoteResponseError
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)


class Boom(Exception):
    """Raised inside a bulk block on purpose."""


def bulk_posts(counter: RequestCounter, database: Database) -> int:
    return counter.requests.count(("POST", f"/{database.id}/_bulk_docs"))


async def save(database: Database, doc_id: str, **data: Any) -> Document:
    doc = Document(database, doc_id, data=data)
    await doc.save()
    return doc


async def server_copy(database: Database, doc_id: str) -> dict[str, Any]:
    return dict((await database.get(doc_id)).items())


def ids(docs: list[Document] | None) -> list[str]:
    assert docs is not None
    return [doc.id for doc in docs]


# --- collecting documents ---


async def test_create_and_append_with_a_duplicate_id_raise_value_error(database: Database) -> None:
    async with BulkOperation(database) as bulk:
        bulk.create("a")
        with pytest.raises(ValueError):
            bulk.create("a")
        with pytest.raises(ValueError):
            bulk.append(Document(database, "a"))
        other = bulk.append(Document(database, "b"))
        assert other.id == "b"
        with pytest.raises(ValueError):
            bulk.create("b")
    assert ids(bulk.ok) == ["a", "b"]


async def test_duplicate_check_on_twenty_thousand_documents(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(Boom):
        async with BulkOperation(database) as bulk:
            for n in range(20_000):
                bulk.create(f"doc{n:05}")
            for n in range(20_000):
                bulk.append(Document(database, f"other{n:05}"))
            with pytest.raises(ValueError):
                bulk.create("doc19999")
            with pytest.raises(ValueError):
                bulk.append(Document(database, "other00000"))
            assert len(bulk._docs) == 40_000
            raise Boom
    assert request_counter.count == 0


async def test_create_returns_a_local_document_with_data(database: Database) -> None:
    async with BulkOperation(database=database) as bulk:
        doc = bulk.create("a", data={"v": 1})
        assert isinstance(doc, Document)
        assert doc["v"] == 1
        assert doc["_id"] == "a"
        assert doc.rev is None
    assert doc.rev is not None
    assert doc.rev.startswith("1-")
    assert (await server_copy(database, "a"))["v"] == 1


async def test_docs_list_order_and_async_iteration(database: Database) -> None:
    await save(database, "u1")
    await save(database, "u2")
    async with database.update_docs(["u2", "u1"]) as bulk:
        bulk.create("c1")
        bulk.append(Document(database, "a1"))
        bulk.create("c0")
        assert isinstance(bulk._docs, list)
        assert [doc.id for doc in bulk._docs] == ["u2", "u1", "c1", "a1", "c0"]
        assert [doc.id async for doc in bulk] == ["u2", "u1", "c1", "a1", "c0"]


async def test_empty_operation_sends_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    async with BulkOperation(database) as bulk:
        assert bulk._docs == []
    assert bulk.response == []
    assert bulk.ok == []
    assert bulk.error == []
    assert request_counter.count == 0


# --- results ---


async def test_ok_error_and_response_after_exit(
    database: Database, request_counter: RequestCounter
) -> None:
    async with BulkOperation(database) as bulk:
        assert bulk.response is None
        assert bulk.ok is None
        assert bulk.error is None
        created = [bulk.create(f"d{n}", data={"n": n}) for n in range(3)]
    assert request_counter.requests == [("POST", f"/{database.id}/_bulk_docs")]
    assert bulk.ok == created
    assert all(a is b for a, b in zip(bulk.ok, created))
    assert bulk.error == []
    assert bulk.response is not None
    assert sorted(item["id"] for item in bulk.response) == ["d0", "d1", "d2"]
    assert all(item["ok"] is True for item in bulk.response)
    for doc in created:
        server = await server_copy(database, doc.id)
        assert doc.rev == server["_rev"]
        assert server["n"] == doc["n"]


async def test_saved_documents_are_clean_afterwards(
    database: Database, request_counter: RequestCounter
) -> None:
    async with database.create_docs(["a", "b"]) as bulk:
        pass
    request_counter.reset()
    for doc in bulk.ok or []:
        assert await doc.save() is None
    assert request_counter.count == 0
    assert ids(bulk.ok) == ["a", "b"]


async def test_documents_with_big_integers_are_clean_after_a_bulk_save(
    database: Database, request_counter: RequestCounter
) -> None:
    async with database.create_docs() as bulk:
        bulk.create("plain", data={"n": 1})
        bulk.create("big", data={"n": 2**70})  # (encoded without orjson: beyond 64 bits)
    assert ids(bulk.ok) == ["plain", "big"]
    request_counter.reset()
    for doc in bulk.ok:
        assert await doc.save() is None
    assert request_counter.count == 0
    bulk.ok[1]["n"] = 2**70 + 1
    assert await bulk.ok[1].save() is not None


async def test_each_created_document_keeps_its_own_state_after_a_bulk_save(
    database: Database, request_counter: RequestCounter
) -> None:
    async with database.create_docs() as bulk:
        for index in range(5):
            bulk.create(f"doc-{index}", data={"index": index, "text": "x" * index})
    assert bulk.ok is not None and len(bulk.ok) == 5
    request_counter.reset()
    bulk.ok[2]["index"] = 20
    for doc in bulk.ok:
        await doc.save()
    # only the changed one goes: each of the others is compared with what it was sent as
    assert request_counter.requests == [("PUT", f"/{database.id}/doc-2")]
    assert (await server_copy(database, "doc-2"))["index"] == 20
    assert (await server_copy(database, "doc-3"))["_rev"].startswith("1-")


async def test_created_documents_appended_to_another_bulk_operation_go_only_if_changed(
    database: Database, request_counter: RequestCounter
) -> None:
    async with database.create_docs() as created:
        for index in range(4):
            created.create(f"doc-{index}", data={"index": index})
    assert created.ok is not None
    request_counter.reset()
    async with BulkOperation(database) as again:
        for doc in created.ok:
            again.append(doc)
        created.ok[1]["index"] = 10
        created.ok[3]["more"] = True
    assert [item["id"] for item in again.response or []] == ["doc-1", "doc-3"]
    assert ids(again.ok) == ["doc-1", "doc-3"]
    assert request_counter.count == 1
    assert (await server_copy(database, "doc-3"))["more"] is True


async def test_only_changed_documents_are_sent(
    database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "b", "c"):
        await save(database, doc_id, v=1)
    request_counter.reset()
    async with database.update_docs(["a", "b", "c"]) as bulk:
        async for doc in bulk:
            if doc.id == "b":
                doc["v"] = 2
    assert bulk.response is not None
    assert [item["id"] for item in bulk.response] == ["b"]
    assert ids(bulk.ok) == ["b"]
    assert bulk.error == []  # the unchanged docs are in neither list
    assert (await server_copy(database, "a"))["_rev"].startswith("1-")
    assert (await server_copy(database, "b"))["v"] == 2
    assert (await server_copy(database, "c"))["_rev"].startswith("1-")


async def test_nested_change_makes_a_document_dirty(database: Database) -> None:
    await save(database, "a", nested={"x": 1})
    async with database.update_docs(["a"]) as bulk:
        async for doc in bulk:
            doc["nested"]["x"] = 2
    assert ids(bulk.ok) == ["a"]
    assert (await server_copy(database, "a"))["nested"] == {"x": 2}


async def test_nothing_changed_sends_no_bulk_request(
    database: Database, request_counter: RequestCounter
) -> None:
    for doc_id in ("a", "b"):
        await save(database, doc_id)
    request_counter.reset()
    async with database.update_docs(["a", "b"]) as bulk:
        pass
    assert request_counter.requests == [("POST", f"/{database.id}/_bulk_get")]
    assert bulk.response == []
    assert bulk.ok == []
    assert bulk.error == []


async def test_block_raising_sends_nothing_and_leaves_results_none(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(Boom):
        async with database.create_docs(["a", "b"]) as bulk:
            bulk.create("c")
            raise Boom
    assert request_counter.count == 0
    assert bulk.response is None
    assert bulk.ok is None
    assert bulk.error is None
    assert [i async for i in database.akeys()] == []


async def test_update_block_raising_sends_no_write(
    database: Database, request_counter: RequestCounter
) -> None:
    await save(database, "a", v=1)
    request_counter.reset()
    with pytest.raises(Boom):
        async with database.update_docs(["a"]) as bulk:
            async for doc in bulk:
                doc["v"] = 2
            raise Boom
    assert bulk_posts(request_counter, database) == 0
    assert bulk.response is None
    assert bulk.ok is None
    assert bulk.error is None
    assert (await server_copy(database, "a"))["v"] == 1


# --- create_docs / update_docs ---


async def test_create_docs_with_an_empty_block_creates_empty_documents(
    database: Database, request_counter: RequestCounter
) -> None:
    async with database.create_docs(["a", "b"]) as bulk:
        assert isinstance(bulk, BulkCreateOperation)
        assert request_counter.count == 0  # entering sends nothing
    assert request_counter.requests == [("POST", f"/{database.id}/_bulk_docs")]
    assert ids(bulk.ok) == ["a", "b"]
    for doc_id in ("a", "b"):
        server = await server_copy(database, doc_id)
        assert set(server) == {"_id", "_rev"}


async def test_create_docs_fill_the_documents_in_the_block(database: Database) -> None:
    async with database.create_docs(["a", "b"]) as bulk:
        async for doc in bulk:
            doc["name"] = doc.id.upper()
        bulk.create("c", data={"name": "C"})
    assert ids(bulk.ok) == ["a", "b", "c"]
    assert [(await server_copy(database, i))["name"] for i in ("a", "b", "c")] == ["A", "B", "C"]


async def test_create_docs_without_ids(database: Database) -> None:
    async with database.create_docs() as bulk:
        bulk.create("x")
    assert ids(bulk.ok) == ["x"]


async def test_create_docs_for_an_existing_id_ends_in_error(database: Database) -> None:
    await save(database, "exists", v=1)
    async with database.create_docs(["exists", "new"]) as bulk:
        async for doc in bulk:
            doc["v"] = 2
    assert ids(bulk.ok) == ["new"]
    assert ids(bulk.error) == ["exists"]
    (failed,) = bulk.error or []
    assert failed.rev is None
    assert failed["v"] == 2
    assert bulk.response is not None
    (item,) = [item for item in bulk.response if item["id"] == "exists"]
    assert item["error"] == "conflict"
    assert (await server_copy(database, "exists"))["v"] == 1


async def test_update_docs_loads_with_one_post_and_saves_with_one_post(
    database: Database, request_counter: RequestCounter
) -> None:
    for n in range(5):
        await save(database, f"d{n}", n=n)
    request_counter.reset()
    async with database.update_docs([f"d{n}" for n in range(5)]) as bulk:
        assert isinstance(bulk, BulkUpdateOperation)
        assert request_counter.requests == [("POST", f"/{database.id}/_bulk_get")]
        async for doc in bulk:
            assert doc.rev is not None
            doc["n"] += 10
    assert request_counter.requests == [
        ("POST", f"/{database.id}/_bulk_get"),
        ("POST", f"/{database.id}/_bulk_docs"),
    ]
    assert ids(bulk.ok) == [f"d{n}" for n in range(5)]
    assert [(await server_copy(database, f"d{n}"))["n"] for n in range(5)] == [10, 11, 12, 13, 14]


async def test_update_docs_without_ids_sends_no_load(
    database: Database, request_counter: RequestCounter
) -> None:
    async with database.update_docs() as bulk:
        assert request_counter.count == 0
        bulk.create("new")
    assert ids(bulk.ok) == ["new"]


async def test_update_docs_with_a_missing_id_raises_not_found(
    database: Database, request_counter: RequestCounter
) -> None:
    await save(database, "a")
    request_counter.reset()
    with pytest.raises(NotFoundError):
        async with database.update_docs(["a", "missing"]):
            raise AssertionError("the block must not run")
    assert bulk_posts(request_counter, database) == 0


async def test_update_docs_create_makes_missing_and_deleted_documents(
    database: Database,
) -> None:
    await save(database, "a", v=1)
    deleted = await save(database, "deleted", v=1)
    await deleted.delete()
    async with database.update_docs(["a", "missing", "deleted"], create=True) as bulk:
        async for doc in bulk:
            doc["v"] = 2
    assert ids(bulk.ok) == ["a", "missing", "deleted"]
    assert bulk.error == []
    assert (await server_copy(database, "missing"))["v"] == 2
    recreated = await server_copy(database, "deleted")
    assert recreated["v"] == 2
    assert recreated["_rev"].startswith("3-")


async def test_update_docs_checks_the_loaded_ids_as_append_does(
    database: Database, request_counter: RequestCounter
) -> None:
    await save(database, "a", v=1)
    request_counter.reset()
    with pytest.raises(ValueError, match="already part"):
        async with database.update_docs(["a", "a"]):
            raise AssertionError("the block must not run")
    with pytest.raises(BadRequestError, match="_bad"):
        async with database.update_docs(["a", "_bad"], create=True):
            raise AssertionError("the block must not run")
    assert bulk_posts(request_counter, database) == 0
    # (an id with a leading "_" that CouchDB takes: the batch check hands it to the full one)
    async with database.update_docs(["a", "_design/new"], create=True) as bulk:
        async for doc in bulk:
            doc["v"] = 2
    assert ids(bulk.ok) == ["a", "_design/new"]
    assert (await server_copy(database, "_design/new"))["v"] == 2


# --- update_docs(): the documents read with one POST _bulk_get ---


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
async def test_update_docs_reads_the_documents_in_the_order_asked(
    database: Database,
    client_factory: Callable[..., CouchDB],
    couchdb_options: dict[str, Any],
    server_url: str,
    request_counter: RequestCounter,
    transport: str,
) -> None:
    for n in range(6):
        await save(database, f"d{n}", n=n)
    order = ["d3", "d0", "d5", "d1", "d4", "d2"]
    client = client_factory(server_url, transport, **couchdb_options)
    request_counter.reset()
    async with Database(client, database.id).update_docs(order) as bulk:
        assert request_counter.requests == [("POST", f"/{database.id}/_bulk_get")]
        loaded = [doc async for doc in bulk]
        assert [doc.id for doc in loaded] == order
        assert all(doc.rev is not None and doc["n"] == int(doc.id[1]) for doc in loaded)
        for doc in loaded:
            doc["n"] += 10
    assert ids(bulk.ok) == order
    assert [(await server_copy(database, id))["n"] for id in order] == [13, 10, 15, 11, 14, 12]


async def test_update_docs_reads_ids_holding_commas_quotes_and_backslashes(
    database: Database, request_counter: RequestCounter
) -> None:
    # (the _bulk_get body of plain ids is made from their JSON array: these take the
    # other way, one object per id, and must ask for the same documents)
    order = ["a,b", ",", 'q"x', "c\\d", "x,", "plain"]
    for n, doc_id in enumerate(order):
        await save(database, doc_id, n=n)
    request_counter.reset()
    async with database.update_docs(order) as bulk:
        assert request_counter.requests == [("POST", f"/{database.id}/_bulk_get")]
        loaded = [doc async for doc in bulk]
        assert [(doc.id, doc["n"]) for doc in loaded] == list(zip(order, range(6)))
        for doc in loaded:
            doc["n"] += 10
    assert ids(bulk.ok) == order
    assert [(await server_copy(database, id))["n"] for id in order] == list(range(10, 16))


async def test_update_docs_names_the_first_missing_or_deleted_id(database: Database) -> None:
    await save(database, "a")
    deleted = await save(database, "gone")
    await deleted.delete()
    with pytest.raises(NotFoundError, match="'gone'"):
        async with database.update_docs(["a", "gone", "missing"]):
            raise AssertionError("the block must not run")
    with pytest.raises(NotFoundError, match="'missing'"):
        async with database.update_docs(["missing", "gone"]):
            raise AssertionError("the block must not run")


async def test_update_docs_create_keeps_the_order_of_found_and_new_documents(
    database: Database,
) -> None:
    await save(database, "b", v=1)
    async with database.update_docs(["x", "b", "y"], create=True) as bulk:
        loaded = [doc async for doc in bulk]
        assert [(doc.id, doc.rev, doc.get("v")) for doc in loaded] == [
            ("x", None, None),
            ("b", loaded[1].rev, 1),
            ("y", None, None),
        ]
        assert loaded[1].rev is not None
        for doc in loaded:
            doc["v"] = 2
    assert ids(bulk.ok) == ["x", "b", "y"]


async def test_update_docs_write_conflict_lands_in_error(database: Database) -> None:
    for doc_id in ("a", "b"):
        await save(database, doc_id, v=1)
    async with database.update_docs(["a", "b"]) as bulk:
        async for doc in bulk:
            doc["v"] = 3
        # another writer changes "b" after it was read
        other = await database.get("b")
        other["v"] = 2
        await other.save()
    assert ids(bulk.ok) == ["a"]
    assert ids(bulk.error) == ["b"]
    assert (await server_copy(database, "a"))["v"] == 3
    assert (await server_copy(database, "b"))["v"] == 2


async def test_update_docs_sends_only_what_changed_as_json(
    database: Database, request_counter: RequestCounter
) -> None:
    await save(database, "reordered", x=1, y=2)
    await save(database, "same_length", v=1)
    await save(database, "equal_in_python", a=True, b=True, c=1, d=1, e=1)
    await save(database, "untouched", v=1)
    await save(database, "grown", v=1)
    request_counter.reset()
    async with database.update_docs(
        ["reordered", "same_length", "equal_in_python", "untouched", "grown"]
    ) as bulk:
        docs = {doc.id: doc async for doc in bulk}
        del docs["reordered"]["x"]
        docs["reordered"]["x"] = 1  # (the same data in another key order)
        docs["same_length"]["v"] = 2
        # equal to the stored values in Python (True == 1 == 1.0), not as JSON, and of
        # the same length encoded
        docs["equal_in_python"].update({"a": 1, "b": 1, "c": 1.0, "d": 1.0, "e": 1.0})
        docs["grown"]["w"] = 2
    assert ids(bulk.ok) == ["same_length", "equal_in_python", "grown"]
    assert bulk_posts(request_counter, database) == 1
    assert (await server_copy(database, "same_length"))["v"] == 2
    assert (await server_copy(database, "equal_in_python"))["a"] == 1
    assert (await server_copy(database, "grown"))["w"] == 2


async def test_update_docs_writes_changes_that_keep_the_length(
    database: Database, request_counter: RequestCounter
) -> None:
    # (counters, fixed-width timestamps, nested values: the encoding keeps its length)
    for n in range(6):
        await save(database, f"d{n}", n=10 + n, at="2026-11-30T07:00:0" + str(n), tags=["ab"])
    request_counter.reset()
    async with database.update_docs([f"d{n}" for n in range(6)]) as bulk:
        docs = [doc async for doc in bulk]
        docs[0]["n"] = 99
        docs[1]["at"] = "2026-11-30T07:00:09"
        docs[2]["tags"][0] = "ba"
        docs[3]["tags"] = ["ab"]  # (a new list, equal to the stored one)
        docs[4]["n"], docs[4]["at"] = 0 + docs[4]["n"], str(docs[4]["at"])  # (the same)
    assert ids(bulk.ok) == ["d0", "d1", "d2"]
    assert bulk_posts(request_counter, database) == 1
    assert (await server_copy(database, "d0"))["n"] == 99
    assert (await server_copy(database, "d1"))["at"] == "2026-11-30T07:00:09"
    assert (await server_copy(database, "d2"))["tags"] == ["ba"]
    for n in (3, 4, 5):
        assert (await server_copy(database, f"d{n}"))["_rev"].startswith("1-")


async def test_documents_of_a_bulk_update_are_saved_alone_only_when_changed(
    database: Database, request_counter: RequestCounter
) -> None:
    await save(database, "kept", v=1, w="x")
    await save(database, "changed", v=1, w="x")
    async with database.update_docs(["kept", "changed"]) as bulk:
        docs = {doc.id: doc async for doc in bulk}
    assert ids(bulk.ok) == []
    request_counter.reset()
    kept = docs["kept"]
    del kept["v"]
    kept["v"] = 1  # (the same data in another key order)
    docs["changed"]["w"] = "y"
    assert await kept.save() is None
    await docs["changed"].save()
    assert request_counter.requests == [("PUT", f"/{database.id}/changed")]
    assert (await server_copy(database, "changed"))["w"] == "y"


async def test_update_docs_refuses_a_bulk_get_answer_missing_a_result() -> None:
    answer = {"results": [{"id": "a", "docs": [{"ok": {"_id": "a", "_rev": "1-a", "v": 1}}]}]}

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, json.dumps(answer).encode()))

    async with ScriptedServer(handler) as server, CouchDB(server.url) as client:
        with pytest.raises(InvalidResponseError, match="one for each id"):
            async with Database(client, "db").update_docs(["a", "b"]):
                raise AssertionError("the block must not run")
    assert server.count("POST", "/db/_bulk_get") == 1
    assert server.count("POST", "/db/_bulk_docs") == 0


async def test_update_docs_refuses_a_bulk_get_result_of_another_document() -> None:
    answer = {"results": [{"id": "a", "docs": [{"ok": {"_id": "b", "_rev": "1-b"}}]}]}

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, json.dumps(answer).encode()))

    async with ScriptedServer(handler) as server, CouchDB(server.url) as client:
        with pytest.raises(InvalidResponseError, match="no document and no error"):
            async with Database(client, "db").update_docs(["a"]):
                raise AssertionError("the block must not run")
    assert server.count("POST", "/db/_bulk_docs") == 0


async def test_update_docs_takes_the_winner_of_a_conflicted_document() -> None:
    # Asked by id alone, CouchDB's _bulk_get answers as for open_revs=all: every leaf of a
    # conflicted document (pouchdb-server sends the winner only, so this is scripted).
    leaves = [
        {"ok": {"_id": "a", "_rev": "2-aaa", "v": "loser, lower id"}},
        {"ok": {"_id": "a", "_rev": "3-000", "_deleted": True}},
        {"ok": {"_id": "a", "_rev": "2-bbb", "v": "winner"}},
        {"ok": {"_id": "a", "_rev": "1-fff", "v": "loser, lower generation"}},
    ]
    answer = {"results": [{"id": "a", "docs": leaves}]}
    written: list[object] = []

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if request.target.startswith("/db/_bulk_get"):
            await connection.send(http_response(200, json.dumps(answer).encode()))
        else:
            written.extend(json.loads(request.body)["docs"])
            saved = [{"ok": True, "id": "a", "rev": "3-ccc"}]
            await connection.send(http_response(201, json.dumps(saved).encode()))

    async with ScriptedServer(handler) as server, CouchDB(server.url) as client:
        bulk = Database(client, "db").update_docs(["a"])
        async with bulk:
            docs = [doc async for doc in bulk]
            assert [doc["v"] for doc in docs] == ["winner"]
            docs[0]["v"] = "changed"
    assert written == [{"_id": "a", "_rev": "2-bbb", "v": "changed"}]
    assert ids(bulk.ok) == ["a"]


async def test_update_docs_finds_no_document_whose_leaves_are_all_deleted() -> None:
    leaves = [
        {"ok": {"_id": "a", "_rev": "2-aaa", "_deleted": True}},
        {"ok": {"_id": "a", "_rev": "2-bbb", "_deleted": True}},
    ]
    answer = {"results": [{"id": "a", "docs": leaves}]}

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, json.dumps(answer).encode()))

    async with ScriptedServer(handler) as server, CouchDB(server.url) as client:
        with pytest.raises(NotFoundError, match="'a'"):
            async with Database(client, "db").update_docs(["a"]):
                raise AssertionError("the block must not run")
    assert server.count("POST", "/db/_bulk_docs") == 0


# --- conflicts ---


async def test_conflict_lands_in_error_with_local_data_untouched(database: Database) -> None:
    stale = await save(database, "a", v=1)
    stale_rev = stale.rev
    current = await database.get("a")
    current["v"] = 2
    await current.save()

    stale["v"] = 3
    async with BulkOperation(database) as bulk:
        bulk.append(stale)
        fresh = bulk.create("b", data={"v": 1})
    assert bulk.error == [stale]
    assert bulk.ok == [fresh]
    assert stale.rev == stale_rev
    assert stale["v"] == 3
    assert stale._dirty_cache
    assert (await server_copy(database, "a"))["v"] == 2


@pytest.mark.parametrize("order", ["as sent", "reversed"])
async def test_a_result_item_with_both_error_and_rev_lands_in_error(order: str) -> None:
    items = [
        {"id": "a", "ok": True, "rev": "1-a"},
        # an error item that also names a revision (the one in conflict, say)
        {"id": "b", "error": "conflict", "reason": "Document update conflict.", "rev": "1-b"},
        {"id": "c", "rev": "1-c"},
    ]
    if order == "reversed":
        items.reverse()

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(201, json.dumps(items).encode()))

    async with ScriptedServer(handler) as server, CouchDB(server.url) as client:
        bulk = BulkOperation(Database(client, "db"))
        async with bulk:
            a, b, c = (bulk.create(doc_id, data={"v": 1}) for doc_id in "abc")
    assert server.count("POST", "/db/_bulk_docs") == 1
    assert bulk.ok == [a, c]
    assert bulk.error == [b]
    assert (a.rev, b.rev, c.rev) == ("1-a", None, "1-c")
    assert b._dirty_cache


async def test_document_appended_twice_through_docs_is_sent_twice(
    database: Database, request_counter: RequestCounter
) -> None:
    async with BulkOperation(database) as bulk:
        doc = Document(database, "twice", data={"v": 1})
        bulk._docs.append(doc)
        bulk._docs.append(doc)
    assert bulk_posts(request_counter, database) == 1
    assert bulk.response is not None
    assert len(bulk.response) == 2
    assert sorted("ok" in item for item in bulk.response) == [False, True]
    (conflict,) = [item for item in bulk.response if "error" in item]
    assert conflict["error"] == "conflict"
    assert bulk.ok == [doc]
    assert bulk.error == [doc]
    assert doc.rev == (await server_copy(database, "twice"))["_rev"]


async def test_document_appended_twice_in_different_batches(database: Database) -> None:
    async with BulkOperation(database, batch_size=1) as bulk:
        doc = Document(database, "twice", data={"v": 1})
        bulk._docs.extend([doc, doc])
    assert bulk.ok == [doc]
    assert bulk.error == [doc]
    assert doc.rev == (await server_copy(database, "twice"))["_rev"]


async def test_results_are_matched_by_id_when_the_server_reorders_them(
    database: Database,
) -> None:
    await save(database, "taken", v=0)
    bulk = BulkOperation(database)
    original_post = bulk._post

    async def reordering_post(body: bytes) -> list[dict[str, Any]]:
        return list(reversed(await original_post(body)))

    bulk._post = reordering_post  # type: ignore[method-assign]
    async with bulk:
        docs = [bulk.create(doc_id, data={"v": 1}) for doc_id in ("a", "b", "taken", "c", "d")]
    assert ids(bulk.ok) == ["a", "b", "c", "d"]
    assert ids(bulk.error) == ["taken"]
    for doc in docs:
        if doc.id != "taken":
            assert doc.rev == (await server_copy(database, doc.id))["_rev"]
    assert docs[2].rev is None


async def test_document_without_a_result_item_ends_in_error(database: Database) -> None:
    bulk = BulkOperation(database)
    original_post = bulk._post

    async def lossy_post(body: bytes) -> list[dict[str, Any]]:
        return [item for item in await original_post(body) if item["id"] != "b"]

    bulk._post = lossy_post  # type: ignore[method-assign]
    async with bulk:
        for doc_id in ("a", "b", "c"):
            bulk.create(doc_id)
    assert ids(bulk.ok) == ["a", "c"]
    assert ids(bulk.error) == ["b"]


async def test_deletion_through_a_bulk_operation(database: Database) -> None:
    await save(database, "a")
    async with database.update_docs(["a"]) as bulk:
        async for doc in bulk:
            doc["_deleted"] = True
    assert ids(bulk.ok) == ["a"]
    with pytest.raises(NotFoundError):
        await database.get("a")


async def test_invalid_document_raises_for_the_whole_request(
    database: Database, is_pouchdb: bool
) -> None:
    # CouchDB answers 400 for a bad special member, pouchdb-server 500 (DIFF 11)
    with pytest.raises(aiohttp.ClientResponseError) as caught:
        async with BulkOperation(database) as bulk:
            bulk.create("bad", data={"_bad": 1})
            bulk.create("good")
    assert isinstance(caught.value, RemoteResponseError)
    if not is_pouchdb:
        assert isinstance(caught.value, BadRequestError)


# --- batches ---


async def test_batch_size_splits_into_several_posts(
    database: Database, request_counter: RequestCounter
) -> None:
    async with BulkOperation(database, batch_size=3) as bulk:
        for n in range(10):
            bulk.create(f"d{n:02}", data={"n": n})
    assert bulk_posts(request_counter, database) == 4
    assert ids(bulk.ok) == [f"d{n:02}" for n in range(10)]
    assert bulk.error == []
    assert bulk.response is not None
    assert sorted(item["id"] for item in bulk.response) == [f"d{n:02}" for n in range(10)]
    assert [i async for i in database.akeys()] == [f"d{n:02}" for n in range(10)]


async def test_create_docs_and_update_docs_pass_batch_options(
    database: Database, request_counter: RequestCounter
) -> None:
    names = [f"d{n:02}" for n in range(10)]
    async with database.create_docs(names, batch_size=3, concurrency=1) as created:
        pass
    assert bulk_posts(request_counter, database) == 4
    assert ids(created.ok) == names
    request_counter.reset()
    async with database.update_docs(names, batch_size=4, concurrency=2) as updated:
        async for doc in updated:
            doc["v"] = 1
    assert bulk_posts(request_counter, database) == 3
    assert ids(updated.ok) == names


async def test_batch_bytes_splits_by_size(
    database: Database, request_counter: RequestCounter
) -> None:
    async with BulkOperation(database, batch_bytes=2500) as bulk:
        for n in range(10):
            bulk.create(f"d{n}", data={"blob": "x" * 1000})
    # about 1 KB per document, so two fit in 2500 bytes
    assert bulk_posts(request_counter, database) == 5
    assert len(bulk.ok or []) == 10


@pytest.mark.parametrize("spare", [0, -1])
async def test_batch_bytes_bounds_the_documents_of_a_body_exactly(
    database: Database, request_counter: RequestCounter, spare: int
) -> None:
    data = [{"blob": "x" * 100, "n": n} for n in range(4)]
    # the documents of a body and the commas between them, as the body carries them
    documents = b",".join(json.dumps({**value, "_id": f"d{n}"}, separators=(",", ":")).encode()
                          for n, value in enumerate(data))  # fmt: skip
    async with BulkOperation(database, batch_bytes=len(documents) + spare) as bulk:
        for n, value in enumerate(data):
            bulk.create(f"d{n}", data=value)
    # all four fit exactly; one byte less and the last goes in a request of its own
    assert bulk_posts(request_counter, database) == (1 if spare == 0 else 2)
    assert ids(bulk.ok) == ["d0", "d1", "d2", "d3"]


async def test_document_larger_than_batch_bytes_is_sent_alone(
    database: Database, request_counter: RequestCounter
) -> None:
    async with BulkOperation(database, batch_bytes=10) as bulk:
        for n in range(3):
            bulk.create(f"d{n}", data={"blob": "x" * 100})
    assert bulk_posts(request_counter, database) == 3
    assert ids(bulk.ok) == ["d0", "d1", "d2"]


async def test_every_document_ends_in_ok_or_error_across_batches(database: Database) -> None:
    for taken in ("d03", "d07", "d08"):
        await save(database, taken)
    async with BulkOperation(database, batch_size=3, concurrency=2) as bulk:
        docs = [bulk.create(f"d{n:02}") for n in range(10)]
    assert bulk.ok is not None
    assert bulk.error is not None
    assert len(bulk.ok) + len(bulk.error) == 10
    assert sorted(ids(bulk.error)) == ["d03", "d07", "d08"]
    assert {doc.id for doc in bulk.ok} | {doc.id for doc in bulk.error} == {d.id for d in docs}
    assert bulk.response is not None
    assert len(bulk.response) == 10


@pytest.mark.parametrize("option", ["batch_size", "batch_bytes", "concurrency"])
@pytest.mark.parametrize("value", [0, -1])
def test_batch_options_must_be_positive(database: Database, option: str, value: int) -> None:
    with pytest.raises(ValueError):
        BulkOperation(database, **{option: value})


async def test_many_documents_with_default_batches(database: Database) -> None:
    names = [f"doc{n:05}" for n in range(12_000)]
    async with database.create_docs(names) as bulk:
        async for doc in bulk:
            doc["n"] = int(doc.id[3:])
    assert bulk.ok is not None
    assert len(bulk.ok) == 12_000
    assert bulk.error == []
    assert (await database.info())["doc_count"] == 12_000


# --- deprecated members ---


async def test_status_is_a_deprecated_alias_of_response(database: Database) -> None:
    async with BulkOperation(database) as bulk:
        bulk.create("a")
    with pytest.warns(DeprecationWarning):
        status = bulk.status
    assert status == bulk.response
    assert status is not None
    assert status[0]["id"] == "a"


async def test_update_is_a_deprecated_alias_of_append(database: Database) -> None:
    async with BulkOperation(database) as bulk:
        with pytest.warns(DeprecationWarning):
            doc = bulk.update(Document(database, "a"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(ValueError):
                bulk.update(Document(database, "a"))
    assert bulk.ok == [doc]


async def test_failed_request_stops_sending_and_every_document_lands_in_error(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    missing = Database(couchdb, "aiocouch_test_never_created")
    bulk = missing.create_docs(batch_size=2, concurrency=1)
    with pytest.raises(NotFoundError):
        async with bulk:
            for i in range(7):
                bulk.create(f"doc{i}", data={"i": i})
    assert bulk.ok == []
    assert sorted(ids(bulk.error)) == [f"doc{i}" for i in range(7)]
    assert bulk_posts(request_counter, missing) == 1
