"""``db.docs()`` over real sockets, in both layouts a server writes ``_all_docs`` in.

CouchDB 3.x streams ``_all_docs`` one row per HTTP chunk: ``{"total_rows":N,"offset":0,
"rows":[\\r\\n``, then each row, the second and later ones after ``,\\r\\n``, then
``\\r\\n]}``. pouchdb-server writes the whole answer on one line. Many rows arrive in one
read (the parser hands them out a few dozen at a time), so these answers hold hundreds of
rows, some with ``},{"id":`` inside a document (the separator of the one-line layout).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import TCPConnector

from aiocouch import CouchDB, Database
from aiocouch.exception import IncompleteResponseError, InvalidResponseError
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunked,
    http_response,
)

COUNT = 300
LIMIT = 10.0


def make_doc(n: int) -> dict[str, Any]:
    doc_id = f"_design/d{n:03}" if n % 97 == 5 else f"doc{n:03}"
    doc: dict[str, Any] = {"_id": doc_id, "_rev": f"1-{n:032x}", "n": n}
    if n % 7 == 0:
        # the one-line layout's separator, inside a document
        doc["items"] = [{"id": "x"}, {"id": "y", "text": '},{"id":'}]
    return doc


DOCS = [make_doc(n) for n in range(COUNT)]
ROWS = [{"id": d["_id"], "key": d["_id"], "value": {"rev": d["_rev"]}, "doc": d} for d in DOCS]
EXPECTED = [d for d in DOCS if not d["_id"].startswith("_design/")]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def couchdb_chunks(rows: list[Any]) -> list[bytes]:
    """The chunks' contents of CouchDB's answer: a head, one row each, an end."""
    head = b'{"total_rows":%d,"offset":0,"rows":[\r\n' % len(rows)
    first, *others = (compact(row) for row in rows)
    return [head, first, *(b",\r\n" + row for row in others), b"\r\n]}\n"]


def one_line(rows: list[Any]) -> bytes:
    return compact({"total_rows": len(rows), "offset": 0, "rows": rows}) + b"\n"


Answer = Callable[[ScriptedConnection], Any]


@contextlib.asynccontextmanager
async def answering(answer: Answer, *, aiohttp: bool) -> AsyncIterator[Database]:
    """A database whose ``_all_docs`` is answered by ``answer``, read by one attempt on the
    lean transport or on aiohttp's."""
    options = {"connector": TCPConnector()} if aiohttp else {}

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        assert request.target.startswith("/db/_all_docs?")
        await answer(connection)

    async with ScriptedServer(handler) as server:
        client = CouchDB(server.url, retry=False, **options)
        try:
            yield Database(client, "db")
        finally:
            await client.close()


@pytest.fixture(params=["lean", "aiohttp"])
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The client's options: the lean transport, or aiohttp's (``connector=``)."""
    return {"aiohttp": request.param == "aiohttp"}


@pytest.mark.parametrize("writes", [1, 7, COUNT + 2], ids=["one-write", "7-writes", "a-write-each"])
async def test_docs_reads_couchdbs_one_row_per_chunk(options: dict[str, Any], writes: int) -> None:
    pieces = [chunked(piece)[:-5] for piece in couchdb_chunks(ROWS)] + [b"0\r\n\r\n"]
    size = -(-len(pieces) // writes)
    groups = [b"".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]

    async def send(connection: ScriptedConnection) -> None:
        await connection.send(HEAD)
        await connection.send_pieces(groups, pause=0.001)

    async with answering(send, **options) as db:
        docs = [doc async for doc in db.docs()]
    assert [doc.id for doc in docs] == [d["_id"] for d in EXPECTED]
    assert [doc.data for doc in docs] == EXPECTED


async def test_docs_reads_pouchdb_servers_one_line(options: dict[str, Any]) -> None:
    async def send(connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, one_line(ROWS)))

    async with answering(send, **options) as db:
        docs = [doc async for doc in db.docs(include_ddocs=True)]
    assert [doc.data for doc in docs] == DOCS


async def test_an_answer_cut_after_many_rows_hands_out_the_complete_ones_then_raises(
    options: dict[str, Any],
) -> None:
    pieces = couchdb_chunks(ROWS)
    cut = 200  # pieces[cut] is row cut - 1; it arrives half
    sent = b"".join(chunked(piece)[:-5] for piece in pieces[:cut])
    half = pieces[cut][: len(pieces[cut]) // 2]
    sent += b"%x\r\n%s" % (len(pieces[cut]), half)

    async def send(connection: ScriptedConnection) -> None:
        await connection.send(HEAD + sent)
        connection.close()

    seen: list[str] = []
    async with answering(send, **options) as db:
        with pytest.raises(IncompleteResponseError):
            async for doc in db.docs():
                seen.append(doc.id)
    complete = [d["_id"] for d in EXPECTED if d["n"] < cut - 1]
    if options["aiohttp"]:
        # aiohttp drops what it had buffered once it sees the break: fewer rows, in order
        assert seen == complete[: len(seen)]
    else:
        assert seen == complete


@pytest.mark.parametrize("layout", ["couchdb", "one-line"])
async def test_a_broken_row_after_many_comes_after_the_rows_before_it(
    options: dict[str, Any], layout: str
) -> None:
    broken = 250
    rows: list[Any] = [*ROWS[:broken], [1], *ROWS[broken + 1 :]]
    if layout == "couchdb":
        body = HEAD + b"".join(chunked(piece)[:-5] for piece in couchdb_chunks(rows)) + b"0\r\n\r\n"
    else:
        body = http_response(200, one_line(rows))

    async def send(connection: ScriptedConnection) -> None:
        await connection.send(body)

    seen: list[str] = []
    async with answering(send, **options) as db:
        with pytest.raises(InvalidResponseError, match="not a JSON object"):
            async for doc in db.docs():
                seen.append(doc.id)
    assert seen == [d["_id"] for d in EXPECTED if d["n"] < broken]
