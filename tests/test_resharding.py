"""Shard splitting (aiocouch.resharding): the resharder's state and its jobs.

pouchdb-server has no shards and no ``/_reshard`` (DIFF.md 14.33-14.54), so the tests that
split are ``couchdb_only``, written from transcript blocks 14.33-14.54: the resharder is
stopped for the length of a test (and set back as it was), a split job is created for a
``q=1`` database, stopped and resumed, watched until it completed, and deleted. How a
watch follows a job, and a split that created only some of its jobs, are scripted byte
for byte (``testserver.scripted_server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiocouch import BadRequestError, CouchDB, Database, NotFoundError
from aiocouch.resharding import Resharding, ReshardJob, SplitFailedError
from testserver.request_counter import RequestCounter
from testserver.scripted_server import ScriptedServer, answering, http_response, in_turn

NO_RESHARD = "pouchdb-server has no /_reshard (transcript 14.{})"
WATCH_LIMIT = 60.0


def job_answer(job_state: str, split_state: str) -> bytes:
    body = {"id": "001-abc", "type": "split", "job_state": job_state, "split_state": split_state}
    return http_response(200, json.dumps(body).encode())


@contextlib.asynccontextmanager
async def scripted_resharding(
    *responses: bytes,
) -> AsyncIterator[tuple[ScriptedServer, Resharding]]:
    """The resharder of a server whose n-th request gets the n-th response."""
    async with ScriptedServer(in_turn(*(answering(r) for r in responses))) as server:
        client = CouchDB(server.url)
        try:
            yield server, client.resharding()
        finally:
            await client.close()


@pytest.fixture
async def stopped_resharder(couchdb: CouchDB) -> AsyncIterator[Resharding]:
    """The resharder, stopped for the test and then set back to the state it had."""
    resharding = couchdb.resharding()
    was_running = (await resharding.state())["state"] == "running"
    await resharding.stop("aiocouch test: stopped for a few seconds")
    try:
        yield resharding
    finally:
        if was_running:
            await resharding.start()


@pytest.fixture
async def q1_database(couchdb: CouchDB) -> AsyncIterator[Database]:
    """A new database with one shard (per copy), holding one document."""
    database = await couchdb.create(f"aiocouch_test_reshard_{uuid.uuid4().hex}", q=1)
    document = await database.create("doc", data={"v": 1})
    await document.save()
    try:
        yield database
    finally:
        with contextlib.suppress(NotFoundError):
            await database.delete()


async def final_state(job: ReshardJob) -> dict[str, Any]:
    """The last state a watch of ``job`` hands out."""

    async def watch() -> dict[str, Any]:
        states = [dict(info) async for info in job.watch(interval=0.2)]
        return states[-1]

    return await asyncio.wait_for(watch(), WATCH_LIMIT)


# --- splitting on CouchDB ---


@pytest.mark.couchdb_only(NO_RESHARD.format("33-14.54"))
async def test_a_split_made_while_stopped_completes_once_resumed(
    couchdb: CouchDB, stopped_resharder: Resharding, q1_database: Database
) -> None:
    resharding = stopped_resharder
    assert await resharding.state() == {
        "state": "stopped",
        "reason": "aiocouch test: stopped for a few seconds",
    }
    jobs = await resharding.split(db=q1_database.id)
    try:
        # One job per copy of the shard, each stopped with the resharder (14.39-14.43).
        assert jobs and all(job.shard and job.shard.startswith("shards/") for job in jobs)
        assert {job.id for job in jobs} <= {job["id"] for job in await resharding.jobs()}
        first = jobs[0]
        info = await first.info()
        assert (info["job_state"], info["split_state"]) == ("stopped", "new")
        assert len(info["target"]) == 2
        assert await first.state() == {"state": "stopped", "reason": "Shard splitting disabled"}

        # A job stopped by its own request stays stopped when the resharder runs (14.47).
        await first.stop("aiocouch test: job stopped")
        await resharding.start()
        assert await first.state() == {"state": "stopped", "reason": "aiocouch test: job stopped"}
        await first.resume()
        for job in jobs:
            final = await final_state(job)
            assert (final["job_state"], final["split_state"]) == ("completed", "completed")

        # The database now has two ranges, and its document is there (14.50, 14.51).
        _, shards = await couchdb._server._get(f"/{q1_database.id}/_shards")
        assert sorted(shards["shards"]) == ["00000000-7fffffff", "80000000-ffffffff"]
        assert (await q1_database.get("doc"))["v"] == 1
        summary = await resharding.summary()
        assert summary["state"] == "running"
        assert summary["completed"] >= len(jobs)
    finally:
        for job in jobs:
            with contextlib.suppress(NotFoundError):
                await job.delete()
    with pytest.raises(NotFoundError):
        await first.delete()  # 14.54


@pytest.mark.couchdb_only(NO_RESHARD.format("40"))
async def test_a_split_of_a_missing_database_is_a_bad_request(couchdb: CouchDB) -> None:
    with pytest.raises(BadRequestError):
        await couchdb.resharding().split(db=f"aiocouch_test_missing_{uuid.uuid4().hex}")


@pytest.mark.couchdb_only(NO_RESHARD.format("33"))
async def test_the_summary_counts_jobs_by_state(couchdb: CouchDB) -> None:
    summary = await couchdb.resharding().summary()
    assert summary["state"] in {"running", "stopped"}
    counted = sum(summary[state] for state in ("completed", "failed", "running", "stopped"))
    assert counted <= summary["total"]


async def test_an_unknown_job_is_not_found(couchdb: CouchDB) -> None:
    # CouchDB: 404 not_found (transcript 14.54); pouchdb-server: 404 for all of /_reshard.
    with pytest.raises(NotFoundError):
        await couchdb.resharding().job("001-" + "0" * 64).info()


# --- watching and partial failures, scripted ---


async def test_a_watch_hands_out_each_new_state_and_ends_with_the_final_one() -> None:
    async with scripted_resharding(
        job_answer("stopped", "new"),
        job_answer("stopped", "new"),
        job_answer("running", "initial_copy"),
        job_answer("running", "topoff1"),
        job_answer("completed", "completed"),
    ) as (server, resharding):
        job = resharding.job("001-abc")
        states = [(info["job_state"], info["split_state"]) async for info in job.watch(0.01)]
    assert states == [
        ("stopped", "new"),
        ("running", "initial_copy"),
        ("running", "topoff1"),
        ("completed", "completed"),
    ]
    assert [request.target for request in server.requests] == ["/_reshard/jobs/001-abc"] * 5


async def test_a_split_that_created_only_some_jobs_raises_with_both_parts() -> None:
    results = [
        {"ok": True, "id": "001-aaa", "node": "n1@h", "shard": "shards/00000000-ffffffff/d.1"},
        {"error": "max_jobs_exceeded", "node": "n2@h", "shard": "shards/00000000-ffffffff/d.1"},
    ]
    async with scripted_resharding(http_response(202, json.dumps(results).encode())) as (
        server,
        resharding,
    ):
        with pytest.raises(SplitFailedError, match=r"1 of 2 .*max_jobs_exceeded") as raised:
            await resharding.split(db="d")
    assert [job.id for job in raised.value.jobs] == ["001-aaa"]
    assert raised.value.failures == [results[1]]
    assert json.loads(server.requests[0].body) == {"type": "split", "db": "d"}


# --- arguments, checked before any request ---


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, ValueError),
        ({"db": "a", "shard": "shards/00000000-ffffffff/a.1"}, ValueError),
        ({"shard": "shards/00000000-ffffffff/a.1", "range": "00000000-7fffffff"}, ValueError),
        ({"shard": "a.1"}, ValueError),
        ({"db": "a", "range": "0-7"}, ValueError),
        ({"db": "a", "node": "localhost"}, ValueError),
        ({"db": "Bad Name"}, BadRequestError),
    ],
)
async def test_split_refuses_arguments_that_name_no_shards(
    couchdb: CouchDB, request_counter: RequestCounter, arguments: dict[str, str], error: type
) -> None:
    request_counter.reset()
    with pytest.raises(error):
        await couchdb.resharding().split(**arguments)
    assert request_counter.count == 0


@pytest.mark.parametrize("interval", [0, -1, float("nan"), True])
async def test_a_watch_refuses_an_interval_that_is_not_positive(
    couchdb: CouchDB, request_counter: RequestCounter, interval: float
) -> None:
    request_counter.reset()
    with pytest.raises(ValueError, match="interval"):
        async for _ in couchdb.resharding().job("001-abc").watch(interval):
            pass
    assert request_counter.count == 0


def test_a_job_id_must_be_text(couchdb: CouchDB) -> None:
    with pytest.raises(ValueError):
        couchdb.resharding().job("")
    with pytest.raises(ValueError):
        couchdb.resharding().job("001\n")
    assert couchdb.resharding().job("001-a/b").id == "001-a/b"
