"""Database: documents, _all_docs queries, design docs, indexes, bulk entry points (section 5)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from aiocouch import (
    ConflictError,
    CouchDB,
    Database,
    Document,
    NotFoundError,
    SecurityDocument,
    View,
)
from aiocouch.design_document import DesignDocument
from aiocouch.view import AllDocsView
from testserver.request_counter import RequestCounter


async def put_docs(db: Database, docs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Writes ``docs`` (id -> fields) with one _bulk_docs request; returns id -> rev."""
    result = await db._bulk_docs([{"_id": id, **fields} for id, fields in docs.items()])
    assert all("rev" in item for item in result), result
    return {item["id"]: item["rev"] for item in result}


async def delete_doc(db: Database, id: str) -> None:
    doc = await db.get(id)
    await doc.delete()


def query(path: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(path).query)


async def ids_of(documents: AsyncIterator[Document]) -> list[str]:
    return [doc.id async for doc in documents]


@pytest.fixture
async def filled(database: Database, request_counter: RequestCounter) -> Database:
    """The test database with docs a, b, c (field n) and the design doc _design/dd."""
    await put_docs(
        database,
        {
            "a": {"n": 1},
            "b": {"n": 2},
            "c": {"n": 3},
            "_design/dd": {"language": "javascript", "views": {}},
        },
    )
    request_counter.reset()
    return database


# --- construction ---


def test_constructing_a_database_sends_no_request(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    db = Database(couchdb, "whatever")
    assert db.id == "whatever"
    assert db.endpoint == "/whatever"
    assert request_counter.count == 0


# --- create() ---


async def test_create_new_document_checks_with_head_and_writes_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    doc = await database.create("new", data={"x": 1})
    assert request_counter.requests == [("HEAD", f"/{database.id}/new")]
    assert doc.id == "new"
    assert doc["x"] == 1
    assert doc["_id"] == "new"
    assert doc.rev is None
    assert not doc.exists
    assert doc._dirty_cache
    with pytest.raises(NotFoundError):
        await database.get("new")


async def test_create_then_save_stores_the_data(database: Database) -> None:
    doc = await database.create("new", data={"x": 1})
    await doc.save()
    assert (await database.get("new")).json == {"x": 1}


async def test_create_existing_document_raises_conflict_locally(
    filled: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(ConflictError) as info:
        await filled.create("a", data={"n": 99})
    assert isinstance(info.value, KeyError)
    assert info.value.args[0] == (
        f"The document 'a' does already exist in the database '{filled.id}'"
    )
    assert request_counter.requests == [("HEAD", f"/{filled.id}/a")]
    assert (await filled.get("a"))["n"] == 1


async def test_create_existing_with_exists_ok_returns_the_clean_server_copy(
    filled: Database, request_counter: RequestCounter
) -> None:
    doc = await filled.create("a", exists_ok=True, data={"only_local": True})
    assert request_counter.requests == [("GET", f"/{filled.id}/a")]
    assert doc.json == {"n": 1}
    assert "only_local" not in doc
    assert doc.exists
    assert not doc._dirty_cache
    request_counter.reset()
    assert await doc.save() is None
    assert request_counter.count == 0


async def test_create_missing_with_exists_ok_returns_an_unsaved_document(
    database: Database, request_counter: RequestCounter
) -> None:
    doc = await database.create("new", exists_ok=True, data={"x": 1})
    assert request_counter.requests == [("GET", f"/{database.id}/new")]
    assert doc["x"] == 1
    assert doc["_id"] == "new"
    assert "_rev" not in doc
    assert doc._dirty_cache
    await doc.save()
    assert (await database.get("new"))["x"] == 1


# --- get() and db[id] ---


async def test_get_returns_a_clean_document_with_one_request(
    filled: Database, request_counter: RequestCounter
) -> None:
    doc = await filled.get("b")
    assert request_counter.requests == [("GET", f"/{filled.id}/b")]
    assert isinstance(doc, Document)
    assert doc.json == {"n": 2}
    assert doc.exists
    assert not doc._dirty_cache
    request_counter.reset()
    assert await doc.save() is None
    assert request_counter.count == 0


async def test_get_missing_raises_not_found(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(NotFoundError) as info:
        await database.get("missing")
    assert isinstance(info.value, KeyError)
    assert info.value.status == 404
    assert request_counter.count == 1


async def test_get_missing_with_empty_default_returns_an_unsaved_document(
    database: Database,
) -> None:
    doc = await database.get("missing", default={})
    assert doc.id == "missing"
    assert dict(doc) == {"_id": "missing"}
    assert doc.rev is None
    assert not doc.exists
    assert doc._dirty_cache


async def test_get_missing_with_default_holds_the_default_and_can_be_saved(
    database: Database,
) -> None:
    doc = await database.get("missing", default={"x": 1})
    assert doc["x"] == 1
    assert doc["_id"] == "missing"
    await doc.save()
    assert (await database.get("missing")).json == {"x": 1}


async def test_get_existing_ignores_the_default(filled: Database) -> None:
    doc = await filled.get("a", default={"x": 1})
    assert doc.json == {"n": 1}
    assert not doc._dirty_cache


async def test_get_with_rev_returns_that_revision(
    database: Database, request_counter: RequestCounter
) -> None:
    doc = await database.create("d", data={"v": 1})
    await doc.save()
    first_rev = doc.rev
    assert first_rev is not None
    doc["v"] = 2
    await doc.save()
    request_counter.reset()

    old = await database.get("d", rev=first_rev)

    assert old["v"] == 1
    assert old.rev == first_rev
    [(method, path)] = request_counter.requests
    assert method == "GET"
    assert urlsplit(path).path == f"/{database.id}/d"
    assert query(path) == {"rev": [first_rev]}


async def test_get_deleted_document_raises_not_found(filled: Database) -> None:
    await delete_doc(filled, "a")
    with pytest.raises(NotFoundError):
        await filled.get("a")


async def test_getitem_is_get(filled: Database, request_counter: RequestCounter) -> None:
    doc = await filled["c"]
    assert doc.json == {"n": 3}
    assert request_counter.requests == [("GET", f"/{filled.id}/c")]
    with pytest.raises(NotFoundError):
        await filled["missing"]


# --- delete() and info() ---


async def test_delete_removes_the_database_with_one_request(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    name = f"aiocouch_test_{uuid.uuid4().hex}"
    db = await couchdb.create(name)
    request_counter.reset()
    assert await db.delete() is None
    assert request_counter.requests == [("DELETE", f"/{name}")]
    with pytest.raises(NotFoundError):
        await couchdb[name]


async def test_info_reports_the_database(filled: Database, request_counter: RequestCounter) -> None:
    info = await filled.info()
    assert info["db_name"] == filled.id
    assert info["doc_count"] == 4
    assert request_counter.requests == [("GET", f"/{filled.id}")]


# --- docs() ---


async def test_docs_yields_clean_documents_in_id_order_without_design_docs(
    filled: Database, request_counter: RequestCounter
) -> None:
    docs = [doc async for doc in filled.docs()]
    assert [doc.id for doc in docs] == ["a", "b", "c"]
    assert [doc["n"] for doc in docs] == [1, 2, 3]
    assert all(type(doc) is Document for doc in docs)
    assert all(doc.exists and not doc._dirty_cache for doc in docs)
    [(method, path)] = request_counter.requests
    assert method == "GET"
    assert urlsplit(path).path == f"/{filled.id}/_all_docs"
    assert query(path) == {"include_docs": ["true"]}
    request_counter.reset()
    for doc in docs:
        assert await doc.save() is None
    assert request_counter.count == 0


async def test_docs_include_ddocs_yields_design_docs_as_plain_documents(filled: Database) -> None:
    docs = [doc async for doc in filled.docs(include_ddocs=True)]
    assert [doc.id for doc in docs] == ["_design/dd", "a", "b", "c"]
    assert type(docs[0]) is Document
    assert docs[0]["language"] == "javascript"


async def test_docs_with_empty_ids_sends_no_request(
    filled: Database, request_counter: RequestCounter
) -> None:
    assert await ids_of(filled.docs([])) == []
    assert await ids_of(filled.docs(ids=[], create=True)) == []
    assert request_counter.count == 0


async def test_docs_with_ids_posts_once_and_keeps_their_order(
    filled: Database, request_counter: RequestCounter
) -> None:
    docs = [doc async for doc in filled.docs(["c", "a"])]
    assert [(doc.id, doc["n"]) for doc in docs] == [("c", 3), ("a", 1)]
    assert all(not doc._dirty_cache for doc in docs)
    [(method, path)] = request_counter.requests
    assert method == "POST"
    assert urlsplit(path).path == f"/{filled.id}/_all_docs"
    assert query(path) == {"include_docs": ["true"]}


async def test_docs_skips_design_docs_even_when_asked_by_id(filled: Database) -> None:
    assert await ids_of(filled.docs(["_design/dd", "b"])) == ["b"]
    assert await ids_of(filled.docs(["_design/dd", "b"], include_ddocs=True)) == [
        "_design/dd",
        "b",
    ]


async def test_docs_missing_id_raises_not_found_mid_iteration(filled: Database) -> None:
    seen: list[str] = []
    with pytest.raises(NotFoundError) as info:
        async for doc in filled.docs(["a", "missing", "b"]):
            seen.append(doc.id)
    assert seen == ["a"]
    assert info.value.args[0] == (
        f"The document 'missing' does not exist in the database {filled.id}."
    )


async def test_docs_deleted_id_raises_not_found(filled: Database) -> None:
    await delete_doc(filled, "b")
    with pytest.raises(NotFoundError):
        await ids_of(filled.docs(["b"]))


async def test_docs_with_create_yields_empty_unsaved_documents_for_missing_ids(
    filled: Database, request_counter: RequestCounter
) -> None:
    await delete_doc(filled, "b")
    request_counter.reset()
    docs = [doc async for doc in filled.docs(["a", "missing", "b"], create=True)]
    assert [doc.id for doc in docs] == ["a", "missing", "b"]
    assert docs[0].exists
    for doc in docs[1:]:
        assert not doc.exists
        assert dict(doc) == {"_id": doc.id}
        assert doc._dirty_cache
    assert request_counter.count == 1


async def test_docs_prefix_selects_ids_starting_with_it(
    database: Database, request_counter: RequestCounter
) -> None:
    await put_docs(database, {id: {} for id in ["a", "ab", "abc", "abd", "b", "aa", "ac"]})
    request_counter.reset()
    assert await ids_of(database.docs(prefix="ab")) == ["ab", "abc", "abd"]
    assert request_counter.count == 1


async def test_docs_prefix_finds_ids_beyond_u_ffff_and_nothing_past_the_prefix(
    database: Database,
) -> None:
    # CouchDB sorts _all_docs by code point: an end key of prefix + "\uffff" would end
    # before "ab\U0001f600" (a character beyond U+FFFF).
    inside = ["ab", "ab\ufffd", "ab\U0001f600", "ab\U0010fffd", "abc", "ab "]
    outside = ["aa", "a", "ac", "b", "a\U0001f600", "\U0001f600ab"]
    await put_docs(database, {id: {} for id in inside + outside})
    found = await ids_of(database.docs(prefix="ab"))
    assert sorted(found) == sorted(inside)
    assert await ids_of(database.docs(prefix="ab\U0001f600")) == ["ab\U0001f600"]
    assert [id async for id in database.akeys(prefix="ab")] == found


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [('x"y', ['x"y1', 'x"y2']), ("p\\q", ["p\\q1", "p\\q2"]), ("é", ["é1", "é2"])],
)
async def test_docs_prefix_with_json_special_characters(
    database: Database, prefix: str, expected: list[str]
) -> None:
    await put_docs(
        database,
        {id: {} for id in ['x"y1', 'x"y2', 'x"z', "x", "p\\q1", "p\\q2", "p\\r", "é1", "é2", "e"]},
    )
    assert await ids_of(database.docs(prefix=prefix)) == expected


async def test_docs_prefix_together_with_ids_or_create_raises_value_error(
    filled: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(ValueError):
        await ids_of(filled.docs(["a"], prefix="a"))
    with pytest.raises(ValueError):
        await ids_of(filled.docs(prefix="a", create=True))
    assert request_counter.count == 0


@pytest.mark.parametrize("params", [{"key": '"a"'}, {"keys": '["a"]'}])
async def test_docs_rejects_key_and_keys(
    filled: Database, request_counter: RequestCounter, params: dict[str, str]
) -> None:
    with pytest.raises(AttributeError):
        await ids_of(filled.docs(**params))
    assert request_counter.count == 0


async def test_docs_descending_reverses_the_order(filled: Database) -> None:
    assert await ids_of(filled.docs(descending=True)) == ["c", "b", "a"]


async def test_docs_limit_is_passed_through(
    filled: Database, request_counter: RequestCounter
) -> None:
    assert await ids_of(filled.docs(limit=2, startkey='"a"')) == ["a", "b"]
    assert query(request_counter.requests[0][1]) == {
        "limit": ["2"],
        "startkey": ['"a"'],
        "include_docs": ["true"],
    }


async def test_docs_on_an_empty_database_yields_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    assert await ids_of(database.docs()) == []
    assert await ids_of(database.values()) == []
    assert [id async for id in database.akeys()] == []
    assert request_counter.count == 3


async def test_docs_reflect_documents_added_and_deleted_between_iterations(
    filled: Database,
) -> None:
    first = [doc async for doc in filled.docs()]
    assert [doc.id for doc in first] == ["a", "b", "c"]

    await delete_doc(filled, "b")
    await put_docs(filled, {"d": {"n": 4}})

    assert await ids_of(filled.docs()) == ["a", "c", "d"]
    assert [id async for id in filled.akeys()] == ["_design/dd", "a", "c", "d"]
    # A document from the first pass is still usable.
    first[0]["n"] = 10
    await first[0].save()
    assert (await filled.get("a"))["n"] == 10


async def test_docs_iterates_many_documents(database: Database) -> None:
    ids = [f"doc{i:05d}" for i in range(2500)]
    await put_docs(database, {id: {"i": i, "pad": "x" * 50} for i, id in enumerate(ids)})
    seen = [doc async for doc in database.docs()]
    assert [doc.id for doc in seen] == ids
    assert [doc["i"] for doc in seen] == list(range(2500))


# --- values() and akeys() ---


async def test_values_yields_every_document_but_design_docs(
    filled: Database, request_counter: RequestCounter
) -> None:
    assert await ids_of(filled.values()) == ["a", "b", "c"]
    [(method, path)] = request_counter.requests
    assert method == "GET"
    assert urlsplit(path).path == f"/{filled.id}/_all_docs"
    assert query(path)["include_docs"] == ["true"]


async def test_values_passes_params(filled: Database) -> None:
    assert await ids_of(filled.values(descending=True)) == ["c", "b", "a"]
    assert await ids_of(filled.values(include_ddocs=True, limit=2)) == ["_design/dd", "a"]


async def test_akeys_yields_all_ids_including_design_docs(
    filled: Database, request_counter: RequestCounter
) -> None:
    assert [id async for id in filled.akeys()] == ["_design/dd", "a", "b", "c"]
    [(method, path)] = request_counter.requests
    assert method == "GET"
    assert urlsplit(path).path == f"/{filled.id}/_all_docs"
    assert "include_docs" not in query(path)


async def test_akeys_prefix(filled: Database) -> None:
    await put_docs(filled, {"ab": {}, "b2": {}})
    assert [id async for id in filled.akeys(prefix="a")] == ["a", "ab"]


async def test_akeys_with_ids_keeps_order_skips_missing_and_yields_deleted(
    filled: Database, request_counter: RequestCounter
) -> None:
    await delete_doc(filled, "b")
    request_counter.reset()
    ids = [id async for id in filled.akeys(ids=["c", "missing", "b", "a"])]
    assert ids == ["c", "b", "a"]
    assert [method for method, _ in request_counter.requests] == ["POST"]


# --- database names with reserved characters (the 4.0.1 _all_docs bug) ---


@pytest.fixture(params=["/sub", "+b(c)$"], ids=["slash", "plus-parens-dollar"])
async def odd_database(
    request: pytest.FixtureRequest, couchdb: CouchDB, request_counter: RequestCounter
) -> AsyncIterator[Database]:
    name = f"aiocouch_test_{uuid.uuid4().hex}{request.param}"
    db = await couchdb.create(name)
    await put_docs(db, {"a": {"n": 1}, "b": {"n": 2}})
    request_counter.reset()
    try:
        yield db
    finally:
        with contextlib.suppress(Exception):
            await db.delete()


async def test_reserved_characters_in_the_database_name_are_quoted_for_all_docs(
    odd_database: Database, request_counter: RequestCounter
) -> None:
    assert await ids_of(odd_database.docs()) == ["a", "b"]
    assert await ids_of(odd_database.docs(["b"])) == ["b"]
    assert await ids_of(odd_database.values()) == ["a", "b"]
    assert [id async for id in odd_database.akeys()] == ["a", "b"]
    quoted = "/" + quote(odd_database.id, safe="")
    assert {urlsplit(path).path for _, path in request_counter.requests} == {f"{quoted}/_all_docs"}


async def test_reserved_characters_in_the_database_name_work_for_update_docs(
    odd_database: Database,
) -> None:
    async with odd_database.update_docs(["a", "b"]) as bulk:
        async for doc in bulk:
            doc["n"] += 10
    assert bulk.error == []
    assert [doc["n"] async for doc in odd_database.docs()] == [11, 12]


# --- all_docs, view(), design_doc() ---


def test_all_docs_is_a_new_view_each_time_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    view = database.all_docs
    assert isinstance(view, AllDocsView)
    assert database.all_docs is not view
    assert request_counter.count == 0


async def test_all_docs_get_returns_rows(filled: Database) -> None:
    response = await filled.all_docs.get()
    assert [row["id"] for row in response.rows] == ["_design/dd", "a", "b", "c"]
    assert response.total_rows == 4


def test_view_returns_a_view_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    view = database.view("ddoc", "by_x")
    assert isinstance(view, View)
    assert view.design_doc == "ddoc"
    assert view.id == "by_x"
    assert view.endpoint == f"/{database.id}/_design/ddoc/_view/by_x"
    assert request_counter.count == 0


async def test_design_doc_new_sends_one_head(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("fresh")
    assert isinstance(ddoc, DesignDocument)
    assert ddoc.id == "fresh"
    assert not ddoc.exists
    assert request_counter.requests == [("HEAD", f"/{database.id}/_design/fresh")]


async def test_design_doc_existing_raises_conflict(
    filled: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(ConflictError):
        await filled.design_doc("dd")
    assert request_counter.requests == [("HEAD", f"/{filled.id}/_design/dd")]


async def test_design_doc_existing_with_exists_ok_is_the_clean_server_copy(
    filled: Database, request_counter: RequestCounter
) -> None:
    ddoc = await filled.design_doc("dd", exists_ok=True)
    assert request_counter.requests == [("GET", f"/{filled.id}/_design/dd")]
    assert ddoc.exists
    assert ddoc["language"] == "javascript"
    assert not ddoc._dirty_cache


async def test_design_doc_missing_with_exists_ok_sends_one_get(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("fresh", exists_ok=True)
    assert not ddoc.exists
    assert request_counter.requests == [("GET", f"/{database.id}/_design/fresh")]


# --- index(), security() ---


async def test_index_creates_a_mango_index_with_one_post(
    filled: Database, request_counter: RequestCounter
) -> None:
    result = await filled.index({"fields": ["n"]}, ddoc="idx", name="by-n")
    assert result["result"] == "created"
    assert result["name"] == "by-n"
    assert request_counter.requests == [("POST", f"/{filled.id}/_index")]
    again = await filled.index({"fields": ["n"]}, ddoc="idx", name="by-n")
    assert again["result"] == "exists"
    sorted_docs = [doc.id async for doc in filled.find({"n": {"$gt": 0}}, sort=[{"n": "desc"}])]
    assert sorted_docs == ["c", "b", "a"]


async def test_security_returns_a_clean_security_document(
    database: Database, request_counter: RequestCounter
) -> None:
    security = await database.security()
    assert isinstance(security, SecurityDocument)
    assert security.members is None
    assert security.admins is None
    assert request_counter.requests == [("GET", f"/{database.id}/_security")]
    request_counter.reset()
    await security.save()
    assert request_counter.count == 0


# --- update_docs() / create_docs() request counts ---


async def test_update_docs_loads_on_enter_and_saves_on_exit(
    filled: Database, request_counter: RequestCounter
) -> None:
    operation = filled.update_docs(["a", "c"])
    assert request_counter.count == 0
    async with operation as bulk:
        assert [method for method, _ in request_counter.requests] == ["POST"]
        assert urlsplit(request_counter.requests[0][1]).path == f"/{filled.id}/_bulk_get"
        async for doc in bulk:
            doc["n"] *= 100
    assert [urlsplit(path).path for _, path in request_counter.requests] == [
        f"/{filled.id}/_bulk_get",
        f"/{filled.id}/_bulk_docs",
    ]
    assert [doc["n"] async for doc in filled.docs(["a", "c"])] == [100, 300]


async def test_update_docs_without_ids_or_changes_sends_nothing(
    filled: Database, request_counter: RequestCounter
) -> None:
    async with filled.update_docs([]) as bulk:
        pass
    assert bulk.response == []
    assert request_counter.count == 0


async def test_update_docs_unchanged_documents_send_only_the_load(
    filled: Database, request_counter: RequestCounter
) -> None:
    async with filled.update_docs(["a", "b"]):
        pass
    assert [method for method, _ in request_counter.requests] == ["POST"]


async def test_update_docs_missing_id_raises_not_found_on_enter(
    filled: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(NotFoundError):
        async with filled.update_docs(["a", "missing"]):
            pytest.fail("the block must not run")
    assert request_counter.count == 1


async def test_create_docs_sends_one_bulk_request_on_exit(
    database: Database, request_counter: RequestCounter
) -> None:
    operation = database.create_docs(["x", "y"])
    async with operation as bulk:
        bulk.create("z", data={"v": 1})
        assert request_counter.count == 0
    assert request_counter.requests == [("POST", f"/{database.id}/_bulk_docs")]
    assert [doc.id for doc in bulk.ok or []] == ["x", "y", "z"]
    assert [id async for id in database.akeys()] == ["x", "y", "z"]


async def test_iterated_documents_are_clean_until_changed_even_in_nested_values(
    database: Database, request_counter: RequestCounter
) -> None:
    for i in range(3):
        await Document(database, f"d{i}", data={"nested": {"n": i}, "list": [i]}).save()
    documents = [doc async for doc in database.docs()]
    request_counter.reset()
    for doc in documents:
        assert await doc.save() is None
    assert request_counter.count == 0
    documents[1]["nested"]["n"] = 42
    assert await documents[1].save() is not None
    assert request_counter.count == 1
    assert (await database.get("d1"))["nested"] == {"n": 42}
    found = [doc async for doc in database.find({"list": {"$elemMatch": {"$eq": 2}}})]
    request_counter.reset()
    assert await found[0].save() is None
    found[0]["list"].append(3)
    await found[0].save()
    assert request_counter.count == 1
    assert (await database.get("d2"))["list"] == [2, 3]


async def test_documents_deleted_and_added_during_iteration_end_cleanly(
    database: Database,
) -> None:
    async with database.create_docs() as bulk:
        for i in range(2000):
            bulk.create(f"doc{i:05}", data={"i": i, "pad": "x" * 200})
    seen: list[str] = []
    async for doc in database.docs():
        if len(seen) == 10:
            # deleted while the answer is still streaming, and a new id after the cursor
            await (await database.get("doc01999")).delete()
            await Document(database, "doc99999", data={"late": True}).save()
        seen.append(doc.id)
    assert len(seen) == len(set(seen))
    assert set(seen) >= {f"doc{i:05}" for i in range(1999)}
    assert [doc.id async for doc in database.docs(prefix="doc0199")][-1] == "doc01998"
