"""Mango queries: Database.find() and FindRequest (API.md sections 5 and 9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import aiocouch.request
from aiocouch import BadRequestError, Database, Document
from aiocouch.request import FindRequest, FindRequestChunk
from testserver.request_counter import RequestCounter

FIND = "POST"


async def put_numbers(db: Database, count: int, **extra: Any) -> list[str]:
    ids = [f"n{i:03d}" for i in range(count)]
    result = await db._bulk_docs([{"_id": id, "n": i, **extra} for i, id in enumerate(ids)])
    assert all("rev" in item for item in result), result
    return ids


@pytest.fixture
async def numbers(database: Database, request_counter: RequestCounter) -> Database:
    """Ten documents n000..n009 with field n = 0..9 (half of them even), and a design doc."""
    await put_numbers(database, 10)
    await database._bulk_docs([{"_id": "_design/other", "language": "javascript"}])
    request_counter.reset()
    return database


@pytest.fixture
def page_size(monkeypatch: pytest.MonkeyPatch) -> int:
    """Makes find() without ``limit`` page by 4 documents instead of 10 000."""
    monkeypatch.setattr(aiocouch.request, "_DEFAULT_PAGE_SIZE", 4)
    return 4


async def ids_of(documents: AsyncIterator[Document]) -> list[str]:
    return [doc.id async for doc in documents]


# --- selector and results ---


async def test_find_by_positional_selector_yields_clean_documents(
    numbers: Database, request_counter: RequestCounter
) -> None:
    docs = [doc async for doc in numbers.find({"n": {"$gte": 7}})]
    assert sorted(doc.id for doc in docs) == ["n007", "n008", "n009"]
    assert all(type(doc) is Document for doc in docs)
    for doc in docs:
        assert doc.exists
        assert not doc._dirty_cache
        assert doc.json == {"n": int(doc.id[1:])}
    assert request_counter.requests == [(FIND, f"/{numbers.id}/_find")]
    request_counter.reset()
    for doc in docs:
        assert await doc.save() is None
    assert request_counter.count == 0


async def test_find_by_keyword_selector(numbers: Database) -> None:
    ids = await ids_of(numbers.find(selector={"n": {"$lt": 2}}))
    assert sorted(ids) == ["n000", "n001"]


async def test_find_documents_can_be_modified_and_saved(numbers: Database) -> None:
    async for doc in numbers.find({"n": 3}):
        doc["n"] = 33
        await doc.save()
    assert (await numbers.get("n003"))["n"] == 33


async def test_find_without_matches_yields_nothing(
    numbers: Database, request_counter: RequestCounter
) -> None:
    assert await ids_of(numbers.find({"n": {"$gt": 100}})) == []
    assert request_counter.count == 1


async def test_find_on_an_empty_database(database: Database) -> None:
    assert await ids_of(database.find({"n": {"$gt": 0}})) == []


async def test_find_with_fields_raises_value_error_on_first_iteration(
    numbers: Database, request_counter: RequestCounter
) -> None:
    documents = numbers.find({"n": 1}, fields=["n"])
    assert request_counter.count == 0
    with pytest.raises(ValueError):
        await documents.__anext__()
    assert request_counter.count == 0


async def test_find_request_is_an_async_iterable(numbers: Database) -> None:
    request = FindRequest(numbers, {"n": {"$in": [1, 2]}})
    assert sorted(await ids_of(request.__aiter__())) == ["n001", "n002"]
    assert sorted([doc.id async for doc in request]) == ["n001", "n002"]


# --- limit and sort ---


async def test_find_limit_sends_one_request_and_caps_the_results(
    numbers: Database, request_counter: RequestCounter
) -> None:
    ids = await ids_of(numbers.find({"n": {"$gte": 0}}, limit=3))
    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert request_counter.count == 1


async def test_find_limit_larger_than_the_matches_sends_one_request(
    numbers: Database, request_counter: RequestCounter
) -> None:
    ids = await ids_of(numbers.find({"n": {"$gte": 5}}, limit=100))
    assert sorted(ids) == ["n005", "n006", "n007", "n008", "n009"]
    assert request_counter.count == 1


async def test_find_limit_equal_to_the_matches_sends_one_request(
    numbers: Database, request_counter: RequestCounter
) -> None:
    ids = await ids_of(numbers.find({"n": {"$gte": 5}}, limit=5))
    assert sorted(ids) == ["n005", "n006", "n007", "n008", "n009"]
    assert request_counter.count == 1


async def test_find_request_with_limit_stops_after_one_page(
    numbers: Database, request_counter: RequestCounter
) -> None:
    ids = [doc.id async for doc in FindRequest(numbers, {"n": {"$gte": 0}}, limit=5)]
    assert len(ids) == 5
    assert request_counter.count == 1


async def test_find_sort_without_an_index_raises_bad_request(numbers: Database) -> None:
    with pytest.raises(BadRequestError) as info:
        await ids_of(numbers.find({"n": {"$gte": 0}}, sort=[{"n": "desc"}]))
    assert isinstance(info.value, ValueError)
    assert info.value.status == 400


async def test_find_sort_with_an_index(numbers: Database) -> None:
    await numbers.index({"fields": ["n"]}, ddoc="by-n", name="by-n")
    ids = await ids_of(numbers.find({"n": {"$gte": 6}}, sort=[{"n": "desc"}]))
    assert ids == ["n009", "n008", "n007", "n006"]
    ids = await ids_of(numbers.find({"n": {"$gte": 0}}, sort=[{"n": "asc"}], limit=2))
    assert ids == ["n000", "n001"]


async def test_find_skip_is_passed_in_the_body(numbers: Database) -> None:
    await numbers.index({"fields": ["n"]}, ddoc="by-n", name="by-n")
    ids = await ids_of(numbers.find({"n": {"$gte": 0}}, sort=[{"n": "asc"}], skip=8))
    assert ids == ["n008", "n009"]


async def test_find_invalid_operator_raises_bad_request(numbers: Database) -> None:
    with pytest.raises(BadRequestError):
        await ids_of(numbers.find({"n": {"$nonsense": 1}}))


# --- paging without limit ---


async def test_find_fewer_matches_than_a_page_sends_one_request(
    numbers: Database, request_counter: RequestCounter, page_size: int
) -> None:
    ids = await ids_of(numbers.find({"n": {"$lt": page_size - 1}}))
    assert sorted(ids) == [f"n{i:03d}" for i in range(page_size - 1)]
    assert request_counter.count == 1


# CouchDB pages with bookmarks; pouchdb-server sends none, so there find() pages with skip.
@pytest.mark.parametrize(
    ("matches", "requests"),
    [(4, 2), (8, 3), (10, 3), (3, 1)],
    ids=["exact-page", "exact-two-pages", "partial-last-page", "short-page"],
)
async def test_find_pages_through_every_match_without_duplicates(
    numbers: Database,
    request_counter: RequestCounter,
    page_size: int,
    matches: int,
    requests: int,
) -> None:
    ids = await ids_of(numbers.find({"n": {"$lt": matches}}))
    assert sorted(ids) == [f"n{i:03d}" for i in range(matches)]
    assert request_counter.requests == [(FIND, f"/{numbers.id}/_find")] * requests


async def test_find_pages_a_large_result_with_the_default_page_size(
    database: Database, request_counter: RequestCounter
) -> None:
    await put_numbers(database, 10_050)
    request_counter.reset()
    count = 0
    seen = set()
    async for doc in database.find({"n": {"$gte": 0}}):
        count += 1
        seen.add(doc.id)
    assert count == len(seen) == 10_050
    assert request_counter.count == 2


# --- FindRequestChunk ---


async def test_find_request_chunk_exposes_docs_bookmark_and_last_page(
    database: Database, request_counter: RequestCounter
) -> None:
    data = {"docs": [{"_id": "a", "_rev": "1-x", "v": 1}], "bookmark": "g1AAAA"}
    chunk = FindRequestChunk(database, data=data, pagination_size=2)
    docs = [doc async for doc in chunk.docs]
    assert [(doc.id, doc["v"], doc.rev) for doc in docs] == [("a", 1, "1-x")]
    assert not docs[0]._dirty_cache
    assert chunk.bookmark == "g1AAAA"
    assert chunk.is_last_chunk
    full = FindRequestChunk(
        database, data={"docs": [{"_id": "a"}, {"_id": "b"}]}, pagination_size=2
    )
    assert not full.is_last_chunk
    assert full.bookmark is None
    assert request_counter.count == 0
