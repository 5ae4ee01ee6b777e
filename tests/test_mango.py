"""Mango through ``db.mango``: plain-JSON results, paging, warnings, statistics, plans, indexes.

The data are those of the transcript's section 6 (shared/couchdb/couchdb-3.4.3.md 6.2).
Writes go to every copy of a shard (``w`` = the database's ``n`` on CouchDB), so the
queries right after them see them on a cluster too.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import aiocouch.request
from aiocouch import (
    BadRequestError,
    CouchDB,
    Database,
    InvalidResponseError,
    NotFoundError,
    RemoteResponseError,
)
from aiocouch.mango import (
    ExecutionStats,
    IndexDeletions,
    MangoIndex,
    MangoQuery,
    MangoWarning,
    QueryPlan,
)
from aiocouch.retry import RetryPolicy
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    answering,
    error_answer,
    http_response,
    in_turn,
)
from testserver.transcript_documents import TRANSCRIPT_DOCUMENTS, write_to_every_copy

# Queries without an index warn; the tests about warnings catch them themselves.
pytestmark = pytest.mark.filterwarnings("ignore::aiocouch.mango.MangoWarning")

FIND = ("POST", "_find")

FRUIT = ["apple", "banana", "cherry", "pear"]
NO_INDEX = "No matching index found, create an index to optimize query time."
ALL_DOCS_INDEX = MangoIndex(
    ddoc=None, name="_all_docs", type="special", definition={"fields": [{"_id": "asc"}]}
)


@pytest.fixture
async def produce(database: Database, request_counter: RequestCounter) -> Database:
    await write_to_every_copy(database, TRANSCRIPT_DOCUMENTS)
    request_counter.reset()
    return database


async def by_value_index(db: Database) -> None:
    """The index of transcript 6.10: ``by-value`` in ``_design/idx``."""
    answer = await db.index({"fields": ["value"]}, name="by-value", ddoc="idx", type="json")
    assert answer["result"] == "created"


async def rows_of(query: MangoQuery) -> list[dict[str, Any]]:
    return [row async for row in query]


def finds(counter: RequestCounter) -> list[tuple[str, str]]:
    return [(method, path.rsplit("/", 1)[-1]) for method, path in counter.requests]


# --- results as plain JSON objects ---


async def test_find_with_fields_yields_plain_rows_of_those_fields(
    produce: Database, request_counter: RequestCounter
) -> None:
    # transcript 6.4
    query = produce.mango.find({"type": "fruit"}, fields=["_id", "value"])
    assert request_counter.count == 0
    rows = await rows_of(query)
    assert sorted(rows, key=lambda row: row["_id"]) == [
        {"_id": "apple", "value": 3},
        {"_id": "banana", "value": 1},
        {"_id": "cherry", "value": 5},
        {"_id": "pear", "value": 4},
    ]
    assert all(type(row) is dict for row in rows)
    assert finds(request_counter) == [FIND]


async def test_find_without_fields_yields_whole_documents_as_dicts(produce: Database) -> None:
    rows = await rows_of(produce.mango.find({"_id": "leek"}))
    [leek] = rows
    assert leek["_rev"].startswith("1-")
    assert {key: value for key, value in leek.items() if key != "_rev"} == TRANSCRIPT_DOCUMENTS[3]


async def test_fields_without_id_are_fine_here(produce: Database) -> None:
    # db.find() builds Documents and so refuses fields=; plain rows need no _id.
    rows = await rows_of(produce.mango.find({"type": "veg"}, fields=["color"]))
    assert sorted(row["color"] for row in rows) == ["green", "red"]
    assert all(set(row) == {"color"} for row in rows)


async def test_each_iteration_sends_the_query_again(
    produce: Database, request_counter: RequestCounter
) -> None:
    query = produce.mango.find({"type": "veg"}, fields=["_id"])
    first = await rows_of(query)
    second = await rows_of(query)
    assert sorted(row["_id"] for row in first) == sorted(row["_id"] for row in second)
    assert sorted(row["_id"] for row in first) == ["leek", "tomato"]
    assert finds(request_counter) == [FIND, FIND]


async def test_sort_with_an_index(produce: Database) -> None:
    # transcripts 6.10 and 6.14
    await by_value_index(produce)
    query = produce.mango.find(
        {"value": {"$gt": 2}}, sort=[{"value": "desc"}], fields=["_id", "value"]
    )
    assert await rows_of(query) == [
        {"_id": "tomato", "value": 6},
        {"_id": "cherry", "value": 5},
        {"_id": "pear", "value": 4},
        {"_id": "apple", "value": 3},
    ]


async def test_a_query_the_server_refuses_raises_bad_request(produce: Database) -> None:
    # transcripts 6.18 (invalid operator) and 6.9 (sort without an index): 400 on both
    with pytest.raises(BadRequestError):
        await rows_of(produce.mango.find({"value": {"$bogus": 1}}))
    with pytest.raises(BadRequestError):
        await rows_of(produce.mango.find({"type": "fruit"}, sort=[{"value": "asc"}]))


async def test_find_in_a_missing_database_raises_not_found(
    database: Database, request_counter: RequestCounter
) -> None:
    missing = Database(database._couchdb, database.id + "_missing")
    with pytest.raises(NotFoundError):
        await rows_of(missing.mango.find({"type": "fruit"}))


# --- limit and paging ---


async def test_limit_caps_the_results_in_one_request(
    produce: Database, request_counter: RequestCounter
) -> None:
    rows = await rows_of(produce.mango.find({"type": "fruit"}, fields=["_id"], limit=2))
    assert len(rows) == 2
    assert {row["_id"] for row in rows} < set(FRUIT)
    assert finds(request_counter) == [FIND]


@pytest.mark.parametrize(
    ("page_size", "requests"),
    [(1, 5), (2, 3), (3, 2), (4, 2), (5, 1)],
)
async def test_pages_of_page_size_bring_every_match_once(
    produce: Database, request_counter: RequestCounter, page_size: int, requests: int
) -> None:
    # CouchDB continues with each page's bookmark (transcripts 6.5-6.7), pouchdb-server
    # (no bookmark) with skip: either way each match comes once, and a full page is
    # followed by one more request, which may come back empty.
    query = produce.mango.find({"type": "fruit"}, fields=["_id"], page_size=page_size)
    rows = await rows_of(query)
    assert sorted(row["_id"] for row in rows) == FRUIT
    assert finds(request_counter) == [FIND] * requests


async def test_limit_over_several_pages(produce: Database, request_counter: RequestCounter) -> None:
    query = produce.mango.find({"type": "fruit"}, fields=["_id"], limit=3, page_size=2)
    rows = await rows_of(query)
    assert len({row["_id"] for row in rows}) == 3
    assert set(row["_id"] for row in rows) < set(FRUIT)
    assert finds(request_counter) == [FIND, FIND]


async def test_skip_applies_once_across_pages(produce: Database) -> None:
    await by_value_index(produce)
    query = produce.mango.find(
        {"value": {"$gt": 0}}, sort=[{"value": "asc"}], fields=["value"], skip=1, page_size=2
    )
    assert [row["value"] for row in await rows_of(query)] == [2, 3, 4, 5, 6]


async def test_limit_zero_sends_nothing(produce: Database, request_counter: RequestCounter) -> None:
    query = produce.mango.find({"type": "fruit"}, limit=0)
    assert await rows_of(query) == []
    assert request_counter.count == 0


async def test_leaving_the_iteration_early_keeps_what_was_read(
    produce: Database, request_counter: RequestCounter
) -> None:
    query = produce.mango.find({"type": "fruit"}, fields=["_id"], page_size=2)
    seen = []
    async for row in query:
        seen.append(row["_id"])
        if len(seen) == 3:
            break
    assert len(set(seen)) == 3
    assert finds(request_counter) == [FIND, FIND]


@pytest.mark.couchdb_only(
    "pouchdb-server sends no bookmark and ignores one (DIFF summary 5); transcripts 6.5-6.7"
)
async def test_a_bookmark_continues_where_an_earlier_query_stopped(produce: Database) -> None:
    selector = {"type": "fruit"}
    first = produce.mango.find(selector, fields=["_id"], limit=2)
    assert first.bookmark is None
    assert [row["_id"] for row in await rows_of(first)] == ["apple", "banana"]
    assert first.bookmark
    second = produce.mango.find(selector, fields=["_id"], limit=2, bookmark=first.bookmark)
    assert second.bookmark == first.bookmark
    assert [row["_id"] for row in await rows_of(second)] == ["cherry", "pear"]
    third = produce.mango.find(selector, fields=["_id"], limit=2, bookmark=second.bookmark)
    assert await rows_of(third) == []


@pytest.mark.couchdb_only(
    "pouchdb-server ignores an invalid bookmark (DIFF 6.8); transcript 6.8 (400)"
)
async def test_an_invalid_bookmark_raises_bad_request(produce: Database) -> None:
    with pytest.raises(BadRequestError) as info:
        await rows_of(produce.mango.find({"type": "fruit"}, bookmark="not-a-bookmark"))
    assert info.value.error == "invalid_bookmark"


# --- warnings ---


async def test_a_server_warning_is_issued_as_mango_warning_and_kept(produce: Database) -> None:
    # transcript 6.3 (both servers warn when no index serves the query)
    query = produce.mango.find({"type": "fruit"}, fields=["_id"])
    with pytest.warns(MangoWarning) as record:
        rows = await rows_of(query)
    assert len(rows) == 4
    assert [str(warning.message) for warning in record] == [NO_INDEX]
    assert record[0].filename == __file__  # attributed to the caller's ``async for``
    assert query.warnings == [NO_INDEX]


async def test_a_warning_repeated_on_every_page_is_issued_once(produce: Database) -> None:
    query = produce.mango.find({"type": "fruit"}, fields=["_id"], page_size=1)
    with pytest.warns(MangoWarning) as record:
        assert len(await rows_of(query)) == 4
    assert len(record) == 1
    assert query.warnings == [NO_INDEX]


async def test_no_warning_when_an_index_serves_the_query(produce: Database) -> None:
    await by_value_index(produce)
    query = produce.mango.find({"value": {"$gt": 4}}, fields=["_id"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", MangoWarning)
        assert sorted(row["_id"] for row in await rows_of(query)) == ["cherry", "tomato"]
    assert query.warnings == []


async def test_warnings_can_be_turned_into_errors(produce: Database) -> None:
    query = produce.mango.find({"type": "fruit"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", MangoWarning)
        with pytest.raises(MangoWarning, match="No matching index"):
            await rows_of(query)


async def test_database_find_logs_warnings_instead_of_warning(
    produce: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with warnings.catch_warnings(record=True) as issued:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING, logger="aiocouch.mango"):
            docs = [doc async for doc in produce.find({"type": "fruit"})]
    assert sorted(doc.id for doc in docs) == FRUIT
    assert [warning for warning in issued if warning.category is MangoWarning] == []
    assert [(record.name, record.levelno) for record in caplog.records] == [
        ("aiocouch.mango", logging.WARNING)
    ]
    assert NO_INDEX in caplog.records[0].getMessage()


@pytest.mark.couchdb_only(
    "pouchdb-server refuses a use_index naming a missing index (DIFF 6.17); transcript 6.17"
)
async def test_each_line_of_a_warning_is_one_warning(produce: Database) -> None:
    query = produce.mango.find({"type": "veg"}, fields=["_id"], use_index="nope")
    with pytest.warns(MangoWarning) as record:
        assert sorted(row["_id"] for row in await rows_of(query)) == ["leek", "tomato"]
    expected = [
        "_design/nope was not used because it does not contain a valid index for this query.",
        NO_INDEX,
    ]
    assert [str(warning.message) for warning in record] == expected
    assert query.warnings == expected


# --- execution statistics ---


async def test_execution_stats_are_none_before_iterating_and_without_asking(
    produce: Database,
) -> None:
    query = produce.mango.find({"color": "red"}, fields=["_id"], execution_stats=True)
    assert query.execution_stats is None
    plain = produce.mango.find({"color": "red"}, fields=["_id"])
    with pytest.warns(MangoWarning):
        await rows_of(plain)
    assert plain.execution_stats is None


@pytest.mark.couchdb_only("pouchdb-server ignores execution_stats (DIFF 6.16); transcript 6.16")
async def test_execution_stats_after_iterating(produce: Database) -> None:
    query = produce.mango.find({"color": "red"}, fields=["_id"], execution_stats=True)
    with pytest.warns(MangoWarning):
        rows = await rows_of(query)
    assert sorted(row["_id"] for row in rows) == ["apple", "cherry", "tomato"]
    stats = query.execution_stats
    assert isinstance(stats, ExecutionStats)
    assert stats.results_returned == 3
    assert stats.total_docs_examined >= 6
    assert stats.total_keys_examined >= 6
    assert stats.total_quorum_docs_examined == 0
    assert stats.execution_time_ms >= 0


@pytest.mark.couchdb_only("pouchdb-server ignores execution_stats (DIFF 6.16); transcript 6.16")
async def test_execution_stats_of_several_pages_are_summed(produce: Database) -> None:
    query = produce.mango.find({"color": "red"}, fields=["_id"], execution_stats=True, page_size=2)
    with pytest.warns(MangoWarning):
        assert len(await rows_of(query)) == 3
    stats = query.execution_stats
    assert stats is not None
    assert stats.results_returned == 3


# --- bad input ---


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"selector": "fruit"}, TypeError),
        ({"selector": ["type"]}, TypeError),
        ({"limit": -1}, ValueError),
        ({"limit": True}, TypeError),
        ({"skip": -2}, ValueError),
        ({"page_size": 0}, ValueError),
        ({"page_size": 1.5}, TypeError),
        ({"fields": "value"}, TypeError),
        ({"fields": ["value", 3]}, TypeError),
        ({"sort": "value"}, TypeError),
        ({"bookmark": 7}, TypeError),
        ({"use_index": ["idx", 1]}, TypeError),
        ({"execution_stats": "yes"}, TypeError),
        ({"conflicts": object()}, TypeError),
    ],
)
async def test_bad_input_raises_before_any_request(
    produce: Database,
    request_counter: RequestCounter,
    arguments: dict[str, Any],
    error: type[Exception],
) -> None:
    selector = arguments.pop("selector", {"type": "fruit"})
    with pytest.raises(error):
        produce.mango.find(selector, **arguments)
    if not set(arguments) & {"page_size", "bookmark", "execution_stats"}:
        with pytest.raises(error):
            await produce.mango.explain(selector, **arguments)
    assert request_counter.count == 0


# --- _explain ---


async def test_explain_names_the_index_a_query_would_use(
    produce: Database, request_counter: RequestCounter
) -> None:
    # transcript 6.15: the index and the selector are common to both servers
    await by_value_index(produce)
    request_counter.reset()
    plan = await produce.mango.explain({"value": {"$gt": 2}}, sort=[{"value": "asc"}])
    assert isinstance(plan, QueryPlan)
    index = plan.index
    assert (index.ddoc, index.name, index.type) == ("_design/idx", "by-value", "json")
    assert plan.index.definition == {"fields": [{"value": "asc"}]}
    assert plan.selector == {"value": {"$gt": 2}}
    assert plan.json["dbname"] == produce.id
    assert request_counter.requests == [("POST", f"/{produce.id}/_explain")]


@pytest.mark.couchdb_only("pouchdb-server explains in another shape (DIFF 6.15); transcript 6.15")
async def test_explain_on_couchdb_shows_limits_fields_and_candidates(produce: Database) -> None:
    await by_value_index(produce)
    plan = await produce.mango.explain(
        {"value": {"$gt": 2}}, sort=[{"value": "asc"}], fields=["_id"], limit=2, skip=1
    )
    assert (plan.json["limit"], plan.json["skip"], plan.json["fields"]) == (2, 1, ["_id"])
    assert plan.json["opts"]["sort"] == {"value": "asc"}
    candidates = plan.json["index_candidates"]
    assert [candidate["index"]["name"] for candidate in candidates] == ["_all_docs"]
    assert candidates[0]["analysis"]["usable"] is False
    assert plan.index.partitioned is False


async def test_explain_of_a_query_without_an_index_falls_back_to_all_docs(
    produce: Database,
) -> None:
    plan = await produce.mango.explain({"type": "fruit"})
    assert (plan.index.name, plan.index.type, plan.index.ddoc) == ("_all_docs", "special", None)


# --- the index list and deletion ---


def without_partitioned(index: MangoIndex) -> MangoIndex:
    # CouchDB says whether an index is partitioned, pouchdb-server does not (DIFF 6.13).
    return MangoIndex(index.ddoc, index.name, index.type, index.definition)


async def test_indexes_lists_all_docs_then_the_created_ones(
    produce: Database, request_counter: RequestCounter
) -> None:
    # transcript 6.13
    assert await produce.mango.indexes() == [ALL_DOCS_INDEX]
    await by_value_index(produce)
    await produce.index({"fields": ["color", "type"]}, name="by-color", ddoc="idx2")
    request_counter.reset()
    indexes = await produce.mango.indexes()
    assert without_partitioned(indexes[0]) == ALL_DOCS_INDEX
    assert sorted((without_partitioned(index) for index in indexes[1:]), key=str) == [
        MangoIndex("_design/idx", "by-value", "json", {"fields": [{"value": "asc"}]}),
        MangoIndex(
            "_design/idx2", "by-color", "json", {"fields": [{"color": "asc"}, {"type": "asc"}]}
        ),
    ]
    assert len(indexes) == 3
    assert request_counter.requests == [("GET", f"/{produce.id}/_index")]


@pytest.mark.couchdb_only("pouchdb-server cannot delete Mango indexes (DIFF 6.21: 500)")
async def test_delete_index_removes_it_and_a_second_delete_raises_not_found(
    produce: Database, request_counter: RequestCounter
) -> None:
    # transcripts 6.21 and 6.23
    await by_value_index(produce)
    request_counter.reset()
    await produce.mango.delete_index("idx", "by-value")
    assert request_counter.requests == [("DELETE", f"/{produce.id}/_index/idx/json/by-value")]
    assert await produce.mango.indexes() == [ALL_DOCS_INDEX]
    with pytest.raises(NotFoundError):
        await produce.mango.delete_index("idx", "by-value")


@pytest.mark.couchdb_only("pouchdb-server cannot delete Mango indexes (DIFF 6.21: 500)")
async def test_delete_index_takes_the_design_document_id_too(
    produce: Database, request_counter: RequestCounter
) -> None:
    # transcript 6.22: CouchDB wants the bare name; the client sends that
    await by_value_index(produce)
    request_counter.reset()
    await produce.mango.delete_index("_design/idx", "by-value")
    assert request_counter.requests == [("DELETE", f"/{produce.id}/_index/idx/json/by-value")]
    assert await produce.mango.indexes() == [ALL_DOCS_INDEX]


@pytest.mark.couchdb_only(
    "pouchdb-server cannot delete Mango indexes (DIFF 6.21: 500) and answers POST "
    "/{db}/_index/_bulk_delete with 400 only_multipart_accepted; no transcript block, "
    "CouchDB's documented answer"
)
async def test_delete_indexes_deletes_those_of_several_design_documents(
    produce: Database,
) -> None:
    await by_value_index(produce)
    await produce.index({"fields": ["color"]}, name="by-color", ddoc="idx2")
    await produce.index({"fields": ["type"]}, name="by-type", ddoc="idx3")
    result = await produce.mango.delete_indexes(["_design/idx", "idx2", "_design/missing"])
    assert sorted(result.deleted) == ["_design/idx", "_design/idx2"]
    assert list(result.failed) == ["_design/missing"]
    assert result.failed["_design/missing"]
    assert [index.name for index in await produce.mango.indexes()] == ["_all_docs", "by-type"]


@pytest.mark.parametrize(
    ("ddoc", "name", "kind", "error"),
    [
        ("", "by-value", "json", ValueError),
        ("_design/", "by-value", "json", ValueError),
        ("idx", "", "json", ValueError),
        ("idx", "by-value", "", ValueError),
        (None, "by-value", "json", TypeError),
        ("idx", 3, "json", TypeError),
    ],
)
async def test_delete_index_refuses_bad_names_before_any_request(
    produce: Database,
    request_counter: RequestCounter,
    ddoc: Any,
    name: Any,
    kind: str,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await produce.mango.delete_index(ddoc, name, type=kind)
    assert request_counter.count == 0


@pytest.mark.parametrize(
    ("ddocs", "w", "error"),
    [("idx", None, TypeError), (["idx", ""], None, TypeError), (["idx"], 0, ValueError)],
)
async def test_delete_indexes_refuses_bad_input_before_any_request(
    produce: Database,
    request_counter: RequestCounter,
    ddocs: Any,
    w: Any,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await produce.mango.delete_indexes(ddocs, w=w)
    assert request_counter.count == 0


async def test_index_names_are_quoted_in_the_path(
    produce: Database, request_counter: RequestCounter
) -> None:
    # A name with "/" or "?" must stay one path segment; there is no such index (on
    # pouchdb-server, which cannot delete indexes, no index at all).
    with pytest.raises(RemoteResponseError):
        await produce.mango.delete_index("a/b", "x?y")
    assert request_counter.requests[0] == (
        "DELETE",
        f"/{produce.id}/_index/a%2Fb/json/x%3Fy",
    )


# --- over a socket: what CouchDB sends that pouchdb-server does not (transcript 6.x) ---


def find_page(docs: list[dict[str, Any]], **meta: Any) -> bytes:
    """A ``_find`` answer as CouchDB 3.4 writes it: docs one per line, then the rest."""
    lines = ",\r\n".join(json.dumps(doc, separators=(",", ":")) for doc in docs)
    tail = "".join(f",\r\n{json.dumps(k)}:{json.dumps(v)}" for k, v in meta.items())
    return f'{{"docs":[\r\n{lines}\r\n]{tail}}}\r\n'.encode()


def pages(*bodies: bytes) -> Any:
    return in_turn(*(answering(http_response(200, body)) for body in bodies))


@pytest.fixture
def scripted_db(client_factory: Callable[..., CouchDB]) -> Callable[[ScriptedServer], Database]:
    return lambda server: Database(
        client_factory(server.url, retry=RetryPolicy(backoff=0.01)), "db"
    )


STATS = {
    "total_keys_examined": 4,
    "total_docs_examined": 4,
    "total_quorum_docs_examined": 0,
    "results_returned": 2,
    "execution_time_ms": 1.5,
}


async def test_pages_follow_bookmarks_and_skip_only_the_first_time(
    scripted_db: Callable[[ScriptedServer], Database],
) -> None:
    async with ScriptedServer(
        pages(
            find_page([{"_id": "a"}, {"_id": "b"}], bookmark="b1", warning=NO_INDEX),
            find_page(
                [{"_id": "c"}, {"_id": "d"}],
                bookmark="b2",
                execution_stats=STATS,
                warning=f"index nope was not used\n{NO_INDEX}",
            ),
            find_page([{"_id": "e"}], bookmark="b3", execution_stats={**STATS, "x": 1}),
        )
    ) as server:
        query = scripted_db(server).mango.find(
            {"n": {"$gt": 0}}, fields=["_id"], skip=3, page_size=2, execution_stats=True
        )
        with pytest.warns(MangoWarning) as record:
            assert [row["_id"] async for row in query] == list("abcde")
    bodies = [json.loads(request.body) for request in server.requests]
    base = {"selector": {"n": {"$gt": 0}}, "fields": ["_id"], "execution_stats": True}
    assert bodies == [
        {**base, "skip": 3, "limit": 2},
        {**base, "limit": 2, "bookmark": "b1"},
        {**base, "limit": 2, "bookmark": "b2"},
    ]
    assert query.bookmark == "b3"
    assert query.warnings == [NO_INDEX, "index nope was not used"]
    assert [str(warning.message) for warning in record] == query.warnings
    assert query.execution_stats == ExecutionStats(8, 8, 0, 4, 3.0)


async def test_database_find_keeps_sending_skip_with_bookmarks_as_4_0_1(
    scripted_db: Callable[[ScriptedServer], Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiocouch.request, "_DEFAULT_PAGE_SIZE", 2)
    async with ScriptedServer(
        pages(
            find_page([{"_id": "a"}, {"_id": "b"}], bookmark="b1"),
            find_page([{"_id": "c"}], bookmark="b2"),
        )
    ) as server:
        docs = [doc.id async for doc in scripted_db(server).find({"n": 1}, skip=1)]
    assert docs == ["a", "b", "c"]
    assert [json.loads(request.body) for request in server.requests] == [
        {"selector": {"n": 1}, "skip": 1, "limit": 2},
        {"selector": {"n": 1}, "skip": 1, "limit": 2, "bookmark": "b1"},
    ]


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"warning": 5}, "'warning' is not a string"),
        ({"bookmark": ["b"]}, "'bookmark' is not a string"),
        ({"execution_stats": [1]}, "'execution_stats' is not a JSON object"),
        ({"execution_stats": {"results_returned": "3"}}, "'results_returned' is not a number"),
    ],
)
async def test_a_page_with_malformed_fields_is_an_invalid_answer(
    scripted_db: Callable[[ScriptedServer], Database], meta: dict[str, Any], problem: str
) -> None:
    async with ScriptedServer(pages(find_page([{"_id": "a"}], **meta))) as server:
        query = scripted_db(server).mango.find({"n": 1})
        rows = []
        with pytest.raises(InvalidResponseError, match=problem):
            async for row in query:
                rows.append(row)
    assert rows == [{"_id": "a"}]  # the rows before the fault were handed out


async def test_a_deletion_whose_answer_was_lost_is_confirmed_by_the_404_of_its_repeat(
    scripted_db: Callable[[ScriptedServer], Database],
) -> None:
    async def lose_answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        connection.close()

    async with ScriptedServer(in_turn(lose_answer, error_answer(404))) as server:
        await scripted_db(server).mango.delete_index("idx", "by-value")
    assert [(r.method, r.target) for r in server.requests] == [
        ("DELETE", "/db/_index/idx/json/by-value")
    ] * 2


async def test_a_first_404_of_a_deletion_raises_not_found(
    scripted_db: Callable[[ScriptedServer], Database],
) -> None:
    async with ScriptedServer(error_answer(404)) as server:
        with pytest.raises(NotFoundError):
            await scripted_db(server).mango.delete_index("idx", "by-value")
    assert len(server.requests) == 1


async def test_bulk_deletion_reads_couchdbs_answer(
    scripted_db: Callable[[ScriptedServer], Database],
) -> None:
    # The documented answer of POST /{db}/_index/_bulk_delete
    answer = {
        "success": [{"id": "_design/a", "ok": True}],
        "fail": [{"id": "_design/missing", "error": "not_found"}],
    }
    async with ScriptedServer(answering(http_response(200, json.dumps(answer).encode()))) as server:
        result = await scripted_db(server).mango.delete_indexes(["a", "missing"], w=3)
    assert result == IndexDeletions(deleted=["_design/a"], failed={"_design/missing": "not_found"})
    [request] = server.requests
    assert (request.method, request.target) == ("POST", "/db/_index/_bulk_delete")
    assert json.loads(request.body) == {"docids": ["a", "missing"], "w": 3}


async def test_an_explanation_without_an_index_is_an_invalid_answer(
    scripted_db: Callable[[ScriptedServer], Database],
) -> None:
    async with ScriptedServer(answering(http_response(200, b'{"selector": {}}'))) as server:
        with pytest.raises(InvalidResponseError, match="'index'"):
            await scripted_db(server).mango.explain({"n": 1})
