"""DesignDocument: allowed keys, create_view, view(), saving (API.md section 8)."""

from __future__ import annotations

import pytest

from aiocouch import ConflictError, Database, View
from aiocouch.design_document import DesignDocument
from testserver.request_counter import RequestCounter

BY_N = "function(doc) { if (doc.n !== undefined) { emit(doc.n, doc.n); } }"
BY_TAG = "function(doc) { if (doc.tag) { emit(doc.tag, 1); } }"

ALLOWED_KEYS = [
    "language",
    "options",
    "filters",
    "lists",
    "rewrites",
    "shows",
    "updates",
    "validate_doc_update",
    "views",
]


async def put_numbers(db: Database, count: int) -> None:
    result = await db._bulk_docs([{"_id": f"n{i}", "n": i} for i in range(count)])
    assert all("rev" in item for item in result), result


def test_id_is_the_bare_name_and_endpoint_has_the_design_prefix(database: Database) -> None:
    ddoc = DesignDocument(database, "d")
    assert ddoc.id == "d"
    assert ddoc["_id"] == "d"
    assert ddoc.endpoint == f"/{database.id}/_design/d"


def test_design_doc_name_is_quoted_in_the_endpoint(database: Database) -> None:
    assert DesignDocument(database, "a/b").endpoint == f"/{database.id}/_design/a%2Fb"


@pytest.mark.parametrize("key", ALLOWED_KEYS)
def test_allowed_keys_can_be_set(database: Database, key: str) -> None:
    ddoc = DesignDocument(database, "d")
    ddoc[key] = {}
    assert ddoc[key] == {}


@pytest.mark.parametrize("key", ["foo", "map", "indexes", "_deleted"])
def test_other_keys_raise_key_error(database: Database, key: str) -> None:
    ddoc = DesignDocument(database, "d")
    with pytest.raises(KeyError):
        ddoc[key] = 1
    assert key not in ddoc


async def test_saved_design_document_is_stored_under_its_design_id(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("d")
    ddoc["views"] = {"by_n": {"map": BY_N}}
    ddoc["language"] = "javascript"
    request_counter.reset()
    response = await ddoc.save()
    assert response is not None
    assert response.status in (201, 202)
    assert request_counter.requests == [("PUT", f"/{database.id}/_design/d")]
    assert ddoc.exists
    assert [id async for id in database.akeys()] == ["_design/d"]
    stored = await database.get("_design/d")
    assert stored["views"] == {"by_n": {"map": BY_N}}
    assert stored.rev == ddoc.rev


async def test_fetched_design_document_has_the_prefixed_id(database: Database) -> None:
    ddoc = await database.design_doc("d")
    ddoc["language"] = "javascript"
    await ddoc.save()
    again = await database.design_doc("d", exists_ok=True)
    assert again.id == "d"
    assert again["_id"] == "_design/d"
    again["views"] = {"by_n": {"map": BY_N}}
    await again.save()
    assert (await database.get("_design/d"))["views"] == {"by_n": {"map": BY_N}}


async def test_create_view_saves_with_one_put_and_returns_a_working_view(
    database: Database, request_counter: RequestCounter
) -> None:
    await put_numbers(database, 4)
    ddoc = await database.design_doc("d")
    request_counter.reset()

    view = await ddoc.create_view("by_n", map_function=BY_N)

    assert request_counter.requests == [("PUT", f"/{database.id}/_design/d")]
    assert isinstance(view, View)
    assert (view.design_doc, view.id) == ("d", "by_n")
    assert ddoc["views"] == {"by_n": {"map": BY_N}}
    assert ddoc["language"] == "javascript"
    assert not ddoc._dirty_cache
    assert list((await view.get()).values()) == [0, 1, 2, 3]


async def test_create_view_with_a_reduce_function(database: Database) -> None:
    await put_numbers(database, 4)
    ddoc = await database.design_doc("d")
    view = await ddoc.create_view("sum", map_function=BY_N, reduce_function="_sum")
    assert ddoc["views"]["sum"] == {"map": BY_N, "reduce": "_sum"}
    assert list((await view.get()).values()) == [6]


async def test_create_view_forces_javascript_language(database: Database) -> None:
    ddoc = await database.design_doc("d")
    ddoc["language"] = "erlang"
    await ddoc.create_view("by_n", map_function=BY_N)
    assert (await database.get("_design/d"))["language"] == "javascript"


async def test_create_view_twice_raises_conflict_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("d")
    await ddoc.create_view("by_n", map_function=BY_N)
    request_counter.reset()
    with pytest.raises(ConflictError):
        await ddoc.create_view("by_n", map_function=BY_TAG)
    assert request_counter.count == 0
    assert ddoc["views"]["by_n"] == {"map": BY_N}
    assert (await database.get("_design/d"))["views"]["by_n"] == {"map": BY_N}


async def test_create_view_with_exists_ok_replaces_the_definition(database: Database) -> None:
    await database._bulk_docs([{"_id": "t", "tag": "x"}, {"_id": "u", "n": 1}])
    ddoc = await database.design_doc("d")
    await ddoc.create_view("v", map_function=BY_N)
    first_rev = ddoc.rev
    view = await ddoc.create_view("v", map_function=BY_TAG, exists_ok=True)
    assert ddoc.rev != first_rev
    assert (await database.get("_design/d"))["views"]["v"] == {"map": BY_TAG}
    assert list((await view.get()).keys()) == ["t"]


async def test_create_view_adds_to_an_existing_design_document(database: Database) -> None:
    first = await database.design_doc("d")
    await first.create_view("by_n", map_function=BY_N)
    ddoc = await database.design_doc("d", exists_ok=True)
    await ddoc.create_view("by_tag", map_function=BY_TAG)
    assert ddoc.rev is not None and ddoc.rev.startswith("2-")
    stored = await database.get("_design/d")
    assert set(stored["views"]) == {"by_n", "by_tag"}


async def test_create_view_on_an_existing_design_doc_with_that_view_raises_conflict(
    database: Database,
) -> None:
    first = await database.design_doc("d")
    await first.create_view("by_n", map_function=BY_N)
    ddoc = await database.design_doc("d", exists_ok=True)
    with pytest.raises(ConflictError):
        await ddoc.create_view("by_n", map_function=BY_TAG)


def test_view_returns_a_view_of_this_design_document_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = DesignDocument(database, "d")
    view = ddoc.view("by_n")
    assert isinstance(view, View)
    assert (view.design_doc, view.id) == ("d", "by_n")
    assert view.endpoint == f"/{database.id}/_design/d/_view/by_n"
    assert request_counter.count == 0


async def test_design_document_can_be_deleted(database: Database) -> None:
    ddoc = await database.design_doc("d")
    await ddoc.create_view("by_n", map_function=BY_N)
    await ddoc.delete()
    assert not ddoc.exists
    assert [id async for id in database.akeys()] == []
