"""End-to-end fault injection (issue 6): a changes follower that loses nothing.

A :class:`~aiocouch.follower.ChangesFollower` (continuous feed, ``heartbeat=1``, so a
silence of 3 s counts as a dropped connection) reaches the server through a
:class:`~testserver.fault_proxy.FaultProxy`, while 1,000 writes (creates, updates and
deletes, in a seeded order) go to the server directly. Meanwhile its feed is broken on
purpose: five answers are broken a few kilobytes in (three reset, two closed; usually in
the middle of a line), a sixth stalls for 30 s, and the server restarts once (a private
pouchdb-server, started for this test and restarted with ``LocalCouchServer.restart``,
so the session's shared server is not disturbed). The faults act at byte offsets of the
answers and the restart waits until the stall was dealt with, so what happens does not
depend on timing; only how long it takes does.

Asserted: every change is delivered (the server's own ``_changes`` at the end, as a set of
``(id, rev)``, was handed out, and each document's last delivered revision is the
server's), nothing is handed out that was not written, each document's revisions arrive
in increasing generation, a change comes twice only as a repeat the follower counted in
``duplicates``, and the stall is taken as a dropped connection within a few heartbeats,
not waited out. The figures (changes delivered, resumes, duplicates, missed) are printed
and recorded as properties of the test (``pytest -rP`` shows them, ``--junitxml`` keeps
them).

With ``COUCHDB_URL`` the test follows that server and skips the restart step only: it
cannot restart a server it did not start. Its figures then say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from aiocouch import CouchDB, Database, Document
from aiocouch.cluster import Quorum
from aiocouch.event import BaseChangeEvent, DeletedEvent
from aiocouch.follower import ChangesFollower
from testserver.fault_proxy import Fault, FaultKind, FaultProxy
from testserver.pouchdb_server import LocalCouchServer


class StallWaitedOut(AssertionError):
    """The follower kept waiting on a silent answer instead of asking again."""


LEAN, AIOHTTP = "lean", "aiohttp"

WRITES = 1_000
HEARTBEAT = 1.0
MAX_RETRY_DELAY = 1.0
# Body bytes of each broken answer relayed before its fault: dozens of changes each, so
# every fault hits an answer that carries changes, all within the first few hundred writes.
DISCONNECTS = (
    Fault(FaultKind.RESET_MID_ANSWER, offset=2_000),
    Fault(FaultKind.CUT_ANSWER, offset=4_000),
    Fault(FaultKind.RESET_MID_ANSWER, offset=3_000),
    Fault(FaultKind.CUT_ANSWER, offset=5_000),
    Fault(FaultKind.RESET_MID_ANSWER, offset=4_000),
)
STALL = Fault(FaultKind.STALL_ANSWER, offset=3_000, seconds=30)
# The server restarts before this write, once the follower is past the stall. The faults
# above need about 21 kB of changes, a third of what the writes before it make.
RESTART_BEFORE_WRITE = 700
# The follower should give up on the stalled answer after 3 heartbeats and ask again
# within MAX_RETRY_DELAY (4 s in all). A follower that waits longer fails the test; the
# stall is then ended early, so that the rest is still checked.
STALL_NOTICED_WITHIN = 15.0
# For each wait on progress; for the follower to hand out the last writes (it takes well
# under a second); for the whole run (below pytest-timeout's 120 s).
LIMIT = 60.0
CATCH_UP_LIMIT = 20.0
RUN_LIMIT = 100.0


@dataclass(frozen=True)
class FollowedServer:
    """The server the follower follows, and how to restart it (None: it cannot be)."""

    url: str
    user: str
    password: str
    restart: Callable[[], None] | None


@pytest.fixture
def followed_server(request: pytest.FixtureRequest) -> Iterator[FollowedServer]:
    """A private pouchdb-server (on disk, so a restart keeps the data), or COUCHDB_URL's.

    One per test: the restart must not disturb the session's shared server.
    """
    if os.environ.get("COUCHDB_URL", "").strip():
        server = request.getfixturevalue("couch_server")
        if not server.url.startswith("http://"):
            pytest.skip(f"FaultProxy forwards to http:// servers only, not {server.url}")
        yield FollowedServer(server.url, server.user, server.password, None)
        return
    with LocalCouchServer() as local:
        yield FollowedServer(local.url, local.user, local.password, local.restart)


def generation(rev: str) -> int:
    return int(rev.partition("-")[0])


@dataclass
class Ledger:
    """What the writer wrote and what the follower handed out, in order."""

    written: list[tuple[str, int, str | None]] = field(default_factory=list)
    """(id, generation, rev) per write; rev None for a deletion (its answer has no rev)."""
    kinds: Counter[str] = field(default_factory=Counter)
    delivered: list[tuple[str, str]] = field(default_factory=list)
    """(id, rev) per event handed out."""
    sequences: list[str] = field(default_factory=list)
    """The sequence of each event handed out, as it appears in a query string."""
    writes_finished: asyncio.Event = field(default_factory=asyncio.Event)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the writes are done and the last one of each document was handed out."""
    _outstanding: dict[str, int] | None = None

    def wrote(self, kind: str, doc_id: str, generation: int, rev: str | None) -> None:
        self.kinds[kind] += 1
        self.written.append((doc_id, generation, rev))

    def writes_done(self) -> None:
        last_written = {doc_id: gen for doc_id, gen, _ in self.written}
        last_delivered = {doc_id: generation(rev) for doc_id, rev in self.delivered}
        self._outstanding = {
            doc_id: gen for doc_id, gen in last_written.items() if last_delivered.get(doc_id) != gen
        }
        self.writes_finished.set()
        self._check_caught_up()

    def deliver(self, event: BaseChangeEvent) -> None:
        self.delivered.append((event.id, event.rev))
        self.sequences.append(str(event.sequence))
        if self._outstanding is not None:
            if self._outstanding.get(event.id) == generation(event.rev):
                del self._outstanding[event.id]
            self._check_caught_up()

    def _check_caught_up(self) -> None:
        if self._outstanding is not None and not self._outstanding:
            self.caught_up.set()


async def write(
    database: Database, ledger: Ledger, before_restart: Callable[[], Awaitable[None]]
) -> None:
    """WRITES seeded writes straight to the server: creates, updates, deletes (PUT, DELETE)."""
    choose = random.Random(6)
    live: list[Document] = []
    for number in range(WRITES):
        if number == RESTART_BEFORE_WRITE:
            await before_restart()
        draw = choose.random()
        if not live or draw < 0.45:
            doc = Document(database, f"doc{number:04}", data={"n": number})
            await doc.save()
            live.append(doc)
            kind = "create"
        elif draw < 0.8:
            doc = choose.choice(live)
            doc["n"] = number
            await doc.save()
            kind = "update"
        else:
            doc = live.pop(choose.randrange(len(live)))
            assert doc.rev is not None
            deleted_generation = generation(doc.rev) + 1
            await doc.delete()
            ledger.wrote("delete", doc.id, deleted_generation, None)
            continue
        assert doc.rev is not None
        ledger.wrote(kind, doc.id, generation(doc.rev), doc.rev)
    ledger.writes_done()


class FollowerRun:
    """One run: the follower through the proxy, the writes, the stall and the restart."""

    def __init__(
        self, server: FollowedServer, proxy: FaultProxy, follower: ChangesFollower, path: str
    ) -> None:
        self.server = server
        self.proxy = proxy
        self.follower = follower
        self.path = path
        self.ledger = Ledger()
        self.stall_over = asyncio.Event()
        self.stall_noticed_after: float | None = None
        """Seconds from the stall to the follower's next request; None: not in time."""
        self.restart_took: float | None = None

    async def run(self, database: Database) -> None:
        """Follows until every write was handed out (or CATCH_UP_LIMIT passed after the
        last one); raises the first error of any part."""
        async with self.follower:
            parts: set[asyncio.Future[Any]] = {
                asyncio.ensure_future(self._consume()),
                asyncio.ensure_future(write(database, self.ledger, self._restart)),
                asyncio.ensure_future(self._notice_stall()),
            }
            finished = asyncio.ensure_future(self._caught_up_or_given_up())
            try:
                while not finished.done():
                    done, _ = await asyncio.wait(
                        {finished, *parts}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for part in done & parts:
                        part.result()  # raises its error; a part may also just be done
                    parts -= done
            finally:
                for task in (*parts, finished):
                    task.cancel()
                await asyncio.gather(*parts, finished, return_exceptions=True)

    async def _caught_up_or_given_up(self) -> None:
        """Returns once every write was handed out, or CATCH_UP_LIMIT s after the last one
        (the checks then name what is missing)."""
        await self.ledger.writes_finished.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.ledger.caught_up.wait(), CATCH_UP_LIMIT)

    async def _consume(self) -> None:
        async for event in self.follower:
            self.ledger.deliver(event)
        raise AssertionError("the follower stopped before it handed out every change")

    async def _notice_stall(self) -> None:
        """Waits for the stall, then for the follower to give it up and ask again."""
        loop = asyncio.get_running_loop()
        await self.proxy.wait_for_stall(timeout=LIMIT)
        stalled_at = loop.time()
        asked = self._feed_requests()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._asked_again(asked), STALL_NOTICED_WITHIN)
            self.stall_noticed_after = loop.time() - stalled_at
            assert isinstance(self.follower.last_error, asyncio.TimeoutError)
        # Ends the stall: an exchange whose client left, or one a follower waits on.
        self.proxy.release()
        self.stall_over.set()

    def _feed_requests(self) -> int:
        return len(self.feed_sinces())

    def feed_sinces(self) -> list[str | None]:
        """The ``since`` of each request of the feed that reached the proxy, in order."""
        return [
            dict(parse_qsl(urlsplit(exchange.request.target).query)).get("since")
            for exchange in self.proxy.exchanges
            if exchange.request.path == self.path
        ]

    async def _asked_again(self, asked: int) -> None:
        while self._feed_requests() <= asked:
            await asyncio.sleep(0.05)

    async def _restart(self) -> None:
        await asyncio.wait_for(self.stall_over.wait(), LIMIT)
        if self.server.restart is None:
            return
        loop = asyncio.get_running_loop()
        restarting = loop.time()
        await loop.run_in_executor(None, self.server.restart)
        self.restart_took = loop.time() - restarting


@contextlib.asynccontextmanager
async def scratch_database(
    server: FollowedServer, quorum: Quorum | None
) -> AsyncIterator[Database]:
    """A new database with one shard (``q=1``), on a client straight to the server that
    writes every copy (``quorum``): the final count reads ``_changes``."""
    user, password = server.user, server.password
    async with CouchDB(server.url, user, password, quorum=quorum) as client:
        database = await client.create(f"aiocouch_e2e_{uuid.uuid4().hex}", q=1)
        try:
            yield database
        finally:
            with contextlib.suppress(Exception):
                await database.delete()


async def server_changes(database: Database) -> dict[str, tuple[str, bool]]:
    """The server's own record at the end: GET /{db}/_changes, id -> (rev, deleted)."""
    return {
        event.id: (event.rev, isinstance(event, DeletedEvent)) async for event in database.changes()
    }


def sequence_number(sequence: str) -> int:
    """The number that orders the sequences of a one-shard database (pouchdb: all of it)."""
    return int(sequence.partition("-")[0])


def repeats_in_order(ledger: Ledger) -> int:
    """How many changes came again; asserts that the others came in the server's order,
    each document's revisions in rising generation."""
    generations: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    last_sequence = 0
    repeats = 0
    for (doc_id, rev), sequence in zip(ledger.delivered, ledger.sequences):
        if (doc_id, rev) in seen:
            repeats += 1
            continue
        seen.add((doc_id, rev))
        assert generation(rev) > generations.get(doc_id, 0), f"{doc_id} {rev} out of order"
        assert sequence_number(sequence) > last_sequence, f"{sequence} out of order"
        generations[doc_id] = generation(rev)
        last_sequence = sequence_number(sequence)
    return repeats


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
async def test_a_follower_delivers_every_change_through_disconnects_a_stall_and_a_restart(
    followed_server: FollowedServer,
    quorum: Quorum | None,
    transport: str,
    record_property: Callable[[str, object], None],
) -> None:
    server = followed_server
    loop = asyncio.get_running_loop()
    started = loop.time()
    options: dict[str, Any] = {"connector": aiohttp.TCPConnector()} if transport == AIOHTTP else {}
    async with scratch_database(server, quorum) as database:
        path = f"/{database.id}/_changes"
        async with FaultProxy(server.url) as proxy:
            for fault in (*DISCONNECTS, STALL):
                proxy.force(fault, path=path)
            async with CouchDB(
                proxy.url, user=server.user, password=server.password, **options
            ) as proxied:
                follower = Database(proxied, database.id).follow(
                    heartbeat=HEARTBEAT, max_retry_delay=MAX_RETRY_DELAY
                )
                run = FollowerRun(server, proxy, follower, path)
                await asyncio.wait_for(run.run(database), RUN_LIMIT)
                faults = proxy.stats.faults
                sinces = run.feed_sinces()
        final = await server_changes(database)
    ledger = run.ledger
    delivered = set(ledger.delivered)
    last_delivered = dict(ledger.delivered)
    missed = {(doc_id, rev) for doc_id, (rev, _) in final.items()} - delivered
    repeats = repeats_in_order(ledger)
    figures: dict[str, object] = {
        "writes": WRITES,
        "creates": ledger.kinds["create"],
        "updates": ledger.kinds["update"],
        "deletes": ledger.kinds["delete"],
        "changes delivered": len(ledger.delivered),
        # the feed lists a document once, at its latest revision: one read after a few
        # quick writes to it reports only the last
        "writes seen only through a later revision": WRITES - len(delivered),
        "resumes": follower.resumes,
        "duplicates": follower.duplicates,
        "missed": len(missed),
        "disconnects": len(DISCONNECTS),
        "stall noticed after (s)": (
            round(run.stall_noticed_after, 1)
            if run.stall_noticed_after is not None
            else f"not within {STALL_NOTICED_WITHIN:g}"
        ),
        "restart (s)": (
            round(run.restart_took, 1)
            if run.restart_took is not None
            else "skipped: the test cannot restart the server of COUCHDB_URL"
        ),
        "test took (s)": round(loop.time() - started, 1),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(
        f"follower end-to-end [{transport}]: " + ", ".join(f"{k} {v}" for k, v in figures.items())
    )

    # The writer's record and the server's agree: the restart lost nothing.
    last_write = {doc_id: (gen, rev) for doc_id, gen, rev in ledger.written}
    assert {doc_id: generation(rev) for doc_id, (rev, _) in final.items()} == {
        doc_id: gen for doc_id, (gen, _) in last_write.items()
    }
    assert {doc_id: rev for doc_id, (_, rev) in last_write.items()} == {
        doc_id: None if deleted else rev for doc_id, (rev, deleted) in final.items()
    }
    # Every change delivered, the last one of each document last; nothing made up; in
    # order; repeats counted.
    assert not missed
    assert last_delivered == {doc_id: rev for doc_id, (rev, _) in final.items()}
    written = {(doc_id, rev) for doc_id, _, rev in ledger.written if rev is not None}
    written |= {(doc_id, rev) for doc_id, (rev, deleted) in final.items() if deleted}
    assert delivered <= written
    assert repeats == follower.duplicates
    # Each resume asks since a change it handed out, never going back.
    assert sinces[0] is None
    resumed = [since for since in sinces[1:] if since is not None]
    assert resumed == sinces[1:]
    assert set(resumed) <= set(ledger.sequences)
    assert resumed == sorted(resumed, key=sequence_number)
    # Every fault acted, and each break was followed by a resume.
    assert faults == {
        FaultKind.RESET_MID_ANSWER: 3,
        FaultKind.CUT_ANSWER: 2,
        FaultKind.STALL_ANSWER: 1,
    }
    breaks = (
        len(DISCONNECTS) + (run.stall_noticed_after is not None) + (run.restart_took is not None)
    )
    assert follower.resumes >= breaks
    if run.stall_noticed_after is None:
        raise StallWaitedOut(
            f"the follower still waited on an answer silent for {STALL_NOTICED_WITHIN:g} s "
            f"(heartbeat {HEARTBEAT:g} s)"
        )
