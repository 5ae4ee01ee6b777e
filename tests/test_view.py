"""Views: View, ViewResponse, map and reduce queries, and the row iterators (section 9);
View.query()/queries() and DesignDocument.design_info() (transcript section 7)."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from aiocouch import CouchDB, Database, Document, NotFoundError, View
from aiocouch.design_document import DesignDocument
from aiocouch.view import ViewResponse
from aiocouch.view_query import ViewQuery
from testserver.request_counter import RequestCounter
from testserver.transcript_documents import (
    TRANSCRIPT_DOCUMENTS,
    every_copy,
    write_to_every_copy,
)

BY_TYPE = "function(doc) { if (doc.type) { emit(doc.type, doc.value); } }"
BY_ID = "function(doc) { emit(doc._id, null); }"

# id -> fields; "fruit" is emitted by three documents, "veg" by two.
PRODUCE: dict[str, dict[str, Any]] = {
    "apple": {"type": "fruit", "value": 3},
    "banana": {"type": "fruit", "value": 1},
    "carrot": {"type": "veg", "value": 5},
    "cherry": {"type": "fruit", "value": 7},
    "leek": {"type": "veg", "value": 2},
    "stone": {"weight": 9},
}
FRUIT = ["apple", "banana", "cherry"]
VEG = ["carrot", "leek"]


async def setup_views(db: Database) -> None:
    design = {
        "_id": "_design/d",
        "language": "javascript",
        "views": {
            "by_type": {"map": BY_TYPE},
            "by_id": {"map": BY_ID},
            "count": {"map": BY_TYPE, "reduce": "_count"},
            "sum": {"map": BY_TYPE, "reduce": "_sum"},
        },
    }
    docs = [design, *({"_id": id, **fields} for id, fields in PRODUCE.items())]
    result = await db._bulk_docs(docs)
    assert all("rev" in item for item in result), result


@pytest.fixture
async def produce(database: Database, request_counter: RequestCounter) -> Database:
    await setup_views(database)
    request_counter.reset()
    return database


def query(path: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(path).query)


def view_path(db: Database, view: str) -> str:
    return f"/{quote(db.id, safe='')}/_design/d/_view/{view}"


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


# --- get() / post() and ViewResponse ---


async def test_get_returns_a_view_response_with_one_request(
    produce: Database, request_counter: RequestCounter
) -> None:
    response = await produce.view("d", "by_type").get()
    assert isinstance(response, ViewResponse)
    assert response.total_rows == 5
    assert response.offset == 0
    assert response.update_seq is None
    assert len(response.rows) == 5
    assert request_counter.requests == [("GET", view_path(produce, "by_type"))]


async def test_view_response_keys_are_document_ids(produce: Database) -> None:
    response = await produce.view("d", "by_type").get()
    assert list(response.keys()) == [*FRUIT, *VEG]


async def test_view_response_values_and_items(produce: Database) -> None:
    response = await produce.view("d", "by_type").get()
    assert list(response.values()) == [3, 1, 7, 5, 2]
    assert list(response.items()) == [
        ("fruit", 3),
        ("fruit", 1),
        ("fruit", 7),
        ("veg", 5),
        ("veg", 2),
    ]


async def test_equal_keys_emitted_by_several_documents_are_all_returned(
    produce: Database, request_counter: RequestCounter
) -> None:
    response = await produce.view("d", "by_type").get(key='"fruit"')
    assert list(response.keys()) == FRUIT
    assert {key for key, _ in response.items()} == {"fruit"}
    assert query(request_counter.requests[0][1]) == {"key": ['"fruit"']}


async def test_get_params_are_sent_verbatim(
    produce: Database, request_counter: RequestCounter
) -> None:
    response = await produce.view("d", "by_type").get(startkey='"g"', endkey='"z"', limit=1)
    assert list(response.keys()) == ["carrot"]
    assert query(request_counter.requests[0][1]) == {
        "startkey": ['"g"'],
        "endkey": ['"z"'],
        "limit": ["1"],
    }


async def test_get_with_keys_as_a_json_string_keeps_their_order(
    produce: Database, request_counter: RequestCounter
) -> None:
    response = await produce.view("d", "by_type").get(keys='["veg", "fruit"]')
    assert list(response.keys()) == [*VEG, *FRUIT]
    assert query(request_counter.requests[0][1]) == {"keys": ['["veg", "fruit"]']}


async def test_descending_reverses_the_rows(produce: Database) -> None:
    response = await produce.view("d", "by_type").get(descending=True)
    assert list(response.keys()) == [*reversed(VEG), *reversed(FRUIT)]


async def test_post_sends_keys_in_the_body_and_keeps_their_order(
    produce: Database, request_counter: RequestCounter
) -> None:
    response = await produce.view("d", "by_type").post(["veg", "nothing", "fruit"])
    assert isinstance(response, ViewResponse)
    assert list(response.keys()) == [*VEG, *FRUIT]
    assert request_counter.requests == [("POST", view_path(produce, "by_type"))]


async def test_post_with_params_puts_them_in_the_query(
    produce: Database, request_counter: RequestCounter
) -> None:
    response = await produce.view("d", "by_type").post(["fruit"], limit=2)
    assert list(response.keys()) == FRUIT[:2]
    assert query(request_counter.requests[0][1]) == {"limit": ["2"]}


async def test_include_docs_makes_view_response_docs_yield_clean_documents(
    produce: Database,
) -> None:
    response = await produce.view("d", "by_type").get(include_docs=True, key='"veg"')
    docs = [doc for doc in response.docs()]
    assert [doc.id for doc in docs] == VEG
    assert all(type(doc) is Document for doc in docs)
    assert [doc["value"] for doc in docs] == [5, 2]
    assert all(doc.exists and not doc._dirty_cache for doc in docs)


async def test_view_response_iterators_are_plain_generators_as_in_4_0_1(
    produce: Database, request_counter: RequestCounter
) -> None:
    view = produce.view("d", "by_type")
    # downstream code written for aiocouch 4.0.1 does exactly this
    assert [d.json for d in (await view.get(include_docs=True, key='"veg"')).docs()] == [
        PRODUCE["carrot"],
        PRODUCE["leek"],
    ]
    response = await view.get(include_docs=True)
    request_counter.reset()
    ids, values, items, docs = [], [], [], []
    for doc_id in response.keys():  # noqa: SIM118 - a ViewResponse is not a dict
        ids.append(doc_id)
    for value in response.values():
        values.append(value)
    for item in response.items():
        items.append(item)
    for doc in response.docs():
        docs.append(doc)
    assert ids == [*FRUIT, *VEG]
    assert values == [3, 1, 7, 5, 2]
    assert items == [("fruit", 3), ("fruit", 1), ("fruit", 7), ("veg", 5), ("veg", 2)]
    assert [doc.id for doc in docs] == ids
    assert request_counter.count == 0  # the rows are held: iterating sends nothing


async def test_view_response_docs_without_include_docs_raises_key_error(
    produce: Database,
) -> None:
    response = await produce.view("d", "by_type").get()
    with pytest.raises(KeyError):
        list(response.docs())


async def test_update_seq_is_returned_when_asked(produce: Database) -> None:
    response = await produce.view("d", "by_type").get(update_seq=True)
    assert response.update_seq is not None
    assert len(response.rows) == 5


async def test_view_response_of_all_docs_keys_skip_missing_ids(
    produce: Database, request_counter: RequestCounter
) -> None:
    response = await produce.all_docs.post(["leek", "nobody", "apple"])
    assert list(response.keys()) == ["leek", "apple"]
    assert request_counter.requests == [("POST", f"/{produce.id}/_all_docs")]


async def test_view_response_docs_raise_not_found_for_missing_and_deleted_rows(
    produce: Database,
) -> None:
    await (await produce.get("leek")).delete()
    for missing in ("nobody", "leek"):
        response = await produce.all_docs.post(["apple", missing], include_docs=True)
        seen: list[str] = []
        with pytest.raises(NotFoundError):
            for doc in response.docs():
                seen.append(doc.id)
        assert seen == ["apple"]


async def test_view_response_docs_with_create_yield_new_documents_for_missing_rows(
    produce: Database,
) -> None:
    response = await produce.all_docs.post(["nobody", "apple"], include_docs=True)
    docs = list(response.docs(create=True))
    assert [doc.id for doc in docs] == ["nobody", "apple"]
    assert not docs[0].exists
    assert dict(docs[0]) == {"_id": "nobody"}
    assert docs[1].json == PRODUCE["apple"]


async def test_view_response_docs_skip_design_docs_unless_asked(produce: Database) -> None:
    response = await produce.all_docs.get(include_docs=True)
    assert [doc.id for doc in response.docs()] == sorted(PRODUCE)
    with_ddocs = [doc.id for doc in response.docs(include_ddocs=True)]
    assert with_ddocs == ["_design/d", *sorted(PRODUCE)]


def test_view_response_is_a_frozen_dataclass(database: Database) -> None:
    response = ViewResponse(_database=database, offset=0, rows=[], total_rows=0)
    assert response.update_seq is None
    reduced = ViewResponse(_database=database, rows=[{"key": None, "value": 3}])
    assert (reduced.offset, reduced.total_rows) == (None, None)
    assert list(reduced.values()) == [3]
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.rows = []  # type: ignore[misc]


# --- reduce views (fixed defect: no TypeError, offset/total_rows None) ---


async def test_count_reduce_without_group(produce: Database) -> None:
    response = await produce.view("d", "count").get()
    assert response.offset is None
    assert response.total_rows is None
    assert list(response.values()) == [5]
    assert list(response.items()) == [(None, 5)]


async def test_count_reduce_grouped_by_key(produce: Database) -> None:
    response = await produce.view("d", "count").get(group=True)
    assert list(response.items()) == [("fruit", 3), ("veg", 2)]
    assert response.total_rows is None


async def test_sum_reduce_grouped_and_with_a_key(produce: Database) -> None:
    grouped = await produce.view("d", "sum").get(group=True)
    assert list(grouped.items()) == [("fruit", 11), ("veg", 7)]
    one = await produce.view("d", "sum").get(key='"veg"')
    assert list(one.values()) == [7]


async def test_reduce_view_posted_keys_with_group(produce: Database) -> None:
    response = await produce.view("d", "sum").post(["veg", "fruit"], group=True)
    assert list(response.items()) == [("veg", 7), ("fruit", 11)]


async def test_reduce_false_returns_the_map_rows(produce: Database) -> None:
    response = await produce.view("d", "count").get(reduce=False)
    assert response.total_rows == 5
    assert list(response.keys()) == [*FRUIT, *VEG]


async def test_reduce_view_streamed_values_and_items(produce: Database) -> None:
    view = produce.view("d", "sum")
    assert await collect(view.avalues(group=True)) == [11, 7]
    assert await collect(view.aitems(group=True)) == [("fruit", 11), ("veg", 7)]


# --- streamed iterators ---


async def test_akeys_yields_document_ids_with_one_request(
    produce: Database, request_counter: RequestCounter
) -> None:
    assert await collect(produce.view("d", "by_type").akeys()) == [*FRUIT, *VEG]
    assert request_counter.requests == [("GET", view_path(produce, "by_type"))]


async def test_akeys_passes_params(produce: Database, request_counter: RequestCounter) -> None:
    ids = await collect(produce.view("d", "by_type").akeys(key='"veg"', descending=True))
    assert ids == list(reversed(VEG))
    assert query(request_counter.requests[0][1]) == {"key": ['"veg"'], "descending": ["true"]}


async def test_avalues_and_aitems(produce: Database, request_counter: RequestCounter) -> None:
    view = produce.view("d", "by_type")
    assert await collect(view.avalues()) == [3, 1, 7, 5, 2]
    assert await collect(view.aitems(key='"veg"')) == [("veg", 5), ("veg", 2)]
    assert request_counter.count == 2


async def test_ids_without_arguments_gets_every_row(
    produce: Database, request_counter: RequestCounter
) -> None:
    # Map functions do not see design documents.
    assert await collect(produce.view("d", "by_id").ids()) == sorted(PRODUCE)
    assert request_counter.requests == [("GET", view_path(produce, "by_id"))]


async def test_ids_with_ids_posts_keys_and_skips_keys_nobody_emits(
    produce: Database, request_counter: RequestCounter
) -> None:
    ids = await collect(produce.view("d", "by_id").ids(["leek", "nobody", "apple"]))
    assert ids == ["leek", "apple"]
    assert request_counter.requests == [("POST", view_path(produce, "by_id"))]


async def test_ids_with_prefix(produce: Database) -> None:
    assert await collect(produce.view("d", "by_id").ids(prefix="c")) == ["carrot", "cherry"]
    assert await collect(produce.view("d", "by_type").ids(prefix="fr")) == FRUIT


async def test_docs_yields_clean_documents_of_the_rows(
    produce: Database, request_counter: RequestCounter
) -> None:
    docs = await collect(produce.view("d", "by_type").docs())
    assert [doc.id for doc in docs] == [*FRUIT, *VEG]
    assert docs[0].json == PRODUCE["apple"]
    assert all(not doc._dirty_cache for doc in docs)
    [(method, path)] = request_counter.requests
    assert method == "GET"
    assert query(path) == {"include_docs": ["true"]}


async def test_docs_with_ids_skips_keys_nobody_emits(produce: Database) -> None:
    docs = await collect(produce.view("d", "by_id").docs(["stone", "nobody", "banana"]))
    assert [doc.id for doc in docs] == ["stone", "banana"]
    assert docs[0]["weight"] == 9


async def test_docs_with_prefix_and_params(produce: Database) -> None:
    docs = await collect(produce.view("d", "by_type").docs(prefix="ve", limit=1))
    assert [doc.id for doc in docs] == VEG[:1]


async def test_docs_skip_deleted_documents(produce: Database) -> None:
    doc = await produce.get("banana")
    await doc.delete()
    assert await collect(produce.view("d", "by_type").akeys(key='"fruit"')) == ["apple", "cherry"]
    assert [d.id for d in await collect(produce.view("d", "by_id").docs(["banana", "apple"]))] == [
        "apple"
    ]


@pytest.mark.parametrize("params", [{"key": '"fruit"'}, {"keys": '["fruit"]'}])
async def test_ids_and_docs_reject_key_and_keys(
    produce: Database, request_counter: RequestCounter, params: dict[str, str]
) -> None:
    view = produce.view("d", "by_type")
    with pytest.raises(AttributeError):
        await collect(view.ids(**params))
    with pytest.raises(AttributeError):
        await collect(view.docs(**params))
    assert request_counter.count == 0


async def test_docs_rejects_prefix_with_ids_or_create(
    produce: Database, request_counter: RequestCounter
) -> None:
    view = produce.view("d", "by_id")
    with pytest.raises(ValueError):
        await collect(view.docs(["apple"], prefix="a"))
    with pytest.raises(ValueError):
        await collect(view.docs(prefix="a", create=True))
    with pytest.raises(ValueError):
        await collect(view.ids(["apple"], prefix="a"))
    assert request_counter.count == 0


async def test_streamed_rows_of_a_large_view(database: Database) -> None:
    await setup_views(database)
    docs = [{"_id": f"n{i:05d}", "type": "num", "value": i} for i in range(1000)]
    await database._bulk_docs(docs)
    view = database.view("d", "by_type")
    values = await collect(view.avalues(key='"num"'))
    assert values == list(range(1000))


# --- missing views ---


async def test_missing_view_raises_not_found(produce: Database) -> None:
    with pytest.raises(NotFoundError) as info:
        await produce.view("d", "missing").get()
    assert info.value.status == 404
    with pytest.raises(NotFoundError):
        await produce.view("d", "missing").post(["x"])


async def test_missing_design_doc_raises_not_found_when_iterating(produce: Database) -> None:
    with pytest.raises(NotFoundError):
        await collect(produce.view("nope", "v").akeys())
    with pytest.raises(NotFoundError):
        await collect(produce.view("nope", "v").docs())


# --- the View object ---


def test_view_attributes_and_no_request(
    database: Database, request_counter: RequestCounter
) -> None:
    view = View(database, "d", "by_type")
    assert view.design_doc == "d"
    assert view.id == "by_type"
    assert view.prefix_sentinel == "\uffff"
    assert view.endpoint == view_path(database, "by_type")
    assert request_counter.count == 0


def test_view_names_are_quoted_in_the_path(database: Database) -> None:
    view = database.view("a/b", "c d")
    assert view.endpoint == f"/{database.id}/_design/a%2Fb/_view/c%20d"


async def test_views_work_in_a_database_with_reserved_characters(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    name = f"aiocouch_test_{uuid.uuid4().hex}/x+y(z)$"
    db = await couchdb.create(name)
    try:
        await setup_views(db)
        request_counter.reset()
        view = db.view("d", "by_type")
        assert list((await view.get(key='"veg"')).keys()) == VEG
        assert await collect(view.akeys(key='"fruit"')) == FRUIT
        assert [doc.id for doc in await collect(view.docs(prefix="v"))] == VEG
        assert {urlsplit(path).path for _, path in request_counter.requests} == {
            view_path(db, "by_type")
        }
    finally:
        with contextlib.suppress(Exception):
            await db.delete()


# --- View.query(): options as Python values, keys JSON-encoded (transcript section 7) ---

# The design document of transcript 7.1 over the documents of transcript 6.2.
QUERY_DESIGN = {
    "_id": "_design/d",
    "language": "javascript",
    "views": {
        "by_id": {"map": "function(doc) { emit(doc._id, null); }"},
        "by_value": {"map": "function(doc) { if (doc.value !== undefined) emit(doc.value, doc); }"},
        "count": {
            "map": "function(doc) { emit([doc.type, doc.color], doc.value); }",
            "reduce": "_count",
        },
        "sum": {
            "map": "function(doc) { emit([doc.type, doc.color], doc.value); }",
            "reduce": "_sum",
        },
        "js_reduce": {
            "map": "function(doc) { emit(doc.type, doc.value); }",
            "reduce": "function(keys, values, rereduce) { return sum(values); }",
        },
    },
}
BY_VALUE = ["banana", "leek", "apple", "pear", "cherry", "tomato"]


@pytest.fixture
async def transcript_db(database: Database, request_counter: RequestCounter) -> Database:
    await write_to_every_copy(database, [QUERY_DESIGN, *TRANSCRIPT_DOCUMENTS])
    request_counter.reset()
    return database


async def ids(rows: AsyncIterator[Any]) -> list[str]:
    return [row["id"] async for row in rows]


async def test_query_encodes_a_number_key_and_streams_rows(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    # transcript 7.4
    rows = transcript_db.view("d", "by_value").query(key=3)
    assert request_counter.count == 0
    found = await collect(rows)
    assert [(row["id"], row["key"], row["value"]["color"]) for row in found] == [
        ("apple", 3, "red")
    ]
    assert rows.total_rows == 6
    [(method, path)] = request_counter.requests
    assert (method, urlsplit(path).path) == ("GET", view_path(transcript_db, "by_value"))
    assert query(path) == {"key": ["3"]}


async def test_query_encodes_string_keys_and_a_range(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    by_id = transcript_db.view("d", "by_id")
    assert await ids(by_id.query(startkey="b", endkey="c")) == ["banana"]
    assert query(request_counter.requests[0][1]) == {"startkey": ['"b"'], "endkey": ['"c"']}
    # transcript 7.7, in the other spelling of the same options
    by_value = transcript_db.view("d", "by_value")
    assert await ids(by_value.query(start_key=2, end_key=4)) == ["leek", "apple", "pear"]
    assert query(request_counter.requests[1][1]) == {"start_key": ["2"], "end_key": ["4"]}


async def test_query_with_keys_posts_them_and_keeps_their_order(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    # transcripts 7.5 and 7.6: a key nothing emits gives no row
    rows = transcript_db.view("d", "by_value").query(keys=[3, 99, 1], include_docs=True)
    found = await collect(rows)
    assert [row["id"] for row in found] == ["apple", "banana"]
    assert found[0]["doc"]["_id"] == "apple"
    [(method, path)] = request_counter.requests
    assert (method, query(path)) == ("POST", {"include_docs": ["true"]})


async def test_query_with_compound_and_null_keys(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    count = transcript_db.view("d", "count")
    rows = count.query(reduce=False, startkey=["fruit", "red"], endkey=["fruit", "red", {}])
    assert sorted(await ids(rows)) == ["apple", "cherry"]
    assert query(request_counter.requests[0][1]) == {
        "reduce": ["false"],
        "startkey": ['["fruit","red"]'],
        "endkey": ['["fruit","red",{}]'],
    }
    assert await collect(transcript_db.view("d", "by_value").query(key=None)) == []
    assert query(request_counter.requests[1][1]) == {"key": ["null"]}


async def test_query_limit_skip_descending_and_include_docs(transcript_db: Database) -> None:
    by_id = transcript_db.view("d", "by_id")
    # transcripts 7.8 and 7.9
    assert await ids(by_id.query(limit=2, skip=1)) == ["banana", "cherry"]
    assert await ids(by_id.query(descending=True, limit=2)) == ["tomato", "pear"]
    # transcript 7.3
    rows = await collect(transcript_db.view("d", "by_value").query(include_docs=True, limit=2))
    assert [(row["key"], row["doc"]["_id"]) for row in rows] == [(1, "banana"), (2, "leek")]


@pytest.mark.couchdb_only(
    "pouchdb-server gives offset 0 for keyed and ranged queries (DIFF 7.4, 7.7); "
    "transcripts 7.4, 7.7"
)
async def test_query_offset_is_the_position_of_the_first_row(transcript_db: Database) -> None:
    by_value = transcript_db.view("d", "by_value")
    rows = by_value.query(key=3)
    await collect(rows)
    assert (rows.total_rows, rows.offset) == (6, 2)
    rows = by_value.query(startkey=2, endkey=4)
    await collect(rows)
    assert (rows.total_rows, rows.offset) == (6, 1)


async def test_query_reduce_grouped_by_level(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    # transcripts 7.10, 7.12, 7.13, 7.14, 7.15
    count = transcript_db.view("d", "count")
    rows = count.query()
    assert await collect(rows) == [{"key": None, "value": 6}]
    assert (rows.total_rows, rows.offset) == (None, None)
    grouped = await collect(count.query(group=True))
    assert [(row["key"], row["value"]) for row in grouped] == [
        (["fruit", "green"], 1),
        (["fruit", "red"], 2),
        (["fruit", "yellow"], 1),
        (["veg", "green"], 1),
        (["veg", "red"], 1),
    ]
    assert await collect(count.query(group_level=1)) == [
        {"key": ["fruit"], "value": 4},
        {"key": ["veg"], "value": 2},
    ]
    assert query(request_counter.requests[-1][1]) == {"group_level": ["1"]}
    assert await collect(transcript_db.view("d", "sum").query(group_level=1)) == [
        {"key": ["fruit"], "value": 13},
        {"key": ["veg"], "value": 8},
    ]
    assert await collect(transcript_db.view("d", "js_reduce").query(group=True)) == [
        {"key": "fruit", "value": 13},
        {"key": "veg", "value": 8},
    ]


async def test_group_level_with_4_0_1_get_as_well(transcript_db: Database) -> None:
    response = await transcript_db.view("d", "sum").get(group_level=1)
    assert list(response.items()) == [(["fruit"], 13), (["veg"], 8)]
    assert response.total_rows is None


async def test_query_reduce_false_gives_the_map_rows(transcript_db: Database) -> None:
    # transcript 7.11
    rows = transcript_db.view("d", "count").query(reduce=False, limit=2)
    assert [(row["id"], row["key"], row["value"]) for row in await collect(rows)] == [
        ("pear", ["fruit", "green"], 4),
        ("apple", ["fruit", "red"], 3),
    ]
    assert rows.total_rows == 6


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        ({"update": False}, {"update": ["false"]}),
        ({"update": "lazy"}, {"update": ["lazy"]}),
        ({"update": True, "stable": True}, {"update": ["true"], "stable": ["true"]}),
    ],
)
async def test_query_update_options_are_sent_and_answered(
    transcript_db: Database,
    request_counter: RequestCounter,
    options: dict[str, Any],
    sent: dict[str, list[str]],
) -> None:
    by_id = transcript_db.view("d", "by_id")
    # Build the index first: update=false reads it as it is (transcript 7.18).
    assert len(await collect(by_id.query())) == 6
    request_counter.reset()
    assert len(await collect(by_id.query(limit=1, **options))) == 1
    assert query(request_counter.requests[0][1]) == {"limit": ["1"], **sent}


@pytest.mark.couchdb_only(
    "pouchdb-server ignores update=false and update=lazy; CouchDB reads the index as it is "
    "(transcript 7.18)"
)
async def test_update_false_and_lazy_read_the_index_as_it_is(transcript_db: Database) -> None:
    # Without autoupdate the background indexer leaves this index alone, so only the
    # queries below update it.
    design = {"_id": "_design/manual", "autoupdate": False, "views": QUERY_DESIGN["views"]}
    copies = await every_copy(transcript_db)
    await transcript_db._bulk_docs([design], **copies)
    by_id = transcript_db.view("manual", "by_id")
    assert len(await collect(by_id.query())) == 6
    await transcript_db._bulk_docs([{"_id": "zucchini"}], **copies)
    assert "zucchini" not in await ids(by_id.query(update=False))
    assert "zucchini" not in await ids(by_id.query(update="lazy"))
    # The default (update=true) brings the index up to date before answering.
    assert "zucchini" in await ids(by_id.query())


async def test_query_options_are_checked_before_any_request(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    view = transcript_db.view("d", "by_value")
    with pytest.raises(TypeError):
        view.query(key=object())
    with pytest.raises(TypeError):
        view.query(bogus=1)
    with pytest.raises(ValueError):
        view.query(key=1, keys=[1])
    with pytest.raises(ValueError):
        view.query(update="sometimes")
    assert request_counter.count == 0


async def test_query_of_a_missing_view_raises_not_found(transcript_db: Database) -> None:
    # transcripts 7.22 and 7.23
    with pytest.raises(NotFoundError):
        await collect(transcript_db.view("d", "missing_view").query())
    with pytest.raises(NotFoundError):
        await collect(transcript_db.view("missing", "v").query())


async def test_query_of_all_docs_encodes_ids_as_keys(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    # transcript 5.15: _all_docs ranges are JSON too
    rows = transcript_db.all_docs.query(startkey="b", endkey="c")
    assert await ids(rows) == ["banana"]
    assert query(request_counter.requests[0][1]) == {"startkey": ['"b"'], "endkey": ['"c"']}
    assert rows.total_rows == 7
    assert await ids(transcript_db.all_docs.query(keys=["pear", "apple"])) == ["pear", "apple"]


# --- View.queries(): several queries in one request ---


@pytest.mark.couchdb_only(
    "pouchdb-server has no view /queries (DIFF 7.28: 400 only_multipart_accepted); transcript 7.28"
)
async def test_queries_streams_each_result_in_order(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    view = transcript_db.view("d", "by_value")
    results = view.queries([ViewQuery(keys=[1, 5]), {"limit": 1, "descending": True}])
    assert request_counter.count == 0
    seen = []
    async for result in results:
        seen.append(([row["id"] async for row in result], result.total_rows, result.offset))
    assert seen == [(["banana", "cherry"], 6, 0), (["tomato"], 6, 0)]
    assert request_counter.requests == [("POST", view_path(transcript_db, "by_value") + "/queries")]


@pytest.mark.couchdb_only(
    "pouchdb-server has no view /queries (DIFF 7.28); transcripts 7.28 and 7.13"
)
async def test_queries_of_a_reduce_view_and_unread_results(transcript_db: Database) -> None:
    count = transcript_db.view("d", "count")
    results = count.queries([{"group_level": 1}, {"reduce": False}, {"key": ["veg", "red"]}])
    collected = []
    async for result in results:
        if result.query.reduce is False:
            continue  # its rows are skipped when the next result is taken
        collected.append(await collect(result))
    assert collected == [
        [{"key": ["fruit"], "value": 4}, {"key": ["veg"], "value": 2}],
        [{"key": None, "value": 1}],
    ]


@pytest.mark.couchdb_only(
    "pouchdb-server has no /{db}/_all_docs/queries (DIFF 5.29); transcript 5.29"
)
async def test_queries_of_all_docs(transcript_db: Database) -> None:
    results = transcript_db.all_docs.queries([{"keys": ["pear", "leek"]}, {"limit": 2}])
    assert [await ids(result) async for result in results] == [
        ["pear", "leek"],
        ["_design/d", "apple"],
    ]


# --- DesignDocument.design_info() ---


@pytest.mark.couchdb_only(
    'pouchdb-server answers _info with {"view_index": "Not implemented."} (DIFF 7.29); '
    "transcript 7.29"
)
async def test_design_info_tells_the_state_of_the_view_index(
    transcript_db: Database, request_counter: RequestCounter
) -> None:
    design = DesignDocument(transcript_db, "d")
    assert len(await collect(transcript_db.view("d", "by_id").query())) == 6
    request_counter.reset()
    info = await design.design_info()
    assert info.name == "d"
    index = info.view_index
    assert index["language"] == "javascript"
    assert isinstance(index["signature"], str) and index["signature"]
    assert index["sizes"]["file"] > 0
    assert index["updater_running"] in (True, False)
    assert set(index["updates_pending"]) == {"minimum", "preferred", "total"}
    assert request_counter.requests == [("GET", f"/{transcript_db.id}/_design/d/_info")]


@pytest.mark.couchdb_only("pouchdb-server answers 200 for any design document's _info (DIFF 7.29)")
async def test_design_info_of_a_missing_design_document_raises_not_found(
    transcript_db: Database,
) -> None:
    with pytest.raises(NotFoundError):
        await DesignDocument(transcript_db, "missing").design_info()
