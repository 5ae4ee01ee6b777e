"""Conflicts (aiocouch.conflicts): read-modify-write with retries on conflict, one document
and many, and conflicting revisions listed and resolved.

Against the test server through the public API. Real update conflicts come from a second
writer (another Document) or from callers racing; conflicted documents (several leaves)
are made with new_edits=false writes, as replication makes them (transcript 4.19, 4.20).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import pytest

from aiocouch import (
    BadRequestError,
    ConflictError,
    ConflictingRevisions,
    CouchDB,
    Database,
    Document,
    EditFailure,
    ForbiddenError,
    NotFoundError,
    Resolution,
    TooManyConflictsError,
)
from aiocouch.cluster import Quorum
from aiocouch.conflicts import DELETE, Deletion
from aiocouch.retry import RetryPolicy
from aiocouch.typing import JsonDict
from testserver.fault_proxy import FaultKind, FaultProxy
from testserver.request_counter import RequestCounter

A, B, C = "1-" + "a" * 32, "1-" + "b" * 32, "1-" + "c" * 32
TIMEOUT = 30.0
VALIDATE = """function(newDoc, oldDoc, userCtx) {
  if (newDoc.n > 5) { throw({forbidden: "n stays at most 5"}); }
}"""
VALIDATE_RESOLUTION = """function(newDoc, oldDoc, userCtx) {
  if (newDoc._deleted) { throw({forbidden: "deletions are refused"}); }
  if (newDoc.n > 5) { throw({forbidden: "n stays at most 5"}); }
}"""
CONFLICTS_VIEW = "function (doc) { if (doc._conflicts) { emit(null, null); } }"


async def saved(database: Database, id: str, **data: Any) -> Document:
    document = Document(database, id, data=dict(data))
    await document.save()
    return document


async def write_behind(database: Database, id: str, step: int = 100) -> None:
    """Another writer's change of ``id``: GET, PUT (``n`` grows by ``step``)."""
    other = Document(database, id)
    await other.fetch()
    other["n"] += step
    await other.save()


async def conflicted(database: Database, id: str = "doc", sides: str = "abc") -> None:
    """Document ``id`` with a first-generation leaf per side, as replication leaves it;
    the highest revision (the last side) wins."""
    await database.save_revisions(
        [{"_id": id, "_rev": f"1-{side * 32}", "side": side} for side in sides]
    )


async def leaves(database: Database, id: str) -> tuple[list[JsonDict], list[str]]:
    """The bodies of the live leaves of ``id``, and the revisions of its deleted leaves."""
    results = await Document(database, id).open_revs()
    live = [result.doc for result in results if result.doc is not None and not result.deleted]
    deleted = [str(result.rev) for result in results if result.deleted]
    return live, deleted


def paths(request_counter: RequestCounter) -> list[tuple[str, str]]:
    """The requests recorded, their query strings cut off."""
    return [(method, path.partition("?")[0]) for method, path in request_counter.requests]


# --- edit: one document ---


async def test_edit_reads_applies_and_saves(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved(database, "doc", n=1)
    request_counter.reset()

    def increment(doc: Document) -> None:
        doc["n"] += 1

    document = await database.edit("doc", increment)
    assert request_counter.requests == [
        ("GET", f"/{database.id}/doc"),
        ("PUT", f"/{database.id}/doc"),
    ]
    assert document["n"] == 2 and document.rev is not None and document.rev.startswith("2-")
    fetched = await database.get("doc")
    assert (fetched["n"], fetched.rev) == (2, document.rev)


async def test_edit_awaits_a_coroutine_function(database: Database) -> None:
    await saved(database, "doc", n=1)

    async def increment(doc: Document) -> None:
        await asyncio.sleep(0)
        doc["n"] += 1

    await database.edit("doc", increment)
    assert (await database.get("doc"))["n"] == 2


async def test_edit_of_a_missing_document_gets_an_empty_one_and_creates_it(
    database: Database,
) -> None:
    given: list[tuple[str | None, JsonDict]] = []

    def start(doc: Document) -> None:
        given.append((doc.rev, dict(doc)))
        doc["n"] = 1

    document = await database.edit("new", start)
    assert given == [(None, {"_id": "new"})]
    assert document.rev is not None and document.rev.startswith("1-")
    assert (await database.get("new"))["n"] == 1


async def test_edit_without_create_raises_not_found_and_calls_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    calls: list[Document] = []
    with pytest.raises(NotFoundError):
        await database.edit("missing", calls.append, create=False)
    assert calls == []
    assert request_counter.requests == [("GET", f"/{database.id}/missing")]


async def test_edit_that_changes_nothing_writes_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    original = await saved(database, "doc", n=1)
    request_counter.reset()

    def look(doc: Document) -> None:
        doc["n"] = 1  # the same value: no change

    document = await database.edit("doc", look)
    assert request_counter.requests == [("GET", f"/{database.id}/doc")]
    assert document.rev == original.rev


async def test_edit_that_leaves_a_missing_document_empty_creates_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await database.edit("ghost", lambda doc: None)
    assert request_counter.requests == [("GET", f"/{database.id}/ghost")]
    assert not document.exists and document.rev is None
    with pytest.raises(NotFoundError):
        await database.get("ghost")


async def test_edit_returning_delete_deletes_the_document(
    database: Database, request_counter: RequestCounter
) -> None:
    original = await saved(database, "doc", n=1)
    request_counter.reset()
    document = await database.edit("doc", lambda doc: DELETE)
    assert request_counter.requests == [
        ("GET", f"/{database.id}/doc"),
        ("DELETE", f"/{database.id}/doc?rev={original.rev}"),
    ]
    assert dict(document) == {"_id": "doc"} and not document.exists
    with pytest.raises(NotFoundError):
        await database.get("doc")


async def test_edit_returning_delete_for_a_missing_document_writes_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await database.edit("missing", lambda doc: DELETE)
    assert request_counter.requests == [("GET", f"/{database.id}/missing")]
    assert not document.exists


async def test_edit_recreates_a_deleted_document(database: Database) -> None:
    original = await saved(database, "doc", n=1)
    await original.delete()

    def restart(doc: Document) -> None:
        assert doc.rev is None  # a deleted document is given as a new one
        doc["n"] = 10

    document = await database.edit("doc", restart)
    assert document.rev is not None and document.rev.startswith("3-")
    assert (await database.get("doc"))["n"] == 10


async def test_concurrent_edits_all_count(database: Database) -> None:
    await saved(database, "counter", n=0)
    racers = 12
    first_reads: set[asyncio.Task[Any]] = set()
    all_read = asyncio.Event()
    calls = 0

    async def increment(doc: Document) -> None:
        nonlocal calls
        calls += 1
        task = asyncio.current_task()
        assert task is not None
        if task not in first_reads:
            # Every racer holds the same revision before any saves: all but one conflict.
            first_reads.add(task)
            if len(first_reads) == racers:
                all_read.set()
            await asyncio.wait_for(all_read.wait(), TIMEOUT)
        doc["n"] += 1

    # Each conflict means another racer saved, so `racers` attempts always suffice.
    await asyncio.gather(
        *(database.edit("counter", increment, attempts=racers) for _ in range(racers))
    )
    assert (await database.get("counter"))["n"] == racers
    assert calls >= 2 * racers - 1  # the racers that lost the first round edited again


async def test_edit_gives_up_after_its_attempts_naming_the_id(database: Database) -> None:
    await saved(database, "doc", n=0)
    calls = 0

    async def overtaken(doc: Document) -> None:
        nonlocal calls
        calls += 1
        await write_behind(database, "doc")
        doc["n"] += 1

    with pytest.raises(TooManyConflictsError) as raised:
        await database.edit("doc", overtaken, attempts=3)
    error = raised.value
    assert (error.id, error.attempts, calls) == ("doc", 3, 3)
    assert isinstance(error, ConflictError) and error.status == 409
    assert isinstance(error.__cause__, ConflictError)
    assert "'doc'" in str(error) and "3 attempts" in str(error)
    assert (await database.get("doc"))["n"] == 300  # only the other writer's changes


async def test_edit_that_raises_writes_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved(database, "doc", n=1)
    request_counter.reset()

    def broken(doc: Document) -> None:
        doc["n"] = 2
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        await database.edit("doc", broken)
    assert request_counter.requests == [("GET", f"/{database.id}/doc")]


async def test_edit_must_not_touch_id_or_rev_nor_return_anything_else(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved(database, "doc", n=1)
    request_counter.reset()

    def new_rev(doc: Document) -> None:
        doc["_rev"] = "9-" + "f" * 32

    with pytest.raises(ValueError, match="_id or _rev"):
        await database.edit("doc", new_rev)

    def returns_the_document(doc: Document) -> Any:
        doc["n"] = 2
        return doc

    with pytest.raises(TypeError, match=r"None \(save the changes\) or DELETE, not Document"):
        await database.edit("doc", returns_the_document)
    assert [method for method, _ in request_counter.requests] == ["GET", "GET"]
    assert (await database.get("doc"))["n"] == 1


@pytest.mark.parametrize(
    ("id", "options", "error"),
    [
        ("doc", {"attempts": 0}, ValueError),
        ("doc", {"attempts": True}, ValueError),
        ("doc", {"w": 0}, ValueError),
        ("", {}, ValueError),
        (7, {}, TypeError),
        ("_bad", {}, BadRequestError),
        ("_local/x", {}, ValueError),
    ],
)
async def test_edit_refuses_bad_arguments_before_any_request(
    database: Database,
    request_counter: RequestCounter,
    id: Any,
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await database.edit(id, lambda doc: None, **options)
    assert request_counter.requests == []


@pytest.mark.parametrize("fault", [FaultKind.RESET_AFTER_ANSWER, FaultKind.CUT_ANSWER])
async def test_edits_whose_answers_were_lost_are_applied_once(
    fault: FaultKind,
    server_url: str,
    admin_user: str,
    admin_password: str,
    database: Database,
    quorum: Quorum | None,
) -> None:
    await saved(database, "one", n=0)
    await saved(database, "many", n=0)
    calls: list[str] = []

    def increment(doc: Document) -> None:
        calls.append(doc.id)
        doc["n"] += 1

    async with FaultProxy(server_url) as proxy:
        async with CouchDB(
            proxy.url,
            user=admin_user,
            password=admin_password,
            retry=RetryPolicy(backoff=0.01, backoff_max=0.05),
            quorum=quorum,
        ) as client:
            through_proxy = Database(client, database.id)
            # The server applies each write, its answer never reaches the client: the
            # repeat's 409 is confirmed as this write, not taken for another writer's.
            proxy.force(fault, method="PUT", path=f"/{database.id}/one")
            one = await through_proxy.edit("one", increment)
            proxy.force(fault, method="POST", path=f"/{database.id}/_bulk_docs")
            results = await through_proxy.edit_many(["many"], increment)
        assert proxy.stats.faults == {fault: 2}
    assert calls == ["one", "many"]
    assert [doc.id for doc in results.saved] == ["many"] and results.failed == []
    for document in (one, results.saved[0]):
        fetched = await database.get(document.id)
        assert (fetched["n"], fetched.rev) == (1, document.rev)


# --- edit_many: many documents ---


async def test_edit_many_ends_every_id_in_exactly_one_list(
    database: Database, request_counter: RequestCounter
) -> None:
    for id in ("change", "remove", "keep", "raced"):
        await saved(database, id, n=1)
    request_counter.reset()
    calls: list[str] = []

    async def edit(doc: Document) -> Deletion | None:
        calls.append(doc.id)
        if doc.id == "remove":
            return DELETE
        if doc.id in ("keep", "ghost"):
            return None
        if doc.id == "raced" and calls.count("raced") == 1:
            await write_behind(database, "raced")
        doc["n"] = doc.get("n", 0) + 1
        return None

    ids = ["change", "new", "remove", "keep", "ghost", "raced"]
    results = await database.edit_many(ids, edit)

    assert [doc.id for doc in results.saved] == ["change", "new", "raced"]
    assert [doc.id for doc in results.deleted] == ["remove"]
    assert [doc.id for doc in results.unchanged] == ["keep", "ghost"]
    assert results.failed == []
    # Only the conflicted document was read and edited again, in a second round.
    assert calls == [*ids, "raced"]
    assert [request for request in paths(request_counter) if request[1].endswith("_docs")] == [
        ("POST", f"/{database.id}/_all_docs"),
        ("POST", f"/{database.id}/_bulk_docs"),
        ("POST", f"/{database.id}/_all_docs"),
        ("POST", f"/{database.id}/_bulk_docs"),
    ]
    for doc in results.saved:
        assert doc.rev == (await database.get(doc.id)).rev
    assert [(await database.get(id))["n"] for id in ("change", "new", "keep", "raced")] == [
        2,
        1,
        1,
        102,
    ]
    assert dict(results.deleted[0]) == {"_id": "remove"}
    for id in ("remove", "ghost"):
        with pytest.raises(NotFoundError):
            await database.get(id)


async def test_edit_many_without_create_fails_missing_and_deleted_ids(
    database: Database,
) -> None:
    await saved(database, "here", n=1)
    gone = await saved(database, "gone", n=1)
    await gone.delete()

    def increment(doc: Document) -> None:
        doc["n"] += 1

    results = await database.edit_many(["missing", "here", "gone"], increment, create=False)
    assert [doc.id for doc in results.saved] == ["here"]
    assert [(f.id, f.error) for f in results.failed] == [
        ("missing", "not_found"),
        ("gone", "not_found"),
    ]
    assert results.deleted == results.unchanged == []


async def test_edit_many_fails_the_ids_whose_attempts_ran_out(database: Database) -> None:
    await saved(database, "hot", n=0)
    await saved(database, "calm", n=0)
    calls: list[str] = []

    async def edit(doc: Document) -> None:
        calls.append(doc.id)
        if doc.id == "hot":
            await write_behind(database, "hot")
        doc["n"] += 1

    results = await database.edit_many(["hot", "calm"], edit, attempts=2)
    assert [doc.id for doc in results.saved] == ["calm"]
    [failure] = results.failed
    assert (failure.id, failure.error) == ("hot", "conflict")
    assert "2 attempts" in failure.reason
    assert calls == ["hot", "calm", "hot"]
    assert (await database.get("hot"))["n"] == 200


async def test_edit_many_reports_a_refusal_with_its_reason(database: Database) -> None:
    ddoc = await database.design_doc("validate")
    ddoc["validate_doc_update"] = VALIDATE
    await ddoc.save()
    await saved(database, "small", n=1)
    await saved(database, "big", n=5)

    def increment(doc: Document) -> None:
        doc["n"] += 1

    results = await database.edit_many(["small", "big"], increment)
    assert [doc.id for doc in results.saved] == ["small"]
    assert results.failed == [EditFailure("big", "forbidden", "n stays at most 5")]


async def test_edit_many_with_no_ids_sends_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    results = await database.edit_many([], lambda doc: None)
    assert (results.saved, results.deleted, results.unchanged, results.failed) == ([], [], [], [])
    assert request_counter.requests == []


@pytest.mark.parametrize(
    ("ids", "options", "error"),
    [
        (["a", "b", "a"], {}, ValueError),
        ("ab", {}, TypeError),
        (["a", 1], {}, TypeError),
        (["a", "_bad"], {}, BadRequestError),
        (["a"], {"attempts": 0}, ValueError),
    ],
)
async def test_edit_many_refuses_bad_arguments_before_any_request(
    database: Database,
    request_counter: RequestCounter,
    ids: Any,
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await database.edit_many(ids, lambda doc: None, **options)
    assert request_counter.requests == []


# --- conflicting revisions ---


async def test_conflicting_revisions_lists_every_leaf_with_its_body(
    database: Database, request_counter: RequestCounter
) -> None:
    await conflicted(database)
    request_counter.reset()
    found = await database.conflicting_revisions("doc")
    assert found.winner == {"_id": "doc", "_rev": C, "side": "c"}
    assert sorted(found.conflicts, key=lambda body: body["_rev"]) == [
        {"_id": "doc", "_rev": A, "side": "a"},
        {"_id": "doc", "_rev": B, "side": "b"},
    ]
    assert found.revisions[0] == found.winner and len(found.revisions) == 3
    assert request_counter.requests[0] == ("GET", f"/{database.id}/doc?conflicts=true")
    [(method, path)] = request_counter.requests[1:]
    path, _, query = path.partition("?")
    assert (method, path) == ("GET", f"/{database.id}/doc")
    params = urllib.parse.parse_qs(query)
    assert params.keys() == {"open_revs", "latest"} and params["latest"] == ["true"]
    assert sorted(json.loads(params["open_revs"][0])) == [A, B]


async def test_conflicting_revisions_of_a_clean_document_is_the_winner_alone(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved(database, "doc", n=1)
    request_counter.reset()
    found = await database.conflicting_revisions("doc")
    assert found == ConflictingRevisions("doc", {"_id": "doc", "_rev": document.rev, "n": 1}, [])
    assert request_counter.requests == [("GET", f"/{database.id}/doc?conflicts=true")]


async def test_conflicting_revisions_leaves_out_deleted_leaves(database: Database) -> None:
    await conflicted(database, sides="ab")
    # A deletion of the loser on its own branch: a leaf, but deleted.
    await database.save_revisions(
        [
            {
                "_id": "doc",
                "_rev": "2-" + "d" * 32,
                "_deleted": True,
                "_revisions": {"start": 2, "ids": ["d" * 32, "a" * 32]},
            }
        ]
    )
    found = await database.conflicting_revisions("doc")
    assert (found.winner["_rev"], found.conflicts) == (B, [])


async def test_conflicting_revisions_of_a_missing_document_raises(database: Database) -> None:
    with pytest.raises(NotFoundError):
        await database.conflicting_revisions("missing")


# --- resolution ---


async def test_resolve_conflicts_writes_a_merge_and_deletes_the_losers(
    database: Database, request_counter: RequestCounter
) -> None:
    await conflicted(database)
    request_counter.reset()
    given: list[list[JsonDict]] = []

    def merge(revisions: list[JsonDict]) -> JsonDict:
        given.append(revisions)
        return {"sides": sorted(body["side"] for body in revisions)}

    resolution = await database.resolve_conflicts("doc", merge)

    [revisions] = given
    assert revisions[0]["_rev"] == C
    assert sorted(body["_rev"] for body in revisions) == [A, B, C]
    assert resolution.rewritten and sorted(resolution.removed) == [A, B]
    assert resolution.rev.startswith("2-")
    assert resolution.winner == {"_id": "doc", "_rev": resolution.rev, "sides": ["a", "b", "c"]}
    assert paths(request_counter) == [
        ("GET", f"/{database.id}/doc"),
        ("GET", f"/{database.id}/doc"),
        ("PUT", f"/{database.id}/doc"),
        ("POST", f"/{database.id}/_bulk_docs"),
    ]
    live, deleted = await leaves(database, "doc")
    assert live == [resolution.winner]
    assert len(deleted) == 2
    assert (await database.conflicting_revisions("doc")).conflicts == []


async def test_resolve_conflicts_keeping_the_winner_only_deletes_the_others(
    database: Database, request_counter: RequestCounter
) -> None:
    await conflicted(database)
    request_counter.reset()
    resolution = await database.resolve_conflicts("doc", lambda revisions: revisions[0])
    assert resolution == Resolution("doc", {"_id": "doc", "_rev": C, "side": "c"}, [A, B], False)
    assert [method for method, _ in request_counter.requests] == ["GET", "GET", "POST"]
    live, _ = await leaves(database, "doc")
    assert live == [{"_id": "doc", "_rev": C, "side": "c"}]


async def test_resolve_conflicts_can_pick_a_losing_body(database: Database) -> None:
    await conflicted(database)

    async def side_a(revisions: list[JsonDict]) -> JsonDict:
        return next(body for body in revisions if body["side"] == "a")

    resolution = await database.resolve_conflicts("doc", side_a)
    assert resolution.rewritten and resolution.winner["side"] == "a"
    live, _ = await leaves(database, "doc")
    assert live == [{"_id": "doc", "_rev": resolution.rev, "side": "a"}]


async def test_resolve_conflicts_of_a_clean_document_calls_and_writes_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved(database, "doc", n=1)
    request_counter.reset()
    calls: list[Any] = []
    resolution = await database.resolve_conflicts("doc", calls.append)
    assert calls == []
    assert resolution == Resolution("doc", {"_id": "doc", "_rev": document.rev, "n": 1}, [], False)
    assert request_counter.requests == [("GET", f"/{database.id}/doc?conflicts=true")]


async def test_resolve_conflicts_starts_again_when_the_winner_changed_meanwhile(
    database: Database,
) -> None:
    await conflicted(database, sides="ab")
    given: list[list[str]] = []

    async def merge(revisions: list[JsonDict]) -> JsonDict:
        given.append([body["_rev"] for body in revisions])
        if len(given) == 1:
            # Another writer updates the winning branch before the merge is written.
            winner = Document(database, "doc", data={"side": "b2", "_rev": B})
            await winner.save()
        return {"sides": sorted(body["side"] for body in revisions)}

    resolution = await database.resolve_conflicts("doc", merge)
    assert len(given) == 2 and given[0] == [B, A]
    assert given[1][0].startswith("2-") and given[1][1] == A  # the new winner, the same loser
    # The loser's content was not lost with the first, failed merge.
    assert resolution.winner["sides"] == ["a", "b2"] and resolution.removed == [A]
    live, _ = await leaves(database, "doc")
    assert live == [resolution.winner]


async def test_resolve_conflicts_tells_which_losers_went_when_one_was_written_on(
    database: Database, request_counter: RequestCounter
) -> None:
    await conflicted(database)  # winner C, losers A and B
    extended = "2-" + "e" * 32
    given: list[list[str]] = []

    async def keep_the_winner(revisions: list[JsonDict]) -> JsonDict:
        given.append(sorted(body["_rev"] for body in revisions))
        if len(given) == 1:
            # Someone writes on loser A before it is deleted: that deletion conflicts.
            await database.save_revisions(
                [
                    {
                        "_id": "doc",
                        "_rev": extended,
                        "side": "a2",
                        "_revisions": {"start": 2, "ids": ["e" * 32, "a" * 32]},
                    }
                ]
            )
            request_counter.reset()
        return revisions[0]

    resolution = await database.resolve_conflicts("doc", keep_the_winner)
    assert given == [[A, B, C], [C, extended]]
    # B was deleted by the first write, A was not (it was written on); A's successor, of a
    # higher generation, then wins, and C goes.
    assert resolution.removed == [B, C] and not resolution.rewritten
    assert resolution.winner == {"_id": "doc", "_rev": extended, "side": "a2"}
    assert [method for method, _ in request_counter.requests] == [
        "POST",  # _bulk_docs: B deleted, A conflicted
        "GET",  # open_revs=[A, B]&latest=true&revs=true: which went
        "GET",  # conflicts=true
        "GET",  # open_revs of the conflict left
        "POST",  # _bulk_docs: C deleted
    ]
    live, deleted = await leaves(database, "doc")
    assert live == [resolution.winner] and len(deleted) == 2


async def test_resolve_conflicts_gives_up_after_its_attempts(database: Database) -> None:
    await conflicted(database, sides="ab")
    calls = 0

    async def overtaken(revisions: list[JsonDict]) -> JsonDict:
        nonlocal calls
        calls += 1
        winner = Document(database, "doc", data={"side": f"b{calls}", "_rev": revisions[0]["_rev"]})
        await winner.save()
        return {"merged": True}

    with pytest.raises(TooManyConflictsError) as raised:
        await database.resolve_conflicts("doc", overtaken, attempts=2)
    assert (raised.value.id, raised.value.attempts, calls) == ("doc", 2, 2)
    assert "resolve the conflicts of document 'doc'" in str(raised.value)
    live, _ = await leaves(database, "doc")
    assert sorted(body["side"] for body in live) == ["a", "b2"]  # nothing was deleted


async def test_resolve_conflicts_refuses_a_body_of_another_document(database: Database) -> None:
    await conflicted(database, sides="ab")
    with pytest.raises(ValueError, match="'other'"):
        await database.resolve_conflicts("doc", lambda revisions: {"_id": "other"})
    with pytest.raises(TypeError, match="dict"):
        await database.resolve_conflicts("doc", lambda revisions: None)
    live, _ = await leaves(database, "doc")
    assert len(live) == 2


async def test_resolve_conflicts_surfaces_a_refusal_of_either_write(database: Database) -> None:
    await conflicted(database, sides="ab")
    ddoc = await database.design_doc("validate")
    ddoc["validate_doc_update"] = VALIDATE_RESOLUTION
    await ddoc.save()
    with pytest.raises(ForbiddenError, match="n stays at most 5"):  # the winner's PUT
        await database.resolve_conflicts("doc", lambda revisions: {"n": 6})
    with pytest.raises(ForbiddenError, match="deletions are refused") as raised:  # _bulk_docs
        await database.resolve_conflicts("doc", lambda revisions: revisions[0])
    assert (raised.value.status, raised.value.error) == (403, "forbidden")
    live, _ = await leaves(database, "doc")
    assert len(live) == 2


# --- every conflicted document ---


async def make_conflicted_database(database: Database) -> None:
    await conflicted(database, "one", "ab")
    await conflicted(database, "two", "abc")
    await conflicted(database, "_design/d", "ab")
    await saved(database, "clean", n=1)


def first_side(revisions: list[JsonDict]) -> JsonDict:
    return min(revisions, key=lambda body: body["side"])


async def assert_resolved(database: Database, ids: list[str]) -> None:
    for id in ids:
        live, _ = await leaves(database, id)
        assert [body["side"] for body in live] == ["a"], id


async def test_resolve_all_conflicts_resolves_each_conflicted_document(
    database: Database, request_counter: RequestCounter
) -> None:
    await make_conflicted_database(database)
    request_counter.reset()
    resolutions = [r async for r in database.resolve_all_conflicts(first_side)]
    assert [(r.id, sorted(r.removed)) for r in resolutions] == [
        ("one", [A]),
        ("two", [A, B]),
    ]
    assert request_counter.requests[0] == (
        "GET",
        f"/{database.id}/_all_docs?include_docs=true&conflicts=true",
    )
    await assert_resolved(database, ["one", "two"])
    found = await database.conflicting_revisions("_design/d")
    assert len(found.conflicts) == 1  # design documents are left alone by default
    assert [r async for r in database.resolve_all_conflicts(first_side)] == []


async def test_resolve_all_conflicts_includes_design_documents_on_request(
    database: Database,
) -> None:
    await make_conflicted_database(database)
    resolved = [r.id async for r in database.resolve_all_conflicts(first_side, include_ddocs=True)]
    assert resolved == ["_design/d", "one", "two"]
    await assert_resolved(database, resolved)


async def test_resolve_all_conflicts_follows_a_view_of_the_conflicted(
    database: Database, request_counter: RequestCounter
) -> None:
    await make_conflicted_database(database)
    ddoc = await database.design_doc("conflicts")
    await ddoc.create_view("conflicted", map_function=CONFLICTS_VIEW)
    request_counter.reset()
    view = database.view("conflicts", "conflicted")
    resolved = sorted([r.id async for r in database.resolve_all_conflicts(first_side, view=view)])
    assert resolved == ["one", "two"]
    assert request_counter.requests[0][1].startswith(f"/{database.id}/_design/conflicts/_view/")
    assert not any("_all_docs" in path for _, path in request_counter.requests)
    await assert_resolved(database, resolved)
