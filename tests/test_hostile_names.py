"""Hostile document ids, attachment names and database names (property-based).

Every id the server accepts addresses exactly that document through the public API;
what CouchDB refuses raises a ValueError (a BadRequestError where the server would have
answered 400) before any request: those properties run against a ScriptedServer that
records every request it gets, and they assert it got none.

CouchDB's rules (couch_doc:validate_docid, chttpd_db, couch_db:validate_dbname, and
transcript blocks 3.3, 3.4, 4.51-4.76, 9.3, 9.4): a document id is any non-empty
UTF-8 string, but one starting with ``_`` must be ``_design/<name>`` or ``_local/<name>``;
an attachment name must not be empty or start with ``_``, and ``_local`` documents take
no attachments; a database name is ``[a-z][a-z0-9_$()+/-]*`` or a system database.
Every request path is also read the way CouchDB reads it, so an id that pouchdb-server
happens to resolve (a raw ``+``, a raw ``..``) still fails here.

Control characters stay out of the generated ids: neither transcript holds such an id,
and in a COPY ``Destination`` header they are refused before any request (tested).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote_plus

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aiocouch import BadRequestError, CouchDB, Database, Document, NotFoundError
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)

# One database per test, shared by its examples; each example cleans up after itself.
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
OFFLINE = settings(max_examples=50, deadline=None)

HOSTILE_PIECES = [
    "/", "+", "?", "#", "%", "%2F", "%25", " ", "..", ".", "_design/", "_local/", "&", "=",
    ";", "\\", '"', "'", "~", "é", "e\u0301", "\u0301", "\U0001f600", "ça🛋", "\ufeff",
    "\U0010fffd", "a",
]  # fmt: skip
# Any character but surrogates (not UTF-8) and control characters (see the docstring).
_CHARACTERS = st.characters(exclude_categories=("Cs", "Cc"))
_PIECE = st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(_CHARACTERS, min_size=1, max_size=3))
_NAME = st.lists(_PIECE, min_size=1, max_size=5).map("".join)

plain_ids = _NAME.filter(lambda name: not name.startswith("_"))
design_ids = _NAME.map(lambda name: "_design/" + name)
local_ids = _NAME.map(lambda name: "_local/" + name)
document_ids = st.one_of(plain_ids, design_ids, local_ids)
attachment_names = _NAME.filter(lambda name: not name.startswith("_"))

_SURROGATE = st.characters(categories=("Cs",))
refused_ids = st.one_of(
    st.sampled_from(["_design/", "_local/", "_design", "_local", "_", "_all_docs"]),
    _NAME.map(lambda name: "_" + name).filter(
        lambda name: not name.startswith(("_design/", "_local/"))
    ),
    st.tuples(_NAME, _SURROGATE).map("".join),
)
refused_attachment_names = st.one_of(
    st.just(""),
    _NAME.map(lambda name: "_" + name),
    st.tuples(_NAME, _SURROGATE).map("".join),
)

_DATABASE_TAIL = st.from_regex(r"\A[a-z0-9_$()+-]{0,30}\Z")
_DATABASE_TAIL_WITH_SLASH = st.tuples(
    _DATABASE_TAIL, st.from_regex(r"\A[a-z0-9_$()+/-]{0,20}\Z")
).map("/".join)
# CouchDB's rule (transcript 3.3); the system databases are the only other names.
_DATABASE_NAME = re.compile(r"[a-z][a-z0-9_$()+/-]*")
_SYSTEM_DATABASES = ("_users", "_replicator", "_global_changes", "_nodes", "_dbs")
refused_database_names = st.text(max_size=20).filter(
    lambda name: not _DATABASE_NAME.fullmatch(name) and not name.endswith(_SYSTEM_DATABASES)
)
# A "?" in a COPY destination starts the target's revision ("?rev=1-abc", as in 4.0.1);
# CouchDB cannot take a destination id that holds one otherwise.
_REVISION_SUFFIX = re.compile(r"[^?]*\?rev=\d+-[^?=]+")
refused_destinations = st.one_of(
    refused_ids,
    st.tuples(_NAME, _NAME).map("?".join).filter(lambda dest: not _REVISION_SUFFIX.fullmatch(dest)),
)


def _couchdb_reads(path: str) -> list[str]:
    """The path segments as CouchDB reads a request target (chttpd: split on "/", then
    unquote each, "+" becoming a space as in transcript 4.64); a raw dot segment fails,
    since URL libraries and proxies remove those (RFC 3986, 5.2.4)."""
    segments = [segment for segment in path.partition("?")[0].split("/") if segment]
    assert not {".", ".."} & set(segments), f"raw dot segment in {path!r}"
    return [unquote_plus(segment) for segment in segments]


def _document_segments(doc_id: str) -> list[str]:
    """The path segments after the database that CouchDB maps to the document ``doc_id``."""
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return [prefix[:-1], doc_id[len(prefix) :]]
    return [doc_id]


def _assert_wire_paths(counter: RequestCounter, database: Database, *expected: list[str]) -> None:
    """Every request sent for the document went to one of the ``expected`` paths."""
    paths = [
        _couchdb_reads(path)
        for _, path in counter.requests
        if not path.partition("?")[0].endswith("/_all_docs")
    ]
    assert paths, "no request recorded"
    for segments in paths:
        assert segments in [[database.id, *parts] for parts in expected]


async def _remove(database: Database, *ids: str) -> None:
    """Deletes whatever an example left behind, so that the next one starts clean."""
    for doc_id in ids:
        with contextlib.suppress(NotFoundError):
            document = await database.get(doc_id)
            await document.delete(discard_changes=True)


# --- document ids --------------------------------------------------------------------------


@PROPERTY
@given(doc_id=document_ids)
@example(doc_id="..")
@example(doc_id="a/b")
@example(doc_id="_design/a/b")
@example(doc_id="_local/..")
@example(doc_id="100%")
@example(doc_id="a%2Fb")
@example(doc_id="a+b")
@example(doc_id="_design/a+b")
@example(doc_id="ab\U0001f600")
async def test_accepted_ids_round_trip_through_save_fetch_and_delete(
    database: Database, request_counter: RequestCounter, doc_id: str
) -> None:
    request_counter.reset()
    try:
        document = await database.create(doc_id, data={"id": doc_id})
        await document.save()
        fetched = await database.get(doc_id)
        assert fetched.id == fetched["_id"] == doc_id
        assert fetched["id"] == doc_id
        if not doc_id.startswith("_local/"):  # CouchDB's ETag of a _local doc is no rev (4.72)
            assert (await fetched.info())["rev"] == fetched.rev
        fetched["again"] = True
        await fetched.save()
        if not doc_id.startswith("_local/"):  # _local documents are not in _all_docs
            listed = [doc async for doc in database.docs([doc_id], include_ddocs=True)]
            assert [(doc.id, doc["id"], doc["again"]) for doc in listed] == [(doc_id, doc_id, True)]
        await fetched.delete()
        with pytest.raises(NotFoundError):
            await database.get(doc_id)
        _assert_wire_paths(request_counter, database, _document_segments(doc_id))
    finally:
        await _remove(database, doc_id)


@PROPERTY
@given(doc_id=st.one_of(plain_ids, design_ids), name=attachment_names)
@example(doc_id="a b", name="dir/a.bin")
@example(doc_id="_design/x", name="..")
@example(doc_id="x", name="%2F")
async def test_attachment_names_round_trip(
    database: Database, request_counter: RequestCounter, doc_id: str, name: str
) -> None:
    data = name.encode() + b"\x00\xff"
    request_counter.reset()
    try:
        document = await database.create(doc_id, data={})
        await document.save()
        attachment = document.attachment(name)
        await attachment.save(data, "application/octet-stream")
        assert list(document["_attachments"]) == [name]
        fetched = (await database.get(doc_id)).attachment(name)
        assert await fetched.fetch() == data
        assert await fetched.exists()
        await fetched.delete()
        assert not await document.attachment(name).exists()
        doc_segments = _document_segments(doc_id)
        _assert_wire_paths(request_counter, database, doc_segments, [*doc_segments, name])
    finally:
        await _remove(database, doc_id)


@PROPERTY
@given(source=plain_ids, target=plain_ids)
@example(source="..", target=".")
@example(source="a/b", target="100%")
async def test_copy_to_a_printable_ascii_id(database: Database, source: str, target: str) -> None:
    # A header value cannot start or end with whitespace (RFC 9110, 5.5).
    target = "".join(c for c in target if " " <= c <= "~" and c != "?").strip() or "copy"
    if target == source or target.startswith("_"):
        target = "copy of " + target
    try:
        document = await database.create(source, data={"from": source})
        await document.save()
        response = await document.copy(target)
        copied = await database.get(target)
        assert copied["from"] == source
        assert response.status == 201
    finally:
        await _remove(database, source, target)


async def test_copy_onto_an_existing_document_with_its_revision(database: Database) -> None:
    """``?rev=`` after the id names the target's revision, as in 4.0.1 (transcript 4.30)."""
    source = await database.create("source", data={"v": "new"})
    await source.save()
    target = await database.create("a b+c", data={"v": "old"})
    await target.save()
    await source.copy(f"a b+c?rev={target.rev}")
    assert (await database.get("a b+c"))["v"] == "new"


# Sources and targets of one kind, as in transcript 4.28, 14.59 and 14.63. A destination
# CouchDB cannot take ("?", edge whitespace) is refused before any request (tested below).
_COPY_PAIRS = st.one_of(
    st.tuples(plain_ids, plain_ids),
    st.tuples(design_ids, design_ids),
    st.tuples(local_ids, local_ids),
).filter(lambda pair: pair[0] != pair[1] and "?" not in pair[1] and pair[1] == pair[1].strip())


@pytest.mark.couchdb_only(
    "COPY of _design and _local documents is a 404 on pouchdb-server (DIFF 14.59, 14.63), "
    "which also reads the Destination header as latin-1; CouchDB takes its UTF-8 bytes as "
    "the id (chttpd_util:parse_copy_destination_header, transcript 4.28)"
)
@PROPERTY
@given(pair=_COPY_PAIRS)
@example(pair=("a b", "ça🛋"))
@example(pair=("_design/x", "_design/ça🛋"))
@example(pair=("_local/x", "_local/y/z"))
async def test_copy_between_ids_of_one_kind(database: Database, pair: tuple[str, str]) -> None:
    source, target = pair
    try:
        document = await database.create(source, data={"from": source})
        await document.save()
        await document.copy(target)
        copied = await database.get(target)
        assert copied["from"] == source
    finally:
        await _remove(database, source, target)


@PROPERTY
@given(ids=st.lists(st.one_of(plain_ids, design_ids), min_size=1, max_size=8, unique=True))
@example(ids=["..", ".", "a/b", "_design/a/b", "%2F", "ab\U0001f600"])
async def test_bulk_writes_and_docs_by_ids_round_trip(database: Database, ids: list[str]) -> None:
    try:
        async with database.create_docs(ids) as bulk:
            async for doc in bulk:
                doc["name"] = doc.id
        assert bulk.error == [] and len(bulk.ok or []) == len(ids)
        # update_docs() loads through docs(), which skips design documents (4.0.1).
        plain = [doc_id for doc_id in ids if not doc_id.startswith("_design/")]
        async with database.update_docs(plain) as update:
            async for doc in update:
                doc["updated"] = True
        assert update.error == [] and len(update.ok or []) == len(plain)
        listed = [doc async for doc in database.docs(ids, include_ddocs=True)]
        assert [(doc.id, doc["name"], doc.get("updated", False)) for doc in listed] == [
            (doc_id, doc_id, doc_id in plain) for doc_id in ids
        ]
        assert [doc_id async for doc_id in database.akeys(ids=ids)] == ids
    finally:
        await _remove(database, *ids)


# --- what CouchDB refuses ------------------------------------------------------------------


def _document_calls(database: Database, doc_id: str) -> list[Callable[[], Awaitable[Any]]]:
    async def save() -> None:
        await Document(database, doc_id, data={"v": 1}).save()

    async def copy() -> None:
        source = Document(database, "source")
        await source.copy(doc_id)

    async def bulk_create() -> None:
        async with database.create_docs([doc_id]):
            pass

    return [
        lambda: database.get(doc_id),
        lambda: database.create(doc_id),
        lambda: database.create(doc_id, exists_ok=True),
        save,
        copy,
        bulk_create,
    ]


@OFFLINE
@given(doc_id=refused_ids)
@example(doc_id="_design/")
@example(doc_id="_local/")
@example(doc_id="_bad")
@example(doc_id="_security")
@example(doc_id="a\ud800")
async def test_refused_ids_raise_before_any_request(doc_id: str) -> None:
    async with _offline() as (couchdb, server):
        database = Database(couchdb, "db")
        for call in _document_calls(database, doc_id):
            with pytest.raises(ValueError, match=r"document id|COPY destination"):
                await call()
    assert server.requests == []


@OFFLINE
@given(destination=refused_destinations)
@example(destination="a?b")
@example(destination="http://host/db/doc")
@example(destination="line\r\nX-Injected: 1")
@example(destination="nul\x00")
@example(destination=" leading")
@example(destination="trailing\t")
async def test_copy_destinations_couchdb_cannot_take_raise_before_any_request(
    destination: str,
) -> None:
    async with _offline() as (couchdb, server):
        source = Document(Database(couchdb, "db"), "source")
        with pytest.raises(ValueError, match=r"COPY destination|document id"):
            await source.copy(destination)
    assert server.requests == []


@OFFLINE
@given(name=refused_attachment_names)
@example(name="")
@example(name="_attachments")
async def test_refused_attachment_names_raise_before_any_request(name: str) -> None:
    async with _offline() as (couchdb, server):
        document = Document(Database(couchdb, "db"), "doc", data={"_rev": "1-a"})
        attachment = document.attachment(name)
        for call in (
            lambda: attachment.fetch(),
            lambda: attachment.exists(),
            lambda: attachment.save(b"data", "text/plain"),
            lambda: attachment.delete(),
        ):
            with pytest.raises(ValueError, match="attachment name"):
                await call()
    assert server.requests == []


async def test_local_documents_take_no_attachments_before_any_request() -> None:
    async with _offline() as (couchdb, server):
        document = Document(Database(couchdb, "db"), "_local/x", data={"_rev": "0-1"})
        with pytest.raises(ValueError, match="_local"):
            await document.attachment("file").save(b"data", "text/plain")
        with pytest.raises(ValueError, match="_local"):
            await document.attachment("file").fetch()
    assert server.requests == []


@contextlib.asynccontextmanager
async def _offline() -> AsyncIterator[tuple[CouchDB, ScriptedServer]]:
    """A client of a server that answers 500 to anything: the tests assert it got nothing."""

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(500, b'{"error":"contacted"}'))

    async with ScriptedServer(answer) as server, CouchDB(server.url, "user", "pw") as couchdb:
        yield couchdb, server


# --- database names ------------------------------------------------------------------------


async def _database_round_trip(couchdb: CouchDB, name: str) -> None:
    try:
        database = await couchdb.create(name)
        assert (await database.info())["db_name"] == name
        assert (await couchdb[name]).id == name
        await (await database.create("doc", data={"in": name})).save()
        assert [doc["in"] async for doc in database.docs()] == [name]
        assert name in await couchdb.keys()
        await database.delete()
        with pytest.raises(NotFoundError):
            await couchdb[name]
    finally:
        with contextlib.suppress(NotFoundError):
            await Database(couchdb, name).delete()


@PROPERTY
@given(tail=_DATABASE_TAIL)
@example(tail="$()+-_")
async def test_accepted_database_names_round_trip(couchdb: CouchDB, tail: str) -> None:
    await _database_round_trip(couchdb, f"hostile{uuid.uuid4().hex[:8]}{tail}")


@pytest.mark.couchdb_only(
    "pouchdb-server drops the '/' of a database name (its db_name of 'a/b' is 'ab'); "
    "CouchDB allows '/' in names (transcript 3.3, the reason of illegal_database_name)"
)
@PROPERTY
@given(tail=_DATABASE_TAIL_WITH_SLASH)
@example(tail="/")
@example(tail="/_users")
async def test_database_names_with_a_slash_round_trip(couchdb: CouchDB, tail: str) -> None:
    await _database_round_trip(couchdb, f"hostile{uuid.uuid4().hex[:8]}{tail}")


@OFFLINE
@given(name=refused_database_names)
@example(name="Bad Name")
@example(name="_bad")
@example(name="")
@example(name="a..b")
@example(name="1db")
@example(name="db\u0301")
async def test_refused_database_names_raise_before_any_request(name: str) -> None:
    async with _offline() as (couchdb, server):
        with pytest.raises(BadRequestError, match="database name"):
            await couchdb.create(name)
        with pytest.raises(NotFoundError):
            await couchdb[name]
        with pytest.raises(ValueError, match="database name"):
            await Database(couchdb, name).info()
    assert server.requests == []
