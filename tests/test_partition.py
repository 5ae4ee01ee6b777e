"""Partitioned databases (``aiocouch.partition``): creation, partition info, and the
partition's ``_all_docs``, views, ``_find`` and ``_explain``.

pouchdb-server has no partitions: it ignores ``?partitioned=true`` and answers 404 or 400
below ``/_partition`` (DIFF summary 10, 3.26-3.29, 14.81-14.85). What it can show runs
there (the request that creates a partitioned database, names refused before any
request); the rest is ``couchdb_only``, written from the CouchDB 3.4.3 transcript blocks
each test names. A loopback server answering with those blocks' bodies shows, on any
server, that each query goes to its partition's path and that its answer is read as
CouchDB sends it. The documents are written with ``w`` equal to the number of copies, so
that the tests hold on a cluster too.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database, Document, Partition
from aiocouch.exception import BadRequestError, NotFoundError
from aiocouch.partition import PartitionView
from testserver.request_counter import RequestCounter
from testserver.scripted_server import ScriptedServer, http_response, routed

NO_PARTITIONS = "pouchdb-server has no partitioned databases"
SELECTOR = {"v": {"$gt": 0}}
BY_V = "function(doc) { emit(doc.v, null); }"


@pytest.fixture
async def partitioned(couchdb: CouchDB) -> AsyncIterator[Database]:
    """A partitioned database holding p1:a (v 1), p1:b (v 2), p2:c (v 3) and the view
    ``pv/by_v`` (transcript 14.78-14.80), written to every copy; deleted after the test."""
    db = await couchdb.create(f"aiocouch_test_{uuid.uuid4().hex}", partitioned=True)
    try:
        docs: list[dict[str, Any]] = [
            {"_id": "p1:a", "v": 1},
            {"_id": "p1:b", "v": 2},
            {"_id": "p2:c", "v": 3},
            {"_id": "_design/pv", "views": {"by_v": {"map": BY_V}}},
        ]
        items = await db._bulk_docs(docs, w=(await db.info())["cluster"]["n"])
        assert all("rev" in item for item in items), items
        yield db
    finally:
        with contextlib.suppress(Exception):
            await db.delete()


# Without a partitioned database: no request, or only the creating one


async def test_a_partition_is_made_without_a_request(
    database: Database, request_counter: RequestCounter
) -> None:
    partition = database.partition("sensor-1")
    assert isinstance(partition, Partition)
    assert (partition.name, partition.database) == ("sensor-1", database)
    assert partition.endpoint == f"/{database.id}/_partition/sensor-1"
    assert isinstance(partition.view("d", "v"), PartitionView)
    assert partition.all_docs.endpoint == f"/{database.id}/_partition/sensor-1/_all_docs"
    assert repr(partition) == f"<Partition 'sensor-1' of database '{database.id}'>"
    assert request_counter.count == 0


def test_a_partition_name_is_one_quoted_segment(database: Database) -> None:
    partition = database.partition("a b/ç?")
    assert partition.endpoint == f"/{database.id}/_partition/a%20b%2F%C3%A7%3F"
    view = partition.view("d/e", "v w")
    assert view.endpoint == f"{partition.endpoint}/_design/d%2Fe/_view/v%20w"


@pytest.mark.parametrize("name", ["", "_design", "p1:a", "\ud800"])
def test_a_name_no_partition_can_have_is_refused(database: Database, name: str) -> None:
    with pytest.raises(BadRequestError, match="partition name") as caught:
        database.partition(name)
    assert caught.value.error == "illegal_partition"


def test_a_partition_name_must_be_a_str(database: Database) -> None:
    with pytest.raises(TypeError):
        database.partition(1)  # type: ignore[arg-type]


async def test_create_with_partitioned_true_asks_for_a_partitioned_database(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    name = f"aiocouch_test_{uuid.uuid4().hex}"
    db = await couchdb.create(name, partitioned=True)
    try:
        assert request_counter.requests == [("PUT", f"/{name}?partitioned=true")]
    finally:
        await db.delete()


# On CouchDB (transcript sections 3 and 14)


@pytest.mark.couchdb_only(f"{NO_PARTITIONS}: it ignores partitioned=true (transcript 3.26)")
async def test_a_partitioned_database_says_so_in_its_info(partitioned: Database) -> None:
    assert (await partitioned.info())["props"] == {"partitioned": True}


@pytest.mark.couchdb_only(f"{NO_PARTITIONS}: it takes any id (transcript 3.27)")
async def test_a_document_without_a_partition_is_refused(partitioned: Database) -> None:
    document = Document(partitioned, "nopartition", data={"v": 1})
    with pytest.raises(BadRequestError) as caught:
        await document.save()
    assert caught.value.error == "illegal_docid"


@pytest.mark.couchdb_only(f"{NO_PARTITIONS} (transcript 3.29)")
async def test_partition_info_counts_its_documents(partitioned: Database) -> None:
    info = await partitioned.partition("p1").info()
    assert (info["db_name"], info["partition"]) == (partitioned.id, "p1")
    assert (info["doc_count"], info["doc_del_count"]) == (2, 0)
    assert set(info["sizes"]) >= {"active", "external"}


@pytest.mark.couchdb_only(f"{NO_PARTITIONS} (transcript 14.81)")
async def test_partition_all_docs_holds_only_the_partition(partitioned: Database) -> None:
    partition = partitioned.partition("p1")
    assert [id async for id in partition.akeys()] == ["p1:a", "p1:b"]
    docs = [doc async for doc in partition.docs()]
    assert [(doc.id, doc["v"]) for doc in docs] == [("p1:a", 1), ("p1:b", 2)]
    assert [doc.id async for doc in partition.docs(prefix="p1:b")] == ["p1:b"]
    response = await partition.all_docs.get()
    assert list(response.keys()) == ["p1:a", "p1:b"]


@pytest.mark.couchdb_only(f"{NO_PARTITIONS} (transcript 14.82)")
async def test_partition_view_holds_only_the_partition(partitioned: Database) -> None:
    view = partitioned.partition("p1").view("pv", "by_v")
    assert [item async for item in view.aitems()] == [(1, None), (2, None)]
    assert [doc["v"] async for doc in view.docs()] == [1, 2]
    assert list((await view.get(descending=True)).keys()) == ["p1:b", "p1:a"]


@pytest.mark.couchdb_only(f"{NO_PARTITIONS}: it answers a global query (transcript 14.83)")
async def test_a_partitioned_view_outside_a_partition_is_refused(partitioned: Database) -> None:
    with pytest.raises(BadRequestError) as caught:
        await partitioned.view("pv", "by_v").get()
    assert caught.value.error == "query_parse_error"


@pytest.mark.couchdb_only(f"{NO_PARTITIONS} (transcript 14.84)")
async def test_partition_find_holds_only_the_partition(partitioned: Database) -> None:
    found = [doc async for doc in partitioned.partition("p1").find(SELECTOR)]
    assert sorted((doc.id, doc["v"]) for doc in found) == [("p1:a", 1), ("p1:b", 2)]


@pytest.mark.couchdb_only(f"{NO_PARTITIONS} (transcript 14.85)")
async def test_partition_explain_names_the_partition(partitioned: Database) -> None:
    explanation = await partitioned.partition("p1").explain(SELECTOR)
    assert explanation["selector"] == SELECTOR
    assert explanation["opts"]["partition"] == "p1"
    assert explanation["index"]["name"] == "_all_docs"


# Against a server answering with the transcript's bodies

ROW_A = {"id": "p1:a", "key": "p1:a", "value": {"rev": "1-a"}}
ROW_B = {"id": "p1:b", "key": "p1:b", "value": {"rev": "1-b"}}
DOC_A = {"_id": "p1:a", "_rev": "1-a", "v": 1}
DOC_B = {"_id": "p1:b", "_rev": "1-b", "v": 2}
EXPLANATION = {
    "dbname": "db",
    "index": {"ddoc": None, "name": "_all_docs", "type": "special"},
    "partitioned": True,
    "selector": SELECTOR,
    "opts": {"partition": "p1"},
}
TRANSCRIPT = {
    # 3.29
    ("GET", "/db/_partition/p1"): {
        "db_name": "db",
        "sizes": {"active": 60, "external": 7},
        "partition": "p1",
        "doc_count": 2,
        "doc_del_count": 0,
    },
    # 14.81
    ("GET", "/db/_partition/p1/_all_docs"): {
        "total_rows": 4,
        "offset": 1,
        "rows": [ROW_A, ROW_B],
    },
    ("GET", "/db/_partition/p1/_all_docs?include_docs=true"): {
        "total_rows": 4,
        "offset": 1,
        "rows": [{**ROW_A, "doc": DOC_A}, {**ROW_B, "doc": DOC_B}],
    },
    # 14.82
    ("GET", "/db/_partition/p1/_design/pv/_view/by_v"): {
        "total_rows": 3,
        "offset": 0,
        "rows": [{"id": "p1:a", "key": 1, "value": None}, {"id": "p1:b", "key": 2, "value": None}],
    },
    # 14.84
    ("POST", "/db/_partition/p1/_find"): {
        "docs": [DOC_A, DOC_B],
        "bookmark": "g1AAAA",
        "warning": "No matching index found, create an index to optimize query time.",
    },
    # 14.85, abbreviated
    ("POST", "/db/_partition/p1/_explain"): EXPLANATION,
}


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
async def test_each_query_goes_below_the_partition_and_reads_couchdbs_answer(
    transport: str,
) -> None:
    routes = {
        route: [http_response(200, json.dumps(body).encode())] for route, body in TRANSCRIPT.items()
    }
    options = {"connector": aiohttp.TCPConnector()} if transport == "aiohttp" else {}
    async with ScriptedServer(routed(routes)) as server, CouchDB(server.url, **options) as client:
        partition = Database(client, "db").partition("p1")
        info = await partition.info()
        assert (info["partition"], info["doc_count"]) == ("p1", 2)
        assert [id async for id in partition.akeys()] == ["p1:a", "p1:b"]
        assert [doc.data async for doc in partition.docs()] == [DOC_A, DOC_B]
        view = partition.view("pv", "by_v")
        assert [item async for item in view.aitems()] == [(1, None), (2, None)]
        assert [doc.data async for doc in partition.find(SELECTOR)] == [DOC_A, DOC_B]
        assert await partition.explain(SELECTOR) == EXPLANATION
    assert [(request.method, request.target) for request in server.requests] == list(TRANSCRIPT)
    find, explain = server.requests[-2:]
    assert json.loads(find.body) == {"selector": SELECTOR, "limit": 10_000}
    assert json.loads(explain.body) == {"selector": SELECTOR}


async def test_an_error_names_the_partition() -> None:
    async with ScriptedServer(routed({})) as server, CouchDB(server.url) as client:
        with pytest.raises(NotFoundError, match="partition 'p1' of database 'db'"):
            await Database(client, "db").partition("p1").view("pv", "by_v").get()
