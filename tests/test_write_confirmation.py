"""Writes whose answer was lost: repeated, and confirmed against the real test server.

A relay in front of the test server forwards every request to it and returns the answer,
except the answers chosen to be lost: those requests reach the server (which applies them)
and the client's connection is then reset instead of answered. The client repeats the
write, gets 409, and must find its own write on the server: the end state is checked on
the server itself (exactly one new revision, the content sent) along with what the caller
saw (success, the right revision).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from yarl import URL

from aiocouch import ConflictError, CouchDB, Database, Document
from aiocouch.cluster import Quorum
from aiocouch.retry import RetryPolicy
from aiocouch.typing import JsonDict
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)

_NOT_RELAYED = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding"}
)


@dataclass
class _Loss:
    method: str
    path: str
    forward: bool
    meanwhile: Callable[[], Awaitable[None]] | None


class LosingRelay:
    """Forwards requests to ``target``; loses the answers of the requests it is told to."""

    def __init__(self, target: str, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.session = session
        self.server = ScriptedServer(self._relay)
        self.lost: list[ReceivedRequest] = []
        self.answered: list[tuple[str, str, int]] = []
        """``(method, path, status)`` of each answer the server gave, lost or not."""
        self._losses: list[_Loss] = []

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of each request that arrived, query strings left out."""
        return [(r.method, r.target.split("?")[0]) for r in self.server.requests]

    def lose_answer(
        self,
        method: str,
        path: str,
        *,
        forward: bool = True,
        meanwhile: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """The next ``method path`` (query aside) is forwarded (unless not ``forward``),
        ``meanwhile`` runs, and the client's connection is reset instead of answered."""
        self._losses.append(_Loss(method, path, forward, meanwhile))

    async def _relay(self, request: ReceivedRequest, connection: ScriptedConnection) -> None:
        path = request.target.split("?")[0]
        loss = next((x for x in self._losses if (x.method, x.path) == (request.method, path)), None)
        answer = b""
        if loss is None or loss.forward:
            status, answer = await self._forward(request)
            self.answered.append((request.method, path, status))
        if loss is not None:
            self._losses.remove(loss)
            if loss.meanwhile is not None:
                await loss.meanwhile()
            self.lost.append(request)
            connection.reset()
            return
        await connection.send(answer)

    async def _forward(self, request: ReceivedRequest) -> tuple[int, bytes]:
        headers = {k: v for k, v in request.headers if k.lower() not in _NOT_RELAYED}
        url = URL(self.target + request.target, encoded=True)
        async with self.session.request(
            request.method, url, data=request.body or None, headers=headers
        ) as response:
            body = await response.read()
            relayed = [
                (k, v)
                for k, v in response.headers.items()
                if k.lower() not in _NOT_RELAYED and k.lower() != "content-type"
            ]
            return response.status, http_response(
                response.status,
                body,
                headers=relayed,
                content_type=response.headers.get("Content-Type"),
            )


@pytest.fixture
async def relay(server_url: str) -> AsyncIterator[LosingRelay]:
    async with aiohttp.ClientSession(auto_decompress=True) as session:
        relay = LosingRelay(server_url, session)
        async with relay.server:
            yield relay


@pytest.fixture
async def relayed(
    relay: LosingRelay,
    admin_user: str,
    admin_password: str,
    database: Database,
    quorum: Quorum | None,
) -> AsyncIterator[Database]:
    """The test's database, reached through the relay (with quick repeats)."""
    async with CouchDB(
        relay.url,
        user=admin_user,
        password=admin_password,
        retry=RetryPolicy(backoff=0.01, backoff_max=0.05),
        quorum=quorum,
    ) as client:
        yield Database(client, database.id)


async def leaves(database: Database, id: str) -> list[JsonDict]:
    """Every leaf revision of document ``id`` on the server, with its ``_revisions``."""
    _, answer = await database._remote._request(
        "GET",
        f"{database.endpoint}/{id}",
        params={"open_revs": "all", "revs": True},
    )
    return [entry["ok"] for entry in answer if "ok" in entry]


def generation(leaf: JsonDict) -> int:
    start: int = leaf["_revisions"]["start"]
    return start


async def test_save_of_a_new_document_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    doc = Document(relayed, "doc", data={"name": "new", "n": [1, 2.5, "ç"]})
    relay.lose_answer("PUT", f"{database.endpoint}/doc")
    response = await doc.save()
    assert response is not None and response.status == 201
    [leaf] = await leaves(database, "doc")
    assert generation(leaf) == 1
    assert doc.rev == leaf["_rev"] == response.etag
    assert (leaf["name"], leaf["n"]) == ("new", [1, 2.5, "ç"])
    # the write was applied, its answer lost; the repeat was refused, then confirmed
    put = ("PUT", f"{database.endpoint}/doc")
    assert [a for a in relay.answered if a[:2] == put] == [(*put, 201), (*put, 409)]
    assert len(relay.lost) == 1
    assert await doc.save() is None  # clean: nothing left to send


async def test_save_of_an_update_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    doc = Document(relayed, "doc", data={"v": 1})
    await doc.save()
    first = doc.rev
    doc["v"] = 2
    relay.lose_answer("PUT", f"{database.endpoint}/doc")
    await doc.save()
    [leaf] = await leaves(database, "doc")
    assert generation(leaf) == 2
    assert leaf["_revisions"]["ids"][1] == first.split("-", 1)[1]  # type: ignore[union-attr]
    assert leaf["v"] == 2
    assert doc.rev == leaf["_rev"]
    assert len(relay.lost) == 1


async def test_save_whose_request_was_lost_before_the_server_is_simply_repeated(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    doc = Document(relayed, "doc", data={"v": 1})
    relay.lose_answer("PUT", f"{database.endpoint}/doc", forward=False)
    await doc.save()
    [leaf] = await leaves(database, "doc")
    assert generation(leaf) == 1
    assert doc.rev == leaf["_rev"]
    assert not [r for r in relay.requests if r[0] == "GET"]  # no check was needed


async def test_a_conflict_with_another_writer_stands_after_a_lost_answer(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    doc = Document(relayed, "doc", data={"v": 1})
    await doc.save()
    doc["v"] = 2

    async def other_writer() -> None:
        theirs = await database.get("doc")
        theirs["v"] = "theirs"
        await theirs.save()

    # our request never reaches the server; theirs, on the same revision, does
    relay.lose_answer("PUT", f"{database.endpoint}/doc", forward=False, meanwhile=other_writer)
    with pytest.raises(ConflictError):
        await doc.save()
    [leaf] = await leaves(database, "doc")
    assert leaf["v"] == "theirs"
    assert doc.rev is not None and doc.rev.startswith("1-")


async def test_save_after_delete_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    doc = Document(relayed, "doc", data={"v": 1})
    await doc.save()
    await doc.delete()
    doc["v"] = "again"
    relay.lose_answer("PUT", f"{database.endpoint}/doc")
    await doc.save()
    [leaf] = await leaves(database, "doc")
    assert generation(leaf) == 3
    assert leaf["v"] == "again"
    assert not leaf.get("_deleted")
    assert doc.rev == leaf["_rev"]


async def test_delete_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    doc = Document(relayed, "doc", data={"v": 1})
    await doc.save()
    relay.lose_answer("DELETE", f"{database.endpoint}/doc")
    response = await doc.delete()
    assert response.status == 200
    [leaf] = await leaves(database, "doc")
    assert leaf["_deleted"] is True
    assert generation(leaf) == 2
    assert response.etag == leaf["_rev"]
    assert not doc.exists and doc.rev is None
    delete = ("DELETE", f"{database.endpoint}/doc")
    assert [a for a in relay.answered if a[:2] == delete] == [(*delete, 200), (*delete, 409)]


@pytest.mark.parametrize(
    ("content_type", "data"),
    [("application/octet-stream", bytes(range(256)) * 8), ("text/plain", b"hello world\n" * 50)],
)
async def test_attachment_save_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database, content_type: str, data: bytes
) -> None:
    doc = Document(relayed, "doc", data={"v": 1})
    await doc.save()
    relay.lose_answer("PUT", f"{database.endpoint}/doc/file")
    await doc.attachment("file").save(data, content_type)
    [leaf] = await leaves(database, "doc")
    assert generation(leaf) == 2
    assert doc.rev == leaf["_rev"]
    assert await (await database.get("doc")).attachment("file").fetch() == data
    put = ("PUT", f"{database.endpoint}/doc/file")
    assert [a for a in relay.answered if a[:2] == put] == [(*put, 201), (*put, 409)]


async def test_attachment_delete_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    doc = Document(relayed, "doc", data={"v": 1})
    await doc.save()
    await doc.attachment("file").save(b"bytes", "application/octet-stream")
    relay.lose_answer("DELETE", f"{database.endpoint}/doc/file")
    await doc.attachment("file").delete()
    [leaf] = await leaves(database, "doc")
    assert generation(leaf) == 3
    assert "file" not in (leaf.get("_attachments") or {})
    assert doc.rev == leaf["_rev"]
    assert relay.requests.count(("DELETE", f"{database.endpoint}/doc/file")) == 2


async def test_bulk_create_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    relay.lose_answer("POST", f"{database.endpoint}/_bulk_docs")
    async with relayed.create_docs() as bulk:
        for n in range(20):
            bulk.create(f"doc{n:02}", data={"n": n})
    assert bulk.error == []
    assert bulk.ok is not None and len(bulk.ok) == 20
    for doc in bulk.ok:
        [leaf] = await leaves(database, doc.id)
        assert generation(leaf) == 1
        assert leaf["n"] == int(doc.id[3:])
        assert doc.rev == leaf["_rev"]
    assert relay.requests.count(("POST", f"{database.endpoint}/_bulk_docs")) == 2


async def test_bulk_update_whose_answer_was_lost_confirms_only_its_own_writes(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    async with database.create_docs([f"doc{n}" for n in range(5)]):
        pass

    async def other_writer() -> None:
        # after our batch was applied, before the repeat: doc4 changes again
        theirs = await database.get("doc4")
        theirs["n"] = "theirs"
        await theirs.save()

    relay.lose_answer("POST", f"{database.endpoint}/_bulk_docs", meanwhile=other_writer)
    async with relayed.update_docs([f"doc{n}" for n in range(5)]) as bulk:
        async for doc in bulk:
            doc["n"] = doc.id
    assert bulk.ok is not None and [doc.id for doc in bulk.ok] == [f"doc{n}" for n in range(4)]
    # doc4's write was applied, but its leaf is someone else's now: it stays an error
    assert bulk.error is not None and [doc.id for doc in bulk.error] == ["doc4"]
    for doc in bulk.ok:
        [leaf] = await leaves(database, doc.id)
        assert (generation(leaf), leaf["n"], leaf["_rev"]) == (2, doc.id, doc.rev)
    [leaf] = await leaves(database, "doc4")
    assert (generation(leaf), leaf["n"]) == (3, "theirs")


async def test_post_of_a_document_without_id_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    data = {"kind": "event", "at": [2024, 1, 1]}
    relay.lose_answer("POST", database.endpoint)
    doc = await relayed.post(data)
    assert data == {"kind": "event", "at": [2024, 1, 1]}  # the caller's dict is untouched
    ids = [id async for id in database.akeys()]
    assert ids == [doc.id]
    assert len(doc.id) == 32
    [leaf] = await leaves(database, doc.id)
    assert generation(leaf) == 1
    assert (leaf["kind"], leaf["at"]) == ("event", [2024, 1, 1])
    assert doc.rev == leaf["_rev"]
    post = ("POST", database.endpoint)
    assert [a for a in relay.answered if a[:2] == post] == [(*post, 201), (*post, 409)]


async def test_bulk_docs_helper_confirms_items_whose_answer_was_lost(
    relay: LosingRelay, relayed: Database, database: Database
) -> None:
    relay.lose_answer("POST", f"{database.endpoint}/_bulk_docs")
    items = await relayed._bulk_docs([{"_id": "a", "v": 1}, {"_id": "b", "v": 2}])
    # (pouchdb-server may answer a bulk write's items out of order; CouchDB keeps it)
    assert sorted((item["id"], item.get("ok")) for item in items) == [("a", True), ("b", True)]
    for item in items:
        [leaf] = await leaves(database, item["id"])
        assert (generation(leaf), leaf["_rev"]) == (1, item["rev"])
