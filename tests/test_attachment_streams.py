"""Streamed attachments (issue 7): uploads from files, file objects and async iterables,
downloads piece by piece and to files, byte ranges, HEAD, inline attachments, design
documents' attachments; on both transports against the test server, the wire details
against ScriptedServer, and flat memory for large attachments."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import random
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest

from aiocouch import (
    CouchDB,
    Database,
    Document,
    NotFoundError,
    RangeNotSatisfiableError,
    ReadTimeoutError,
    RetryPolicy,
)
from aiocouch.attachment import Attachment
from aiocouch.design_document import DesignDocument
from aiocouch.exception import IncompleteResponseError, InvalidResponseError
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
    in_turn,
)

LEAN, AIOHTTP = "HTTPTransport", "AiohttpTransport"
MIB = 1 << 20
BINARY = "application/octet-stream"


def payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def md5_digest(data: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


async def pieces_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(params=[LEAN, AIOHTTP], ids=["lean", "aiohttp"])
def transport_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def client_options(transport_name: str, **options: Any) -> dict[str, Any]:
    """``connector=`` selects the aiohttp transport."""
    if transport_name == AIOHTTP:
        options["connector"] = aiohttp.TCPConnector()
    return options


@pytest.fixture
async def db(
    transport_name: str,
    server_url: str,
    admin_user: str,
    admin_password: str,
    request_counter: RequestCounter,
    database: Database,
) -> AsyncIterator[Database]:
    """The test's scratch database, through a client on the chosen transport."""
    options = client_options(transport_name, trace_configs=request_counter.trace_configs)
    async with CouchDB(server_url, user=admin_user, password=admin_password, **options) as client:
        assert type(client._server._transport).__name__ == transport_name
        scratch = await client[database.id]
        request_counter.reset()
        yield scratch


@pytest.fixture
async def doc(db: Database, request_counter: RequestCounter) -> Document:
    document = Document(db, "doc", data={"name": "parent"})
    await document.save()
    request_counter.reset()
    return document


# --- uploads ---


async def test_save_from_a_path_sends_the_file_and_refetches_the_parent(
    doc: Document, request_counter: RequestCounter, tmp_path: Path
) -> None:
    data = payload(3 * MIB + 5)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    first_rev = doc.rev

    await doc.attachment("file.bin").save_from(source, BINARY)

    path = f"/{doc._database.id}/doc"
    assert request_counter.requests == [
        ("PUT", f"{path}/file.bin?rev={first_rev}"),
        ("GET", path),
    ]
    stub = doc["_attachments"]["file.bin"]
    assert stub["length"] == len(data)
    assert stub["digest"] == md5_digest(data)
    assert doc["name"] == "parent"
    assert await Document(doc._database, "doc").attachment("file.bin").fetch() == data


async def test_save_from_a_file_object_sends_what_follows_its_position(doc: Document) -> None:
    data = payload(MIB)
    file = io.BytesIO(data)
    file.seek(1000)

    await doc.attachment("rest.bin").save_from(file, BINARY)

    assert await doc.attachment("rest.bin").fetch() == data[1000:]


@pytest.mark.parametrize("length", [None, 2 * MIB + 3], ids=["unknown-length", "known-length"])
async def test_save_from_an_async_iterable_stores_its_bytes(
    doc: Document, length: int | None
) -> None:
    data = payload(2 * MIB + 3)

    await doc.attachment("streamed.bin").save_from(pieces_of(data), BINARY, length=length)

    assert doc["_attachments"]["streamed.bin"]["length"] == len(data)
    assert await doc.attachment("streamed.bin").fetch() == data


async def shorter_than_stated() -> AsyncIterator[bytes]:
    async for piece in pieces_of(b"x" * 999_999):
        yield piece


async def longer_than_stated() -> AsyncIterator[bytes]:
    async for piece in pieces_of(b"x" * 1_000_001):
        yield piece


class SourceBroke(Exception):
    pass


async def breaking() -> AsyncIterator[bytes]:
    yield b"a" * 300_000
    raise SourceBroke("disk gone")


BROKEN_SOURCES = [
    (shorter_than_stated, 1_000_000, ValueError, "ended after 999999 bytes"),
    (longer_than_stated, 1_000_000, ValueError, "longer than its stated length 1000000"),
    (breaking, None, SourceBroke, "disk gone"),
    (breaking, 1_000_000, SourceBroke, "disk gone"),
]
BROKEN_IDS = ["shorter", "longer", "raising-chunked", "raising-with-length"]


@pytest.mark.parametrize(("source", "length", "error", "message"), BROKEN_SOURCES, ids=BROKEN_IDS)
async def test_a_source_that_breaks_raises_its_error_and_leaves_the_document(
    doc: Document,
    source: Callable[[], AsyncIterator[bytes]],
    length: int | None,
    error: type[Exception],
    message: str,
) -> None:
    rev = doc.rev

    with pytest.raises(error, match=message):
        await doc.attachment("broken.bin").save_from(source(), BINARY, length=length)

    assert doc.rev == rev
    assert "_attachments" not in doc


@pytest.mark.parametrize(("source", "length", "error", "message"), BROKEN_SOURCES, ids=BROKEN_IDS)
async def test_a_source_that_breaks_never_completes_the_request(
    transport_name: str,
    source: Callable[[], AsyncIterator[bytes]],
    length: int | None,
    error: type[Exception],
    message: str,
) -> None:
    """The server never gets a whole body (it would store it): no last chunk, fewer bytes
    than Content-Length, the connection reset; one too many is found before the last."""
    async with scripted(couch_like(), transport_name) as (server, client):
        document = await fetched_document(client)
        with pytest.raises(error, match=message):
            await document.attachment("a.bin").save_from(source(), BINARY, length=length)

    assert server.count("PUT") == 0  # (a request is recorded once its body arrived whole)
    assert server.count("GET") == 1


@pytest.mark.couchdb_only(
    "pouchdb-server stores an empty attachment when the upload's connection is reset "
    "before its body ended (measured; CouchDB reads the whole body first, transcript 9.2)"
)
@pytest.mark.parametrize(("source", "length", "error", "message"), BROKEN_SOURCES, ids=BROKEN_IDS)
async def test_couchdb_stores_nothing_of_an_upload_whose_source_broke(
    doc: Document,
    source: Callable[[], AsyncIterator[bytes]],
    length: int | None,
    error: type[Exception],
    message: str,
) -> None:
    rev = doc.rev

    with pytest.raises(error):
        await doc.attachment("broken.bin").save_from(source(), BINARY, length=length)

    assert (await doc._database.get("doc")).rev == rev
    assert await doc.attachment("broken.bin").exists() is False


async def test_bad_sources_raise_before_any_request(
    doc: Document, request_counter: RequestCounter, tmp_path: Path
) -> None:
    source = tmp_path / "three.bin"
    source.write_bytes(b"abc")
    attachment = doc.attachment("x.bin")

    with pytest.raises(TypeError, match="file path, a binary file object or an async iterable"):
        await attachment.save_from(42, BINARY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="binary mode"):
        await attachment.save_from(io.StringIO("text"), BINARY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length=4 but the file"):
        await attachment.save_from(source, BINARY, length=4)
    with pytest.raises(ValueError, match="length must be an int >= 0"):
        await attachment.save_from(pieces_of(b"abc"), BINARY, length=-1)
    with pytest.raises(ValueError, match="must be fetched or saved"):
        await Document(doc._database, "never-saved").attachment("x").save_from(source, BINARY)
    with pytest.raises(FileNotFoundError):
        await attachment.save_from(tmp_path / "missing.bin", BINARY)

    assert request_counter.count == 0


# --- downloads ---


@pytest.fixture
async def stored(doc: Document, request_counter: RequestCounter) -> bytes:
    """A binary attachment ``blob.bin`` of ``doc``: its bytes."""
    data = payload(MIB + 17, seed=11)
    await doc.attachment("blob.bin").save(data, BINARY)
    request_counter.reset()
    return data


async def test_info_tells_content_type_length_and_digest_with_one_head(
    doc: Document, stored: bytes, request_counter: RequestCounter
) -> None:
    attachment = Document(doc._database, "doc").attachment("blob.bin")

    info = await attachment.info()

    assert info.content_type == BINARY == attachment.content_type
    assert info.length == len(stored)
    assert info.digest == md5_digest(stored) == doc["_attachments"]["blob.bin"]["digest"]
    assert isinstance(info.accepts_ranges, bool)
    assert request_counter.requests == [("HEAD", f"/{doc._database.id}/doc/blob.bin")]


async def test_info_of_a_missing_attachment_raises_not_found(doc: Document) -> None:
    with pytest.raises(NotFoundError):
        await doc.attachment("missing.bin").info()


async def test_stream_hands_out_the_attachment_piece_by_piece(
    doc: Document, stored: bytes, request_counter: RequestCounter
) -> None:
    attachment = doc.attachment("blob.bin")

    async with attachment.stream() as pieces:
        received = [piece async for piece in pieces]

    assert b"".join(received) == stored
    assert pieces.status == 200
    assert pieces.length == pieces.total_length == len(stored)
    assert pieces.content_type == BINARY == attachment.content_type
    assert pieces.digest == md5_digest(stored)
    assert request_counter.requests == [("GET", f"/{doc._database.id}/doc/blob.bin")]


async def test_async_for_on_the_stream_sends_the_request_itself(
    doc: Document, stored: bytes
) -> None:
    received = [piece async for piece in doc.attachment("blob.bin").stream()]

    assert b"".join(received) == stored
    assert await doc.attachment("blob.bin").exists()  # the connection went back clean


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 5), (1000, 4096), (MIB, None), (MIB + 16, 1), (MIB, 100), (0, None)],
)
async def test_fetch_range_returns_exactly_the_bytes_asked_for(
    doc: Document, stored: bytes, offset: int, length: int | None
) -> None:
    """CouchDB sends 206 for a binary attachment, pouchdb-server the whole attachment
    (transcript 9.11): either way the range is what comes out."""
    end = None if length is None else offset + length

    assert await doc.attachment("blob.bin").fetch_range(offset, length) == stored[offset:end]


async def test_a_range_of_a_compressible_attachment_is_cut_from_the_whole_answer(
    doc: Document,
) -> None:
    """CouchDB stores text/* compressed and answers a range with the whole of it
    (transcript 9.10: 200, Accept-Ranges: none)."""
    text = b"hello world\n" * 1000
    await doc.attachment("text.txt").save(text, "text/plain")

    async with doc.attachment("text.txt").stream(offset=6, length=5) as pieces:
        received = b"".join([piece async for piece in pieces])

    assert received == b"world"
    assert pieces.length == 5


@pytest.mark.parametrize("offset", [MIB + 17, MIB + 100])
async def test_a_range_starting_at_or_past_the_end_raises_range_not_satisfiable(
    doc: Document, stored: bytes, offset: int
) -> None:
    """CouchDB answers 416 (transcript 9.12); pouchdb-server sends the whole attachment,
    whose length shows the same."""
    with pytest.raises(RangeNotSatisfiableError) as excinfo:
        await doc.attachment("blob.bin").fetch_range(offset, 10)

    assert excinfo.value.status == 416
    assert excinfo.value.error == "requested_range_not_satisfiable"
    assert isinstance(excinfo.value, ValueError)


async def test_bad_range_arguments_raise_before_any_request(
    doc: Document, request_counter: RequestCounter
) -> None:
    attachment = doc.attachment("blob.bin")

    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        attachment.stream(offset=-1)
    with pytest.raises(ValueError, match="length must be None or an int >= 1"):
        await attachment.fetch_range(0, 0)
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        await attachment.fetch_to(io.BytesIO(), offset=True)

    assert request_counter.count == 0


async def test_fetch_to_a_path_writes_the_attachment_or_its_range(
    doc: Document, stored: bytes, tmp_path: Path
) -> None:
    whole, part = tmp_path / "whole.bin", tmp_path / "part.bin"

    assert await doc.attachment("blob.bin").fetch_to(whole) == len(stored)
    assert await doc.attachment("blob.bin").fetch_to(str(part), offset=10, length=MIB) == MIB

    assert whole.read_bytes() == stored
    assert part.read_bytes() == stored[10 : 10 + MIB]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["part.bin", "whole.bin"]


async def test_fetch_to_a_file_object_writes_at_its_position(doc: Document, stored: bytes) -> None:
    file = io.BytesIO()
    file.write(b"head:")

    assert await doc.attachment("blob.bin").fetch_to(file) == len(stored)

    assert file.getvalue() == b"head:" + stored


async def test_fetch_to_a_path_in_a_missing_directory_raises_before_any_request(
    doc: Document, request_counter: RequestCounter, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        await doc.attachment("blob.bin").fetch_to(tmp_path / "missing" / "x.bin")

    assert request_counter.count == 0


async def test_a_failed_fetch_to_a_path_leaves_the_path_as_it_was(
    doc: Document, tmp_path: Path
) -> None:
    target = tmp_path / "target.bin"
    target.write_bytes(b"old content")

    with pytest.raises(NotFoundError):
        await doc.attachment("missing.bin").fetch_to(target)

    assert target.read_bytes() == b"old content"
    assert [path.name for path in tmp_path.iterdir()] == ["target.bin"]


@pytest.mark.couchdb_only(
    "pouchdb-server ignores Range and answers 200 with the whole attachment (transcript 9.11)"
)
async def test_couchdb_answers_a_binary_range_with_206_and_its_content_range(
    doc: Document, stored: bytes
) -> None:
    async with doc.attachment("blob.bin").stream(offset=100, length=5) as pieces:
        received = b"".join([piece async for piece in pieces])

    assert received == stored[100:105]
    assert pieces.status == 206
    assert pieces.length == 5
    assert pieces.total_length == len(stored)


# --- design documents ---


async def test_design_document_attachments_live_under_the_design_path(
    db: Database, request_counter: RequestCounter
) -> None:
    """Transcript 14.67-14.71: PUT, GET, HEAD, DELETE /{db}/_design/{ddoc}/{name}."""
    design = DesignDocument(db, "x")
    await design.save()
    request_counter.reset()
    attachment = design.attachment("readme.txt")
    text = b"design doc attachment\n" * 100

    await attachment.save_from(pieces_of(text, 500), "text/plain")
    info = await attachment.info()
    assert await attachment.fetch_range(7, 3) == b"doc"
    await attachment.delete()

    path = f"/{db.id}/_design/x/readme.txt"
    assert [(method, target.split("?")[0]) for method, target in request_counter.requests] == [
        ("PUT", path),
        ("GET", f"/{db.id}/_design/x"),
        ("HEAD", path),
        ("GET", path),
        ("DELETE", path),
        ("GET", f"/{db.id}/_design/x"),
    ]
    assert info.content_type == "text/plain"
    assert info.length == len(text)
    assert "_attachments" not in design or design["_attachments"] == {}
    assert await attachment.exists() is False


# --- inline attachments ---


async def test_set_inline_saves_the_attachment_with_the_document(
    db: Database, request_counter: RequestCounter
) -> None:
    """Transcript 9.25-9.28: one PUT of the document; a stub on a plain GET."""
    document = Document(db, "inline", data={"title": "inline"})
    document.attachment("inline.txt").set_inline(b"inline hello", "text/plain")

    await document.save()

    assert request_counter.requests == [("PUT", f"/{db.id}/inline")]
    fetched = await db.get("inline")
    stub = fetched["_attachments"]["inline.txt"]
    assert stub["stub"] is True
    assert stub["length"] == 12
    assert stub["content_type"] == "text/plain"
    assert fetched.attachment("inline.txt").inline_data is None
    assert await fetched.attachment("inline.txt").fetch() == b"inline hello"


async def test_fetch_with_attachments_brings_their_bytes_inline(
    doc: Document, stored: bytes, request_counter: RequestCounter
) -> None:
    """Transcript 9.16: ``?attachments=true`` with base64 ``data`` instead of stubs."""
    doc.attachment("note.txt").set_inline(b"a note", "text/plain")
    await doc.save()
    request_counter.reset()

    fetched = Document(doc._database, "doc")
    await fetched.fetch(attachments=True)

    assert request_counter.requests == [("GET", f"/{doc._database.id}/doc?attachments=true")]
    assert fetched.attachment("blob.bin").inline_data == stored
    assert fetched.attachment("note.txt").inline_data == b"a note"


async def test_fetch_with_atts_since_brings_the_newer_attachments_inline(doc: Document) -> None:
    first = doc.attachment("first.txt")
    await first.save(b"first", "text/plain")
    since = doc.rev
    assert since is not None
    await doc.attachment("second.txt").save(b"second", "text/plain")

    fetched = Document(doc._database, "doc")
    await fetched.fetch(atts_since=[since])

    assert fetched.attachment("second.txt").inline_data == b"second"


@pytest.mark.couchdb_only(
    "pouchdb-server ignores atts_since and inlines every attachment (measured; CouchDB's API "
    "reference, GET /{db}/{docid}: atts_since includes only attachments written after)"
)
async def test_atts_since_leaves_the_older_attachments_as_stubs(doc: Document) -> None:
    await doc.attachment("first.txt").save(b"first", "text/plain")
    since = doc.rev
    assert since is not None
    await doc.attachment("second.txt").save(b"second", "text/plain")

    fetched = Document(doc._database, "doc")
    await fetched.fetch(atts_since=[since])

    assert fetched["_attachments"]["first.txt"]["stub"] is True
    assert fetched.attachment("first.txt").inline_data is None


@pytest.mark.couchdb_only(
    "pouchdb-server stores attachments uncompressed and adds no encoding (transcript 9.18)"
)
async def test_att_encoding_info_shows_how_a_text_attachment_is_stored(doc: Document) -> None:
    text = b"hello world\n" * 100
    await doc.attachment("att.txt").save(text, "text/plain")

    fetched = Document(doc._database, "doc")
    await fetched.fetch(att_encoding_info=True)

    stub = fetched["_attachments"]["att.txt"]
    assert stub["encoding"] == "gzip"
    assert 0 < stub["encoded_length"] < len(text)
    assert stub["length"] == len(text)


async def test_atts_since_that_is_no_list_raises_before_any_request(
    doc: Document, request_counter: RequestCounter
) -> None:
    with pytest.raises(TypeError, match="atts_since takes a list of revisions"):
        await doc.fetch(atts_since="1-abc")  # type: ignore[arg-type]

    assert request_counter.count == 0


async def test_inline_data_that_is_no_base64_raises_value_error() -> None:
    document = Document(None, "local")
    document["_attachments"] = {"bad.bin": {"content_type": BINARY, "data": "!!!"}}

    with pytest.raises(ValueError, match="no base64"):
        _ = document.attachment("bad.bin").inline_data


# --- on the wire (ScriptedServer) ---


Handler = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted(
    handler: Handler, transport_name: str, **options: Any
) -> AsyncIterator[tuple[ScriptedServer, CouchDB]]:
    """A ScriptedServer with ``handler``, and a client of it on the chosen transport."""
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(ScriptedServer(handler))
        client = CouchDB(server.url, **client_options(transport_name, **options))
        yield server, await stack.enter_async_context(client)


def couch_like(uploads: list[Handler] | None = None, download: bytes | None = None) -> Handler:
    """A handler for the document ``/db/doc``: its GET answers rev 1-a, after a stored
    attachment 2-b; an attachment PUT is answered as the next of ``uploads`` says (by
    default: stored, 201); an attachment GET with ``download``."""
    pending = list(uploads or [])
    rev = "1-a"

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        nonlocal rev
        if request.method == "PUT" and pending:
            await pending.pop(0)(request, connection)
        elif request.method == "PUT":
            rev = "2-b"
            await connection.send(http_response(201, b'{"ok":true,"id":"doc","rev":"2-b"}'))
        elif request.target == "/db/doc":
            await connection.send(http_response(200, b'{"_id":"doc","_rev":"%s"}' % rev.encode()))
        else:
            assert download is not None
            await connection.send(download)

    return handler


async def fetched_document(client: CouchDB) -> Document:
    document = Document(Database(client, "db"), "doc")
    await document.fetch()
    return document


def attachment_of(client: CouchDB, name: str) -> Attachment:
    return Document(Database(client, "db"), "doc").attachment(name)


async def reset(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    connection.reset()


@pytest.mark.parametrize("length", [None, 300_000], ids=["chunked", "content-length"])
async def test_an_upload_is_framed_by_its_length_or_chunked(
    transport_name: str, length: int | None
) -> None:
    data = payload(300_000)
    async with scripted(couch_like(), transport_name) as (server, client):
        document = await fetched_document(client)
        await document.attachment("a.bin").save_from(pieces_of(data, 70_000), BINARY, length=length)

    put = server.requests[1]
    assert (put.method, put.target) == ("PUT", "/db/doc/a.bin?rev=1-a")
    assert put.body == data
    if length is None:
        assert put.header("Transfer-Encoding") == "chunked"
        assert put.header("Content-Length") is None
    else:
        assert put.header("Content-Length") == str(length)
        assert put.header("Transfer-Encoding") is None
    assert put.header("Content-Type") == BINARY
    assert document.rev == "2-b"


async def test_an_upload_whose_answer_was_lost_is_sent_again_from_a_file(
    transport_name: str, tmp_path: Path
) -> None:
    data = payload(200_000)
    source = tmp_path / "a.bin"
    source.write_bytes(data)
    policy = RetryPolicy(attempts=3, backoff=0)
    async with scripted(couch_like([reset]), transport_name, retry=policy) as (server, client):
        await (await fetched_document(client)).attachment("a.bin").save_from(source, BINARY)

    puts = [request for request in server.requests if request.method == "PUT"]
    assert [put.body for put in puts] == [data, data]


class Unseekable(io.BytesIO):
    """A binary file object that cannot seek, as a pipe."""

    def seekable(self) -> bool:
        return False


async def test_an_unseekable_file_object_is_sent_chunked_and_once(transport_name: str) -> None:
    data = payload(300_000)
    policy = RetryPolicy(attempts=3, backoff=0)
    async with scripted(couch_like([reset]), transport_name, retry=policy) as (server, client):
        document = await fetched_document(client)
        with pytest.raises(aiohttp.ClientConnectionError):
            await document.attachment("a.bin").save_from(Unseekable(data), BINARY)

    assert server.count("PUT") == 1
    assert server.requests[1].header("Transfer-Encoding") == "chunked"
    assert server.requests[1].body == data


async def test_a_repeated_file_upload_answered_409_is_confirmed_by_its_digest(
    transport_name: str, tmp_path: Path
) -> None:
    """The first attempt was applied, its answer lost; the repeat gets 409, and the leaf
    that holds this file's length and MD5, written on 1-a, makes it the success it was."""
    data = payload(200_000)
    source = tmp_path / "a.bin"
    source.write_bytes(data)
    stub = {"content_type": BINARY, "revpos": 2, "digest": md5_digest(data), "length": len(data)}
    leaf = {"_id": "doc", "_rev": "2-b", "_revisions": {"start": 2, "ids": ["b", "a"]}}
    leaves = json.dumps([{"ok": {**leaf, "_attachments": {"a.bin": {**stub, "stub": True}}}}])

    async def conflict(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(409, b'{"error":"conflict","reason":"x"}'))

    answer_leaves = http_response(200, leaves.encode())
    handler = couch_like([reset, conflict])

    async def with_leaves(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if "open_revs=all" in request.target:
            await connection.send(answer_leaves)
        else:
            await handler(request, connection)

    policy = RetryPolicy(attempts=3, backoff=0)
    async with scripted(with_leaves, transport_name, retry=policy) as (server, client):
        document = await fetched_document(client)
        await document.attachment("a.bin").save_from(source, BINARY)

    assert [request.method for request in server.requests] == ["GET", "PUT", "PUT", "GET", "GET"]
    assert server.requests[3].target == "/db/doc?open_revs=all&revs=true"


async def test_an_upload_from_an_iterator_is_not_sent_again_once_begun(
    transport_name: str,
) -> None:
    policy = RetryPolicy(attempts=3, backoff=0)
    async with scripted(couch_like([reset]), transport_name, retry=policy) as (server, client):
        document = await fetched_document(client)
        with pytest.raises(aiohttp.ClientConnectionError):
            await document.attachment("a.bin").save_from(pieces_of(payload(200_000)), BINARY)

    assert server.count("PUT") == 1


@contextlib.asynccontextmanager
async def server_taking_no_upload() -> AsyncIterator[str]:
    """A server that answers the first request (the document GET: rev 1-a), then reads
    nothing more from the connection: its URL."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(http_response(200, b'{"_id":"doc","_rev":"1-a"}'))

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_upload_the_server_does_not_take_ends_after_sock_read(
    transport_name: str,
) -> None:
    """64 MiB fill the socket buffers; then nothing moves for longer than ``sock_read``."""
    limits = aiohttp.ClientTimeout(sock_read=0.3, connect=10, sock_connect=10)

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield bytes(MIB)

    async with server_taking_no_upload() as url:
        options = client_options(transport_name, timeout=limits, retry=False)
        async with CouchDB(url, **options) as client:
            attachment = (await fetched_document(client)).attachment("a.bin")
            with pytest.raises(ReadTimeoutError, match="sock_read"):
                await asyncio.wait_for(attachment.save_from(endless(), BINARY, length=64 * MIB), 20)


async def test_a_slow_source_is_no_silence_of_the_server(transport_name: str) -> None:
    """Pieces 0.5 s apart with a ``sock_read`` of 0.3 s: the waits are the source's."""
    limits = aiohttp.ClientTimeout(sock_read=0.3, connect=10, sock_connect=10)

    async def slow() -> AsyncIterator[bytes]:
        for piece in (b"a" * 1000, b"b" * 1000, b"c" * 1000):
            await asyncio.sleep(0.5)
            yield piece

    async with scripted(couch_like(), transport_name, timeout=limits) as (server, client):
        document = await fetched_document(client)
        await document.attachment("a.bin").save_from(slow(), BINARY)

    assert server.requests[1].body == b"a" * 1000 + b"b" * 1000 + b"c" * 1000


def range_answer(status: int, body: bytes, content_range: str | None) -> bytes:
    headers = [("Accept-Ranges", "bytes"), ("ETag", '"abc="')]
    if content_range is not None:
        headers.append(("Content-Range", content_range))
    return http_response(status, body, headers=headers, content_type=BINARY)


async def test_a_range_read_sends_the_range_and_takes_the_206(transport_name: str) -> None:
    """As CouchDB answers it (transcript 9.11)."""
    answer = range_answer(206, b"\x10\x11\x12\x13\x14", "bytes 0-4/24")
    async with scripted(couch_like(download=answer), transport_name) as (server, client):
        pieces = attachment_of(client, "dir/a.bin").stream(length=5)
        received = b"".join([piece async for piece in pieces])

    assert received == b"\x10\x11\x12\x13\x14"
    assert (pieces.status, pieces.length, pieces.total_length) == (206, 5, 24)
    assert pieces.digest == "md5-abc="
    request = server.requests[0]
    assert (request.target, request.header("Range")) == ("/db/doc/dir%2Fa.bin", "bytes=0-4")


@pytest.mark.parametrize(
    "content_range",
    ["bytes 1-5/24", "bytes 0-9/24", "bytes 0-4", None],
    ids=["other-start", "longer", "no-total", "missing"],
)
async def test_a_206_not_holding_the_range_asked_for_raises_invalid_response(
    transport_name: str, content_range: str | None
) -> None:
    answer = range_answer(206, b"\x10\x11\x12\x13\x14", content_range)
    async with scripted(couch_like(download=answer), transport_name) as (_, client):
        with pytest.raises(InvalidResponseError, match=r"Content-Range|partial answer"):
            await attachment_of(client, "a.bin").fetch_range(0, 5)


async def test_a_416_answer_raises_range_not_satisfiable(transport_name: str) -> None:
    """As CouchDB answers it (transcript 9.12)."""
    body = b'{"error":"requested_range_not_satisfiable","reason":"Requested range not satisfiable"}'
    async with scripted(couch_like(download=http_response(416, body)), transport_name) as (
        server,
        client,
    ):
        with pytest.raises(RangeNotSatisfiableError) as excinfo:
            await attachment_of(client, "a.bin").fetch_range(100, 101)

    assert excinfo.value.reason == "Requested range not satisfiable"
    assert server.requests[0].header("Range") == "bytes=100-200"


async def test_a_whole_answer_to_a_range_is_read_only_up_to_the_range(
    transport_name: str,
) -> None:
    """pouchdb-server and CouchDB (for compressed attachments) send the whole attachment."""
    data = payload(MIB)
    answer = http_response(200, data, content_type=BINARY)
    async with scripted(couch_like(download=answer), transport_name) as (_, client):
        attachment = attachment_of(client, "a.bin")
        assert await attachment.fetch_range(10, 20) == data[10:30]
        assert await attachment.fetch_range(MIB - 3) == data[-3:]
        with pytest.raises(RangeNotSatisfiableError):
            await attachment.fetch_range(MIB)


# --- resumed downloads (ScriptedServer) ---

DATA = payload(400_000, seed=5)
ETAG = [("ETag", '"abc="')]


def cut_after(answer: bytes, missing: int) -> Handler:
    """A handler that sends ``answer`` without its last ``missing`` bytes, then closes."""

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(answer[:-missing])
        connection.close()

    return handler


def sending(answer: bytes) -> Handler:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(answer)

    return handler


def whole(headers: list[tuple[str, str]] = ETAG) -> bytes:
    return http_response(200, DATA, headers=headers, content_type=BINARY)


def part(first: int, last: int, headers: list[tuple[str, str]] = ETAG) -> bytes:
    rest = [*headers, ("Content-Range", f"bytes {first}-{last}/{len(DATA)}")]
    return http_response(206, DATA[first : last + 1], headers=rest, content_type=BINARY)


async def download(
    transport_name: str,
    answers: list[Handler],
    *,
    attempts: int = 3,
    offset: int = 0,
    length: int | None = None,
) -> tuple[bytes, int, list[str | None]]:
    """Streams ``a.bin`` from a server answering in turn with ``answers``: the bytes,
    the resumes and the Range header of each request."""
    policy = RetryPolicy(attempts=attempts, backoff=0)
    async with scripted(in_turn(*answers), transport_name, retry=policy) as (server, client):
        pieces = attachment_of(client, "a.bin").stream(offset=offset, length=length)
        received = b"".join([piece async for piece in pieces])
    return received, pieces.resumes, [request.header("Range") for request in server.requests]


async def test_a_download_cut_short_is_resumed_from_where_it_broke(transport_name: str) -> None:
    received, resumes, ranges = await download(
        transport_name, [cut_after(whole(), 150_000), sending(part(250_000, 399_999))]
    )

    assert received == DATA
    assert resumes == 1
    assert ranges == [None, "bytes=250000-"]


async def test_a_resumed_range_asks_only_for_its_rest(transport_name: str) -> None:
    received, _, ranges = await download(
        transport_name,
        [cut_after(part(10, 300_009), 100_000), sending(part(200_010, 300_009))],
        offset=10,
        length=300_000,
    )

    assert received == DATA[10:300_010]
    assert ranges == ["bytes=10-300009", "bytes=200010-300009"]


async def test_a_whole_answer_to_a_resume_has_the_bytes_handed_out_skipped(
    transport_name: str,
) -> None:
    received, resumes, _ = await download(
        transport_name, [cut_after(whole(), 150_000), cut_after(whole(), 100_000), sending(whole())]
    )

    assert received == DATA
    assert resumes == 2


async def test_an_attachment_changed_since_is_not_resumed(transport_name: str) -> None:
    other = [("ETag", '"other="')]

    with pytest.raises(IncompleteResponseError):
        await download(
            transport_name, [cut_after(whole(), 150_000), sending(part(250_000, 399_999, other))]
        )


@pytest.mark.parametrize(
    ("attempts", "headers"), [(1, ETAG), (3, [])], ids=["no-retries", "no-etag"]
)
async def test_a_break_is_raised_without_retries_or_without_an_etag(
    transport_name: str, attempts: int, headers: list[tuple[str, str]]
) -> None:
    answers = [cut_after(whole(headers), 150_000), sending(whole(headers))]

    with pytest.raises(IncompleteResponseError):
        await download(transport_name, answers, attempts=attempts)


async def test_fetch_to_a_path_survives_a_break(transport_name: str, tmp_path: Path) -> None:
    policy = RetryPolicy(attempts=3, backoff=0)
    answers = in_turn(cut_after(whole(), 150_000), sending(part(250_000, 399_999)))
    async with scripted(answers, transport_name, retry=policy) as (_, client):
        written = await attachment_of(client, "a.bin").fetch_to(tmp_path / "a.bin")

    assert written == len(DATA)
    assert (tmp_path / "a.bin").read_bytes() == DATA


# --- memory ---


@contextlib.contextmanager
def traced_peak() -> Iterator[list[int]]:
    """Traces allocations in the block; the list then holds the peak traced bytes."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
        peak.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


async def generated(size: int, md5: Any) -> AsyncIterator[bytes]:
    """``size`` bytes in 1 MiB pieces, each a new object, hashed into ``md5`` on the way."""
    block = payload(MIB, seed=3)
    for index in range(size // MIB):
        piece = block[index % 97 :] + block[: index % 97]
        md5.update(piece)
        yield piece


async def round_trip(document: Document, size: int) -> tuple[bool, int]:
    """Uploads ``size`` generated bytes and streams them back: (same bytes, peak traced)."""
    attachment = document.attachment("large.bin")
    sent, received = hashlib.md5(), hashlib.md5()
    with traced_peak() as peak:
        await attachment.save_from(generated(size, sent), BINARY, length=size)
        async with attachment.stream() as pieces:
            async for piece in pieces:
                received.update(piece)
    return sent.digest() == received.digest(), peak[0]


async def test_a_large_attachment_round_trips_through_the_test_server_with_flat_memory(
    couchdb: CouchDB, database: Database, is_pouchdb: bool
) -> None:
    """pouchdb-server holds an attachment in memory as base64 and needs ~25 s for 64 MiB
    (measured), so it gets 16 MiB; CouchDB 256 MiB. (Both transports: the next test.)"""
    size = (16 if is_pouchdb else 256) * MIB
    document = Document(database, "large")
    await document.save()

    same, peak = await round_trip(document, size)

    assert same
    assert peak < 8 * MIB, f"peak traced memory {peak / MIB:.1f} MiB for {size // MIB} MiB"


@pytest.fixture(scope="module")
def attachment_server() -> Iterator[str]:
    """testserver.attachment_server in a process of its own: its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "testserver.attachment_server"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait()


async def test_256_mib_round_trip_keeps_memory_flat(
    transport_name: str, attachment_server: str, tmp_path: Path
) -> None:
    size = 256 * MIB
    async with CouchDB(attachment_server, **client_options(transport_name)) as client:
        document = Document(Database(client, "memory"), f"doc-{transport_name}")
        await document.save()

        same, peak = await round_trip(document, size)
        with traced_peak() as download_peak:
            written = await document.attachment("large.bin").fetch_to(tmp_path / "large.bin")

    assert same
    assert peak < 8 * MIB, f"peak traced memory {peak / MIB:.1f} MiB for 256 MiB"
    assert written == size == (tmp_path / "large.bin").stat().st_size
    # Writing to disk is slower than loopback: the lean transport then buffers up to 4 MiB
    # before it stops reading, besides the piece being written.
    assert download_peak[0] < 8 * MIB, f"{download_peak[0] / MIB:.1f} MiB writing 256 MiB"
