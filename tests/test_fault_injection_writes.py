"""2,000 writes through a proxy that breaks their exchanges: nothing lost, nothing doubled.

The client (public API, default retry policy with short waits and short time limits) talks
to the test server through :class:`~testserver.fault_proxy.FaultProxy`, which gives the
write requests faults on a seeded schedule: connections reset before the request reaches
the server, after the server answered (reset or clean close), in the middle of the answer
(reset or clean close), and answers that stall longer than the client's time limit. The
writes are single saves of new documents, updates, deletes, attachment saves, bulk creates
and bulk updates (ids given), and creates without an id (``db.post``).

Afterwards the server is read directly, without the proxy: every intended document is
there exactly once with its intended content, each write applied exactly once (the
revision generation is the number of writes), deletions are deleted, attachments hold
their bytes, and the revision each caller holds is the server's. The caller saw no error.

Only write requests get faults: reads pass and draw nothing from the schedule, so the
concurrent reads of a bulk write's confirmation cannot change which write gets which
fault. The writes are sent one after another, so the schedule replays exactly.
"""

from __future__ import annotations

import base64
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
import pytest

from aiocouch import CouchDB, Database, Document
from aiocouch.cluster import Quorum
from aiocouch.retry import RetryPolicy
from testserver.fault_proxy import FaultKind, FaultProxy, ProxiedRequest, ProxyStats, RandomFaults

SEED = 6
"""The seed of the fault schedule (the workload itself is fixed)."""
FAULT_RATES = {
    FaultKind.RESET_BEFORE_REQUEST: 0.025,
    FaultKind.RESET_AFTER_ANSWER: 0.025,
    FaultKind.CLOSE_AFTER_ANSWER: 0.02,
    FaultKind.RESET_MID_ANSWER: 0.025,
    FaultKind.CUT_ANSWER: 0.025,
    FaultKind.STALL_ANSWER: 0.008,
}
"""Per write request; 12.8 % in all, so five faults in a row (the default policy's five
attempts) are rare enough that this seed never draws them."""
STALL_SECONDS = 5.0
"""Far beyond every time limit of the client: the limit always ends the stall's exchange."""
TIME_LIMITS = aiohttp.ClientTimeout(total=1.5, sock_read=0.5, connect=5.0, sock_connect=5.0)
"""Short limits so that a stall costs little, far above the few milliseconds a write to a
local server takes: ``sock_read`` ends a stall where the transport honours it (aiohttp;
the lean one once the transport branch is merged), ``total`` everywhere. Should a slow
moment of the machine reach a limit all the same, the write is repeated like any other
whose answer was lost: the outcome does not change, only the figures."""
RETRY = RetryPolicy(backoff=0.01, backoff_max=0.05, budget=60.0)
"""The default policy (5 attempts) with short waits; the budget is given because by
default it is the call's ``total`` limit, here shortened for the stalls only."""

LOST_ANSWER = frozenset(
    {
        FaultKind.RESET_AFTER_ANSWER,
        FaultKind.CLOSE_AFTER_ANSWER,
        FaultKind.RESET_MID_ANSWER,
        FaultKind.CUT_ANSWER,
        FaultKind.STALL_ANSWER,
    }
)
"""The faults after which the server handled the write but its caller never got the answer."""

SINGLES, UPDATED, ATTACHED, DELETED = 400, range(0, 200), range(100, 250), range(150, 300)
POSTS, BULK, BULK_BATCH = 300, 300, 5
ATTACHMENT = "blob.bin"
ATTACHMENT_TYPE = "application/octet-stream"


def is_write(request: ProxiedRequest) -> bool:
    """Whether the request writes (the only ones this test breaks)."""
    if request.method in ("PUT", "DELETE"):
        return True
    return request.method == "POST" and not request.path.endswith("/_all_docs")


def write_kind(request: ProxiedRequest) -> str:
    """Which kind of write of this test a request is, from its method, path and body."""
    if request.header("Content-Type") == ATTACHMENT_TYPE:
        return "attachment"
    updates = b'"_rev"' in request.raw
    if request.method == "POST":
        if request.path.endswith("/_bulk_docs"):
            return "bulk update" if updates else "bulk create"
        return "post"
    if request.method == "DELETE":
        return "delete"
    return "update" if updates else "create"


@dataclass
class Intended:
    """What one document should be on the server once every write is done."""

    content: dict[str, Any]
    generation: int = 1
    deleted: bool = False
    attachment: bytes | None = None


@dataclass
class Workload:
    """The writes of this test, what they intend, and what their callers saw."""

    database: Database
    intended: dict[str, Intended] = field(default_factory=dict)
    local: dict[str, Document] = field(default_factory=dict)
    """The caller's documents: the revision each holds must be the server's."""
    posted: dict[int, str] = field(default_factory=dict)
    """The id each ``db.post`` of a number gave its caller."""
    attempted: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    async def write(self, kind: str, call: Awaitable[Any], count: int = 1) -> None:
        """Awaits one public call of ``count`` writes; counts what its caller saw."""
        self.attempted[kind] += count
        try:
            await call
        except Exception as error:
            self.errors[type(error).__name__] += 1
            self.messages.append(f"{kind}: {type(error).__name__}: {error}")

    async def run(self) -> None:
        singles = [self.single(number) for number in range(SINGLES)]
        for doc in singles:
            await self.write("create", doc.save())
        for doc in (singles[number] for number in UPDATED):
            for version in (1, 2):
                doc["v"] = version
                self.intended[doc.id].content["v"] = version
                self.intended[doc.id].generation += 1
                await self.write("update", doc.save())
        for doc in (singles[number] for number in ATTACHED):
            data = attachment_bytes(doc.id)
            self.intended[doc.id].attachment = data
            self.intended[doc.id].generation += 1
            await self.write("attachment", doc.attachment(ATTACHMENT).save(data, ATTACHMENT_TYPE))
        for doc in (singles[number] for number in DELETED):
            self.intended[doc.id].deleted = True
            self.intended[doc.id].generation += 1
            await self.write("delete", doc.delete())
        for number in range(POSTS):
            await self.write("post", self.post(number))
        bulk_ids = [f"bulk-{number:04d}" for number in range(BULK)]
        for batch in batches(bulk_ids):
            await self.write("bulk create", self.bulk_create(batch), len(batch))
        for batch in batches(bulk_ids):
            await self.write("bulk update", self.bulk_update(batch), len(batch))

    def single(self, number: int) -> Document:
        content = {"kind": "single", "n": number, "v": 0}
        doc = Document(self.database, f"single-{number:04d}", data=dict(content))
        self.intended[doc.id] = Intended(content)
        self.local[doc.id] = doc
        return doc

    async def post(self, number: int) -> None:
        content = {"kind": "posted", "n": number}
        doc = await self.database.post(content)
        self.posted[number] = doc.id
        self.intended[doc.id] = Intended(content)
        self.local[doc.id] = doc

    async def bulk_create(self, ids: list[str]) -> None:
        async with self.database.create_docs() as bulk:
            for id in ids:
                content = {"kind": "bulk", "id": id, "v": 0}
                self.intended[id] = Intended(content)
                self.local[id] = bulk.create(id, data=dict(content))
        self.count_refused(bulk.response)

    async def bulk_update(self, ids: list[str]) -> None:
        async with self.database.update_docs(ids) as bulk:
            async for doc in bulk:
                doc["v"] = 1
                self.intended[doc.id].content["v"] = 1
                self.intended[doc.id].generation += 1
                self.local[doc.id] = doc
        self.count_refused(bulk.response)

    def count_refused(self, items: list[dict[str, Any]] | None) -> None:
        """A document the server refused within a bulk answer is an error its caller sees."""
        for item in items or ():
            if "error" in item:
                self.errors[f"bulk item {item['error']}"] += 1
                self.messages.append(f"bulk item: {item}")


def attachment_bytes(id: str) -> bytes:
    """1 to 4,096 bytes, different for each document."""
    draw = random.Random(id)
    return bytes(draw.getrandbits(8) for _ in range(draw.randint(1, 4096)))


def batches(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), BULK_BATCH):
        yield ids[start : start + BULK_BATCH]


def generation(rev: str) -> int:
    return int(rev.partition("-")[0])


@dataclass
class Outcome:
    """What the server holds, compared with what was intended."""

    lost: list[str] = field(default_factory=list)
    """Documents missing, or with fewer writes applied than intended."""
    doubled: list[str] = field(default_factory=list)
    """Documents with more writes applied than intended, or not intended at all."""
    wrong: list[str] = field(default_factory=list)
    """Documents with the intended number of writes but other content, conflicts,
    attachment bytes, or a revision other than the one their caller holds."""


async def server_outcome(session: aiohttp.ClientSession, url: str, workload: Workload) -> Outcome:
    """Reads the database directly (no proxy) and compares it with the intended writes.

    Sends GET /{db}/_all_docs?include_docs=true&conflicts=true, GET /{db}/_changes?
    style=all_docs (every leaf, deleted ones included) and GET of each live attachment.
    """
    outcome = Outcome()
    rows = (await get_json(session, f"{url}/_all_docs?include_docs=true&conflicts=true"))["rows"]
    live = {row["id"]: row["doc"] for row in rows}
    changes = (await get_json(session, f"{url}/_changes?style=all_docs"))["results"]
    leaves = {change["id"]: change for change in changes}
    # A document created without an id is known by its content: the caller learns its id
    # only from a call that succeeds.
    posts: defaultdict[int, list[str]] = defaultdict(list)
    for id, doc in live.items():
        if doc.get("kind") == "posted":
            posts[doc["n"]].append(id)
    for number in range(POSTS):
        ids = posts.get(number, [])
        if not ids:
            outcome.lost.append(f"post {number}")
        outcome.doubled.extend(ids[1:])
        if ids and workload.posted.get(number) not in ids:
            outcome.wrong.append(f"post {number}: {ids}, its caller holds none of them")
    posted = {id for ids in posts.values() for id in ids}
    outcome.doubled.extend(sorted(set(leaves) - set(workload.intended) - posted))
    for id, intended in workload.intended.items():
        change = leaves.get(id)
        if change is None:
            outcome.lost.append(id)
            continue
        revs = [leaf["rev"] for leaf in change["changes"]]
        applied = max(generation(rev) for rev in revs)
        if applied < intended.generation:
            outcome.lost.append(id)
        elif applied > intended.generation:
            outcome.doubled.append(id)
        elif len(revs) != 1 or bool(change.get("deleted")) != intended.deleted:
            outcome.wrong.append(f"{id}: leaves {revs}, deleted={change.get('deleted')}")
        elif not intended.deleted:
            problem = await live_problem(session, url, id, live.get(id), intended, workload)
            if problem:
                outcome.wrong.append(f"{id}: {problem}")
    return outcome


async def live_problem(
    session: aiohttp.ClientSession,
    url: str,
    id: str,
    doc: dict[str, Any] | None,
    intended: Intended,
    workload: Workload,
) -> str | None:
    """What is wrong with a document that should be live, or None."""
    if doc is None:
        return "missing from _all_docs"
    content = {key: value for key, value in doc.items() if key not in ("_id", "_rev")}
    stubs = content.pop("_attachments", {})
    if content != intended.content:
        return f"content {content} instead of {intended.content}"
    if doc["_rev"] != workload.local[id].rev:
        return f"the caller holds {workload.local[id].rev}, the server {doc['_rev']}"
    if set(stubs) != ({ATTACHMENT} if intended.attachment is not None else set()):
        return f"attachments {sorted(stubs)}"
    if intended.attachment is not None:
        async with session.get(f"{url}/{id}/{ATTACHMENT}") as response:
            stored = await response.read()
        if stored != intended.attachment:
            return f"attachment of {len(stored)} bytes, not the {len(intended.attachment)} saved"
    return None


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200, (url, response.status, await response.text())
        return await response.json(content_type=None)


@pytest.fixture
async def direct(admin_user: str, admin_password: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session to the server itself, to read what it holds."""
    credentials = base64.b64encode(f"{admin_user}:{admin_password}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


TRANSPORTS: dict[str, Callable[[], dict[str, Any]]] = {
    "lean": dict,
    "aiohttp": lambda: {"connector": aiohttp.TCPConnector()},
}


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
async def test_writes_through_faults_are_applied_exactly_once(
    transport: str,
    server_url: str,
    admin_user: str,
    admin_password: str,
    database: Database,
    direct: aiohttp.ClientSession,
    record_property: Callable[[str, object], None],
    quorum: Quorum | None,
) -> None:
    schedule = RandomFaults(SEED, FAULT_RATES, stall_seconds=STALL_SECONDS, where=is_write)
    async with FaultProxy(server_url, schedule=schedule) as proxy:
        async with CouchDB(
            proxy.url,
            user=admin_user,
            password=admin_password,
            timeout=TIME_LIMITS,
            retry=RETRY,
            quorum=quorum,  # the outcome is read through _all_docs and _changes
            **TRANSPORTS[transport](),
        ) as client:
            workload = Workload(await client[database.id])
            await workload.run()
        stats = proxy.stats
        answers_lost = Counter(
            write_kind(exchange.request)
            for exchange in proxy.exchanges
            if exchange.applied and exchange.fault.kind in LOST_ANSWER
        )
    outcome = await server_outcome(direct, f"{server_url}/{database.id}", workload)
    figures = {
        "transport": transport,
        "writes attempted": sum(workload.attempted.values()),
        "write requests": sum(1 for exchange in proxy.exchanges if is_write(exchange.request)),
        "requests": stats.requests,
        "faults": {kind.value: count for kind, count in sorted_faults(stats)},
        "answers lost after the server handled the write, per kind": dict(answers_lost),
        "lost": len(outcome.lost),
        "doubled": len(outcome.doubled),
        "wrong": len(outcome.wrong),
        "errors seen by the caller": dict(workload.errors),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(f"\nfault injection, seed {SEED}: {figures}")

    assert workload.attempted == {
        "create": SINGLES,
        "update": 2 * len(UPDATED),
        "attachment": len(ATTACHED),
        "delete": len(DELETED),
        "post": POSTS,
        "bulk create": BULK,
        "bulk update": BULK,
    }
    assert sum(workload.attempted.values()) == 2000
    assert workload.messages == []
    assert outcome.lost == []
    assert outcome.doubled == []
    assert outcome.wrong == []
    # The schedule did what this test is about: every fault acted, and every kind of
    # write lost an answer after the server handled it (so each had to be confirmed).
    assert set(stats.faults) == set(FAULT_RATES)
    assert set(answers_lost) == set(workload.attempted)


def sorted_faults(stats: ProxyStats) -> list[tuple[FaultKind, int]]:
    return sorted(stats.faults.items(), key=lambda item: list(FaultKind).index(item[0]))
