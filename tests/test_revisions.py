"""Revisions: _bulk_get, _revs_diff, _missing_revs, open_revs, revs_info, revs and writes
with new_edits=false (aiocouch.revisions).

Against the test server, and on a scripted server where the point is the answer's
framing (streaming, a dropped result, a broken answer resumed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from aiocouch import (
    CouchDB,
    Database,
    Document,
    ForbiddenError,
    InvalidResponseError,
    NotFoundError,
    RevisionInfo,
    RevisionResult,
    RevsDiff,
)
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    CHUNKED_HEAD,
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunk,
    chunked,
    in_turn,
)

A, B, C = "a" * 32, "b" * 32, "c" * 32
TIMEOUT = 10.0


async def two_revisions(database: Database, id: str = "doc") -> tuple[Document, str]:
    """A document saved twice; returns it and its first revision."""
    document = Document(database, id, data={"v": 1})
    await document.save()
    first = document.rev
    assert first is not None
    document["v"] = 2
    await document.save()
    return document, first


# --- open_revs ---


async def test_open_revs_all_gives_the_current_leaf_with_its_body(
    database: Database, request_counter: RequestCounter
) -> None:
    document, _ = await two_revisions(database)
    request_counter.reset()
    results = await document.open_revs()
    assert request_counter.requests == [("GET", f"/{database.id}/doc?open_revs=all")]
    # Without it CouchDB answers multipart/mixed (transcript 4.15, 4.16).
    assert request_counter.headers[0][2]["Accept"] == "application/json"
    assert results == [RevisionResult("doc", document.rev, doc=dict(document))]
    assert results[0].ok and not results[0].deleted


async def test_open_revs_names_revisions_and_reports_the_unknown_one(
    database: Database,
) -> None:
    # transcript 4.17
    document, first = await two_revisions(database)
    unknown = "9-" + "f" * 32
    results = await document.open_revs([first, unknown], revs=True)
    # CouchDB lists them as asked; pouchdb-server as its lookups end (under load, the
    # missing one may come first).
    assert sorted((r.rev, r.ok, r.error) for r in results) == [
        (first, True, None),
        (unknown, False, "not_found"),
    ]
    found, missing = sorted(results, key=lambda result: result.rev or "")
    assert found.doc is not None
    assert found.doc["v"] == 1
    assert found.doc["_revisions"]["start"] == 1
    assert missing.reason == "missing"


async def test_open_revs_all_lists_both_leaves_of_a_conflict(database: Database) -> None:
    # transcript 4.19 (setup), 4.20
    assert (
        await database.save_revisions(
            [
                {"_id": "c", "_rev": f"1-{A}", "side": "a"},
                {"_id": "c", "_rev": f"1-{B}", "side": "b"},
            ]
        )
        == []
    )
    leaves = await Document(database, "c").open_revs()
    assert {(r.rev, r.doc["side"] if r.doc else None) for r in leaves} == {
        (f"1-{A}", "a"),
        (f"1-{B}", "b"),
    }
    assert await (await database.get("c")).conflicts() == [f"1-{A}"]


async def test_open_revs_includes_a_deleted_leaf(database: Database) -> None:
    # transcript 4.35
    document, _ = await two_revisions(database)
    await document.delete()
    [leaf] = await Document(database, "doc").open_revs()
    assert leaf.deleted
    assert leaf.rev is not None and leaf.rev.startswith("3-")


async def test_open_revs_of_a_document_that_never_existed_raises_not_found(
    database: Database,
) -> None:
    with pytest.raises(NotFoundError):
        await Document(database, "never").open_revs()


@pytest.mark.parametrize(
    ("open_revs", "error"), [("bad", ValueError), ([1], TypeError), (b"all", TypeError)]
)
async def test_open_revs_refuses_what_names_no_revisions_before_any_request(
    database: Database, request_counter: RequestCounter, open_revs: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await Document(database, "doc").open_revs(open_revs)
    assert request_counter.count == 0


# --- revs_info and revs ---


async def test_revs_info_lists_the_ancestry_newest_first_with_status(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 4.13
    document, first = await two_revisions(database)
    request_counter.reset()
    infos = await document.revs_info()
    assert request_counter.requests == [("GET", f"/{database.id}/doc?revs_info=true")]
    assert infos == [RevisionInfo(str(document.rev), "available"), RevisionInfo(first, "available")]
    assert await document.revs_info(first) == [RevisionInfo(first, "available")]


async def test_revision_history_gives_full_revisions_newest_first(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 4.12
    document, first = await two_revisions(database)
    request_counter.reset()
    assert await document.revision_history() == [document.rev, first]
    assert request_counter.requests == [("GET", f"/{database.id}/doc?revs=true")]
    assert await document.revision_history(first) == [first]


async def test_revision_history_of_a_revision_stored_with_new_edits_false(
    database: Database,
) -> None:
    # transcript 5.4, 5.5
    await database.save_revisions(
        [{"_id": "h", "_rev": f"3-{C}", "v": 3, "_revisions": {"start": 3, "ids": [C, B, A]}}]
    )
    document = await database.get("h")
    assert await document.revision_history() == [f"3-{C}", f"2-{B}", f"1-{A}"]
    # Only the leaf's body was stored: its ancestors are known by revision alone.
    assert [info.status for info in await document.revs_info()] == [
        "available",
        "missing",
        "missing",
    ]


# --- new_edits=false ---


async def test_save_revision_stores_the_revision_as_given(
    database: Database, request_counter: RequestCounter
) -> None:
    doc = {"_id": "r", "_rev": f"2-{B}", "x": 1, "_revisions": {"start": 2, "ids": [B, A]}}
    result = await database.save_revision(doc)
    assert result == {"ok": True, "id": "r", "rev": f"2-{B}"}
    assert request_counter.requests == [("PUT", f"/{database.id}/r?new_edits=false")]
    stored = await database.get("r")
    assert dict(stored) == {"_id": "r", "_rev": f"2-{B}", "x": 1}
    assert await stored.revision_history() == [f"2-{B}", f"1-{A}"]
    # Storing it again changes nothing.
    assert (await database.save_revision(doc))["rev"] == f"2-{B}"
    assert (await database.get("r")).rev == f"2-{B}"


async def test_save_revision_of_a_sibling_makes_a_conflict(database: Database) -> None:
    document = Document(database, "s", data={"mine": True})
    await document.save()
    theirs = f"1-{'f' * 32}"
    await database.save_revision({"_id": "s", "_rev": theirs, "mine": False})
    leaves = {result.rev for result in await document.open_revs()}
    assert leaves == {document.rev, theirs}


@pytest.mark.parametrize(
    "doc",
    [{"_id": "x"}, {"_rev": "1-a"}, {"_id": "x", "_rev": 1}, {"_id": "_bad", "_rev": "1-a"}],
)
async def test_saving_revisions_without_id_and_rev_raises_before_any_request(
    database: Database, request_counter: RequestCounter, doc: dict[str, Any]
) -> None:
    with pytest.raises((ValueError, TypeError)):
        await database.save_revision(doc)
    with pytest.raises((ValueError, TypeError)):
        await database.save_revisions([{"_id": "ok", "_rev": "1-a"}, doc])
    assert request_counter.count == 0


async def test_save_revisions_of_nothing_sends_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    assert await database.save_revisions([]) == []
    assert request_counter.count == 0


async def test_save_revisions_returns_the_items_a_validation_function_refused(
    database: Database,
) -> None:
    ddoc = await database.design_doc("v")
    ddoc["validate_doc_update"] = (
        "function(doc) { if (doc.bad) { throw({forbidden: 'no bad documents'}); } }"
    )
    await ddoc.save()
    refused = await database.save_revisions(
        [{"_id": "good", "_rev": f"1-{A}"}, {"_id": "bad", "_rev": f"1-{A}", "bad": True}]
    )
    assert [(item["id"], item["error"], item["reason"]) for item in refused] == [
        ("bad", "forbidden", "no bad documents")
    ]
    await database.get("good")
    with pytest.raises(ForbiddenError, match="no bad documents"):
        await database.save_revision({"_id": "bad", "_rev": f"1-{A}", "bad": True})


# --- _revs_diff and _missing_revs ---


async def test_revs_diff_lists_only_the_revisions_the_database_lacks(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 10.14
    document, _ = await two_revisions(database)
    unknown = f"9-{'f' * 32}"
    request_counter.reset()
    diff = await database.revs_diff(
        {"doc": [str(document.rev), unknown], "missing_doc": [f"1-{A}"]}
    )
    assert request_counter.requests == [("POST", f"/{database.id}/_revs_diff")]
    assert diff.keys() == {"doc", "missing_doc"}
    assert diff["doc"].missing == [unknown]
    assert diff["missing_doc"] == RevsDiff([f"1-{A}"])
    assert await database.revs_diff({"doc": [str(document.rev)]}) == {}


@pytest.mark.couchdb_only("pouchdb-server sends no possible_ancestors (DIFF 10.14)")
async def test_revs_diff_names_possible_ancestors(database: Database) -> None:
    # transcript 10.14: the current revision may be an ancestor of an unknown later one
    document, _ = await two_revisions(database)
    diff = await database.revs_diff({"doc": [f"9-{'f' * 32}"]})
    assert diff["doc"].possible_ancestors == [document.rev]


@pytest.mark.couchdb_only("pouchdb-server has no _missing_revs (DIFF 10.15)")
async def test_missing_revs_lists_the_revisions_the_database_lacks(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 10.15
    _, first = await two_revisions(database)
    unknown = f"9-{'f' * 32}"
    request_counter.reset()
    missing = await database.missing_revs({"doc": [first, unknown], "missing_doc": [f"1-{A}"]})
    assert request_counter.requests == [("POST", f"/{database.id}/_missing_revs")]
    assert missing == {"doc": [unknown], "missing_doc": [f"1-{A}"]}


@pytest.mark.parametrize(
    "revs", [["1-a"], {"doc": "1-a"}, {"doc": [1]}, {1: ["1-a"]}, {"": ["1-a"]}]
)
async def test_revs_diff_and_missing_revs_refuse_bad_input_before_any_request(
    database: Database, request_counter: RequestCounter, revs: Any
) -> None:
    with pytest.raises((TypeError, ValueError)):
        await database.revs_diff(revs)
    with pytest.raises((TypeError, ValueError)):
        await database.missing_revs(revs)
    assert await database.revs_diff({}) == {}
    assert await database.missing_revs({}) == {}
    assert request_counter.count == 0


# --- _bulk_get ---


async def test_bulk_get_gives_the_revisions_asked_for_in_order_with_history(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 5.11
    _, first_rev = await two_revisions(database, "one")
    second_doc, _ = await two_revisions(database, "two")
    request_counter.reset()
    results = [
        result
        async for result in database.bulk_get(["two", {"id": "one", "rev": first_rev}], revs=True)
    ]
    assert request_counter.requests == [("POST", f"/{database.id}/_bulk_get?revs=true")]
    assert [(r.id, r.rev) for r in results] == [("two", second_doc.rev), ("one", first_rev)]
    assert all(r.ok and r.doc is not None for r in results)
    assert results[0].doc == {**dict(second_doc), "_revisions": results[0].doc["_revisions"]}
    assert results[1].doc is not None
    assert results[1].doc["_revisions"] == {"start": 1, "ids": [first_rev[2:]]}


@pytest.mark.couchdb_only(
    "pouchdb-server merges requests for one id and answers {} for a missing or deleted "
    "document (DIFF 5.10)"
)
async def test_bulk_get_answers_every_request_with_a_document_or_an_error(
    database: Database,
) -> None:
    # transcript 5.10
    document, first = await two_revisions(database, "bulkA")
    gone = Document(database, "bulkC", data={"v": 1})
    await gone.save()
    await gone.delete()
    unknown = f"9-{'f' * 32}"
    results = [
        result
        async for result in database.bulk_get(
            [
                "bulkA",
                "missing_doc",
                {"id": "bulkA", "rev": first},
                {"id": "bulkA", "rev": unknown},
                "bulkC",
            ]
        )
    ]
    assert [(r.id, r.rev, r.ok, r.error, r.reason) for r in results] == [
        ("bulkA", document.rev, True, None, None),
        ("missing_doc", None, False, "not_found", "missing"),
        ("bulkA", first, True, None, None),
        ("bulkA", unknown, False, "not_found", "missing"),
        ("bulkC", results[4].rev, True, None, None),
    ]
    assert results[4].deleted


async def test_bulk_get_of_nothing_sends_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    assert [result async for result in database.bulk_get([])] == []
    assert request_counter.count == 0


@pytest.mark.parametrize("request_", [1, None, {"rev": "1-a"}, {"id": ""}, {"id": "x", "rev": 2}])
def test_bulk_get_refuses_requests_that_name_no_document_when_called(
    database: Database, request_counter: RequestCounter, request_: Any
) -> None:
    with pytest.raises((TypeError, ValueError)):
        database.bulk_get(["fine", request_])
    assert request_counter.count == 0


# --- _bulk_get: the answer as it arrives (scripted server, CouchDB's layout of 5.10) ---

Answer = Callable[[ReceivedRequest, ScriptedConnection], Any]


def result_line(id: str, rev: str) -> bytes:
    entry = {"id": id, "docs": [{"ok": {"_id": id, "_rev": rev}}]}
    return json.dumps(entry, separators=(",", ":")).encode()


def bulk_get_body(*lines: bytes) -> bytes:
    return b'{"results": [\r\n' + b",\r\n".join(lines) + b"\r\n]}\n"


async def test_bulk_get_hands_out_a_result_before_the_rest_of_the_answer_arrives(
    client_factory: Callable[..., CouchDB],
) -> None:
    handed_out = asyncio.Event()

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        first = b'{"results": [\r\n' + result_line("a", "1-x") + b",\r\n"
        await connection.send(CHUNKED_HEAD + chunk(first))
        await asyncio.wait_for(handed_out.wait(), TIMEOUT)
        rest = result_line("b", "1-y") + b"\r\n]}\n"
        await connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))

    async with ScriptedServer(answer) as server:
        db = Database(client_factory(server.url), "db")
        ids = []
        async for result in db.bulk_get(["a", "b"]):
            ids.append(result.id)
            handed_out.set()
        assert ids == ["a", "b"]


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([result_line("a", "1-x")], "holds 1 results for 2 requests"),
        ([result_line("a", "1-x"), result_line("c", "1-z")], "is for 'c', not for 'b'"),
        ([result_line("a", "1-x"), b'{"id":"b","docs":[{}]}'], "no 'ok', 'error' or 'missing'"),
        ([result_line("a", "1-x"), b'{"id":"b","docs":[]}'], "has no 'docs' answers"),
    ],
)
async def test_bulk_get_raises_for_a_request_left_unanswered_after_the_results_before(
    client_factory: Callable[..., CouchDB], lines: list[bytes], problem: str
) -> None:
    body = bulk_get_body(*lines)

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunked(body))

    async with ScriptedServer(answer) as server:
        db = Database(client_factory(server.url), "db")
        seen = []
        with pytest.raises(InvalidResponseError, match=problem):
            async for result in db.bulk_get(["a", "b"]):
                seen.append(result.id)
        assert seen == ["a"]


async def test_bulk_get_broken_midway_asks_only_for_the_documents_not_answered(
    client_factory: Callable[..., CouchDB],
) -> None:
    async def broken(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        part = b'{"results": [\r\n' + result_line("a", "1-x") + b",\r\n"
        await connection.send(CHUNKED_HEAD + chunk(part))
        connection.close()

    async def rest(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        body = bulk_get_body(result_line("b", "1-y"), result_line("c", "1-z"))
        await connection.send(CHUNKED_HEAD + chunked(body))

    async with ScriptedServer(in_turn(broken, rest)) as server:
        db = Database(client_factory(server.url), "db")
        results = [result async for result in db.bulk_get(["a", "b", {"id": "c"}], revs=True)]
        assert [r.id for r in results] == ["a", "b", "c"]
        first, second = server.requests
        assert first.target == second.target == "/db/_bulk_get?revs=true"
        assert json.loads(second.body) == {"docs": [{"id": "b"}, {"id": "c"}]}
