"""Backup and restore (aiocouch.backup) against the test server: every leaf revision,
history, deletion and attachment byte comes back; a corrupt file writes nothing; an
interrupted backup or restore resumes without losing or doubling anything."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import gzip
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Callable

import pytest

from aiocouch import CouchDB, NotFoundError
from aiocouch.backup import (
    BackupFormatError,
    BackupProgress,
    RestoreError,
    backup,
    check_backup,
    restore,
)
from aiocouch.database import Database
from aiocouch.document import Document
from testserver.request_counter import RequestCounter

Leaf = tuple[str, str]
"""A leaf revision: the document's id and the revision."""

BINARY = bytes(range(256)) + b"\xff\xfe\x80\x00 not UTF-8 \xc3"


class Interrupted(Exception):
    """Raised by a progress callback to stop a backup or restore partway."""


@pytest.fixture
async def target(couchdb: CouchDB) -> AsyncIterator[Database]:
    """A second new, empty database, deleted after the test."""
    db = await couchdb.create(f"aiocouch_test_{uuid.uuid4().hex}")
    try:
        yield db
    finally:
        with contextlib.suppress(Exception):
            await db.delete()


def rev_hash() -> str:
    return uuid.uuid4().hex


def attachment(data: bytes) -> dict[str, Any]:
    return {"content_type": "application/octet-stream", "data": base64.b64encode(data).decode()}


async def fill(db: Database, count: int, *, size: int = 0) -> dict[Leaf, dict[str, Any]]:
    """``count`` documents; every 200th has a binary attachment, every 66th is deleted,
    every 100th has a conflicting branch (every 400th a deleted one), and there is a
    design document. Returns every leaf revision as written, with its history, keyed by
    id and revision (attachments as :func:`comparable` gives them)."""
    async with db.create_docs(batch_size=5000) as bulk:
        for n in range(count):
            data: dict[str, Any] = {"n": n, "text": f"São Paulo {n} ✓", "pad": "x" * size}
            if n % 200 == 0:
                data["_attachments"] = {"blob.bin": attachment(BINARY + n.to_bytes(4, "big"))}
            bulk.create(f"doc-{n:06d}", data=data)
    assert bulk.ok is not None and len(bulk.ok) == count
    written: dict[Leaf, dict[str, Any]] = {}
    for doc in bulk.ok:
        assert doc.rev is not None
        history = {"start": 1, "ids": [doc.rev[2:]]}
        written[doc.id, doc.rev] = comparable({**doc, "_revisions": history})
    branches: list[dict[str, Any]] = []
    for (id, rev), body in list(written.items()):
        n = body["n"]
        if n % 66 == 1:
            branches.append(_child(id, rev, {"_deleted": True}))
        if n % 100 == 2:
            side = {"_deleted": True} if n % 400 == 2 else {"n": n, "side": "conflict"}
            branches.append(_child(id, rev, side))
            branches.append(_child(id, rev, {"n": n, "side": "other", "ü": "ë"}))
        if n % 66 == 1 or n % 100 == 2:
            del written[id, rev]  # no longer a leaf
    for start in range(0, len(branches), 2000):
        assert await db.save_revisions(branches[start : start + 2000]) == []
    design = {
        "_id": "_design/app",
        "_rev": f"1-{rev_hash()}",
        "views": {"by_n": {"map": "function (doc) { emit(doc.n, null); }"}},
    }
    await db.save_revisions([design])
    for doc in [*branches, design]:
        history = doc.get("_revisions", {"start": 1, "ids": [doc["_rev"][2:]]})
        written[doc["_id"], doc["_rev"]] = {**doc, "_revisions": history}
    return written


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with only the content type and bytes of its attachments (the server adds
    ``digest``, ``revpos`` and ``length``)."""
    attachments = doc.get("_attachments")
    if attachments is None:
        return dict(doc)
    kept = {
        name: {"content_type": a["content_type"], "data": a["data"]}
        for name, a in attachments.items()
    }
    return {**doc, "_attachments": kept}


def _child(id: str, parent: str, body: dict[str, Any]) -> dict[str, Any]:
    """A revision of ``id`` after ``parent`` (a first one) holding ``body``."""
    child = rev_hash()
    history = {"start": 2, "ids": [child, parent.split("-", 1)[1]]}
    return {**body, "_id": id, "_rev": f"2-{child}", "_revisions": history}


async def leaves(db: Database) -> dict[str, list[str]]:
    """Every document's leaf revisions (deleted ones too): GET _changes?style=all_docs."""
    found: dict[str, list[str]] = {}
    async for event in db.changes(style="all_docs"):
        found[event.id] = sorted(change["rev"] for change in event.json["changes"])
        if event.json.get("deleted"):
            found[event.id].append("deleted")
    return found


async def contents(db: Database) -> dict[Leaf, dict[str, Any]]:
    """Every leaf revision of every document with its history and attachment bytes."""
    listed = await leaves(db)
    single = [{"id": id, "rev": revs[0]} for id, revs in listed.items() if len(revs) == 1]
    found: dict[Leaf, dict[str, Any]] = {}
    for start in range(0, len(single), 2000):
        chunk = single[start : start + 2000]
        async for result in db.bulk_get(chunk, revs=True, attachments=True):
            assert result.doc is not None, result
            found[result.id, result.doc["_rev"]] = result.doc
    slots = asyncio.Semaphore(8)

    async def read_leaves(id: str) -> None:
        async with slots:
            for leaf in await Document(db, id).open_revs("all", revs=True, attachments=True):
                assert leaf.doc is not None
                found[id, leaf.doc["_rev"]] = leaf.doc

    await asyncio.gather(*(read_leaves(id) for id, revs in listed.items() if len(revs) > 1))
    return found


def file_ids(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as file:  # type: ignore[operator]
        return [line.split('"_id":"', 1)[1].split('"', 1)[0] for line in file if '"_id":' in line]


@pytest.mark.timeout(600)
async def test_round_trip_of_20000_documents_is_exact(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """20,000 documents with attachments (binary, not UTF-8), deletions, conflicts
    (deleted ones too) and a design document come back identical: ids, winning and
    conflicting revisions, histories, bodies, attachment bytes. The backup's memory
    stays flat: its peak is far below the file's size. (Slow: about a minute with
    pouchdb-server on 2 cores at load 10, nearly all of it the server's work.)"""
    written = await fill(database, 20_000, size=1000)
    path = tmp_path / "db.jsonl"
    tracemalloc.start()
    try:
        summary = await backup(database, path, batch_size=100, in_flight=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert summary.documents == 20_001 and summary.bytes == size
    assert peak < size / 4, f"peak {peak} bytes for a file of {size}"

    restored = await restore(path, target)

    assert restored.revisions + restored.design_revisions == summary.revisions == len(written)
    assert restored.design_revisions == 1 and restored.skipped == 0
    source_leaves = await leaves(database)
    assert len(source_leaves) == 20_001
    assert sum("deleted" in revs for revs in source_leaves.values()) == 304
    assert sum(len(set(revs) - {"deleted"}) == 2 for revs in source_leaves.values()) == 200
    assert await leaves(target) == source_leaves
    restored_contents = {leaf: comparable(doc) for leaf, doc in (await contents(target)).items()}
    assert restored_contents == written
    assert sum("_attachments" in doc for doc in restored_contents.values()) == 100


async def test_gzip_round_trip(database: Database, target: Database, tmp_path: Path) -> None:
    """A ``.gz`` name gives a gzip file that restores identically."""
    await fill(database, 300)
    path = tmp_path / "db.jsonl.gz"
    summary = await backup(database, path)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert await check_backup(path) == summary.revisions
    await restore(path, target)
    assert await contents(target) == await contents(database)


async def test_utf8_character_across_a_64_kib_boundary(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """A two-byte character whose bytes lie on both sides of byte 65,536 of the file
    (where a reader of 64 KiB blocks cuts) comes back whole."""
    path = tmp_path / "db.jsonl"
    doc = await database.create("text")
    for prefix in ("", "a"):
        # only two-byte characters: one of the two shifts puts byte 65,536 inside one
        text = doc["text"] = prefix + "ã" * 40_000
        await doc.save()
        await backup(database, path, overwrite=True)
        if 0x80 <= path.read_bytes()[65_536] <= 0xBF:  # a continuation byte: cut in two
            break
    else:
        pytest.fail("no character across byte 65,536 of the backup")

    await restore(path, target)

    restored = await target.get(doc.id)
    assert restored["text"] == text


async def test_design_documents_are_restored_last(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """A design document whose validate_doc_update refuses every other document does not
    judge the documents restored with it: they all go in."""
    docs = [{"_id": f"doc{n}", "_rev": f"1-{rev_hash()}", "n": n} for n in range(50)]
    assert await database.save_revisions(docs) == []
    await database.save_revisions(
        [
            {
                "_id": "_design/guard",
                "_rev": f"1-{rev_hash()}",
                "validate_doc_update": "function (doc) { if (doc._id.indexOf('_design/') !== 0) "
                "{ throw ({forbidden: 'read-only database'}); } }",
            }
        ]
    )
    path = tmp_path / "db.jsonl"
    await backup(database, path)

    summary = await restore(path, target)

    assert summary.revisions == 50 and summary.design_revisions == 1
    assert await leaves(target) == await leaves(database)


async def test_refused_revisions_are_reported(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """Revisions the target's own validation function refuses raise RestoreError naming
    them; the others are written."""
    await database.save_revisions(
        [{"_id": f"doc{n}", "_rev": f"1-{rev_hash()}", "n": n} for n in range(10)]
    )
    await target.save_revisions(
        [
            {
                "_id": "_design/guard",
                "_rev": f"1-{rev_hash()}",
                "validate_doc_update": "function (doc) { if (doc.n === 3) "
                "{ throw ({forbidden: 'no threes'}); } }",
            }
        ]
    )
    path = tmp_path / "db.jsonl"
    await backup(database, path)

    with pytest.raises(RestoreError, match=r"refused 1 revisions.*'doc3'.*forbidden") as info:
        await restore(path, target)

    assert info.value.summary.refused[0]["id"] == "doc3"
    assert len(await leaves(target)) == 10  # nine documents and the guard


async def test_interrupted_restore_resumes_without_doubling(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """A restore stopped after three batches continues after them: every revision is
    written, none twice (no extra leaf), and the resumed run skips what was written."""
    await fill(database, 1000)
    path = tmp_path / "db.jsonl"
    total = (await backup(database, path)).revisions
    reports: list[BackupProgress] = []

    def stop_after_three(progress: BackupProgress) -> None:
        reports.append(progress)
        if len(reports) == 4:  # the first report comes before any batch
            raise Interrupted

    with pytest.raises(Interrupted):
        await restore(path, target, batch_size=100, in_flight=3, progress=stop_after_three)
    assert path.with_name("db.jsonl.restore-checkpoint").exists()
    assert 0 < len(await leaves(target)) < 1001

    summary = await restore(path, target, batch_size=100, in_flight=3)

    assert summary.skipped == 300
    assert summary.skipped + summary.revisions + summary.design_revisions == total
    assert await leaves(target) == await leaves(database)
    assert await contents(target) == await contents(database)
    assert not path.with_name("db.jsonl.restore-checkpoint").exists()


async def test_interrupted_backup_resumes_without_doubling(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """A backup stopped after two batches is unfinished (a restore refuses it); run
    again, it continues: every document is in the file exactly once."""
    await fill(database, 1000)
    path = tmp_path / "db.jsonl"
    calls: list[BackupProgress] = []

    def stop_after_two(progress: BackupProgress) -> None:
        calls.append(progress)
        if len(calls) == 3:  # the first report comes before any batch
            raise Interrupted

    with pytest.raises(Interrupted):
        await backup(database, path, batch_size=100, in_flight=2, progress=stop_after_two)
    assert len(set(file_ids(path))) == 200
    with pytest.raises(BackupFormatError, match="end line is missing"):
        await check_backup(path)

    summary = await backup(database, path, batch_size=100, in_flight=3)

    assert summary.resumed and summary.documents == 1001
    ids = file_ids(path)
    assert len(set(ids)) == 1001
    leaf_count = sum(len(set(revs) - {"deleted"}) for revs in (await leaves(database)).values())
    assert len(ids) == summary.revisions == leaf_count  # a document's leaves: its only repeats
    await restore(path, target)
    assert await contents(target) == await contents(database)


def meanwhile(
    server_url: str,
    user: str,
    password: str,
    name: str,
    change: Callable[[Database], Awaitable[Any]],
) -> None:
    """Runs ``change`` on the database ``name`` to its end, with a client of its own in a
    thread of its own, while the caller (a backup's progress callback) waits: the backup
    goes on only once the database has changed."""

    async def run() -> None:
        async with CouchDB(server_url, user, password) as client:
            await change(Database(client, name))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


async def test_documents_changed_during_a_backup_are_backed_up_as_they_became(
    database: Database,
    target: Database,
    tmp_path: Path,
    server_url: str,
    admin_user: str,
    admin_password: str,
) -> None:
    """Documents updated, deleted, given a conflict or created after the backup began,
    before or after the backup listed them, are in the backup as they are once it ends:
    the restored database equals the source, leaves and bodies."""
    await fill(database, 1000)

    async def change(db: Database) -> None:
        for id in ("doc-000003", "doc-000950"):  # already written / not yet listed
            doc = await db.get(id)
            doc["changed"] = "✓"
            await doc.save()
        for id in ("doc-000004", "doc-000960"):
            await (await db.get(id)).delete()
        conflict = {"_id": "doc-000005", "_rev": f"1-{rev_hash()}", "side": "late"}
        assert await db.save_revisions([conflict]) == []
        await (await db.create("late-arrival", data={"new": True})).save()

    def change_after_first_batch(progress: BackupProgress) -> None:
        if progress.done and progress.done <= 100:
            meanwhile(server_url, admin_user, admin_password, database.id, change)

    path = tmp_path / "db.jsonl"
    await backup(database, path, batch_size=100, in_flight=2, progress=change_after_first_batch)
    await restore(path, target)

    source = await leaves(database)
    assert "late-arrival" in source and "deleted" in source["doc-000960"]
    assert len(source["doc-000005"]) == 2
    assert await leaves(target) == source
    assert await contents(target) == await contents(database)


async def test_backup_killed_between_checkpoints_writes_the_rest_once(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """Lines written after the last checkpoint (a backup killed before it could save
    another: here a whole line and a part of one) are replaced on resume: the file
    holds every leaf once and restores exactly."""
    await fill(database, 1000)
    path = tmp_path / "db.jsonl"

    def stop_after_two(progress: BackupProgress) -> None:
        if progress.done >= 200:
            raise Interrupted

    with pytest.raises(Interrupted):
        await backup(database, path, batch_size=100, in_flight=2, progress=stop_after_two)
    lines = path.read_bytes().splitlines(keepends=True)
    with path.open("ab") as file:
        file.write(lines[-1] + lines[-2][:25])

    summary = await backup(database, path, batch_size=100)

    ids = file_ids(path)
    assert summary.resumed and len(set(ids)) == 1001
    leaf_count = sum(len(set(revs) - {"deleted"}) for revs in (await leaves(database)).values())
    assert len(ids) == summary.revisions == leaf_count == await check_backup(path)
    await restore(path, target)
    assert await contents(target) == await contents(database)


async def test_first_revisions_are_read_from_the_changes_feed_alone(
    database: Database, target: Database, tmp_path: Path, request_counter: RequestCounter
) -> None:
    """Documents whose only revision is their first (with attachments too) cost no
    request beyond the pages of the changes feed; the leaves of an edited, a deleted and
    two conflicted documents (two and three leaves) are read with one _bulk_get per leaf
    of the most conflicted one, not a request per document; all restore exactly."""
    docs = [{"_id": f"doc{n}", "_rev": f"1-{rev_hash()}", "n": n} for n in range(250)]
    docs[7]["_attachments"] = {"blob.bin": attachment(BINARY)}
    assert await database.save_revisions(docs) == []
    path = tmp_path / "db.jsonl"
    request_counter.reset()

    await backup(database, path, batch_size=100)

    assert sent_to(request_counter) == [database.id] + ["_changes"] * 4  # 3 pages, 1 empty
    edited = await database.get("doc1")
    edited["edited"] = True
    await edited.save()
    await (await database.get("doc2")).delete()
    conflicts = [
        {"_id": id, "_rev": f"1-{rev_hash()}", "side": side}
        for id, sides in (("doc3", 1), ("doc7", 2))
        for side in range(sides)
    ]
    assert await database.save_revisions(conflicts) == []
    request_counter.reset()

    await backup(database, path, batch_size=1000, overwrite=True)

    expected = [database.id, "_changes", "_changes"] + ["_bulk_get"] * 3
    assert sorted(sent_to(request_counter)) == sorted(expected)
    await restore(path, target)
    assert await leaves(target) == await leaves(database)
    assert await contents(target) == await contents(database)


def sent_to(counter: RequestCounter) -> list[str]:
    """The last segment of the path of each request ``counter`` recorded."""
    return [url.split("?")[0].rsplit("/", 1)[-1] for _, url in counter.requests]


async def test_existing_backup_is_not_overwritten(database: Database, tmp_path: Path) -> None:
    """A finished backup is not replaced unless asked (FileExistsError, no request)."""
    path = tmp_path / "db.jsonl"
    path.write_bytes(b"precious\n")
    with pytest.raises(FileExistsError):
        await backup(database, path)
    assert path.read_bytes() == b"precious\n"
    await backup(database, path, overwrite=True)
    assert await check_backup(path) == 0


def _corrupt(lines: list[bytes], case: str) -> tuple[bytes, int]:
    """The backup ``lines`` spoilt as ``case`` says, and the line a restore must name."""
    if case == "bad JSON":
        lines[4] = b"{" + lines[4]
        return b"".join(lines), 5
    if case == "truncated line":
        return b"".join(lines[:-1])[:-7], len(lines) - 1
    if case == "wrong header":
        lines[0] = b'{"couchbackup": 1}\n'
        return b"".join(lines), 1
    if case == "no end line":
        return b"".join(lines[:-1]), len(lines)
    if case == "not UTF-8":
        number = next(n for n, line in enumerate(lines) if b"S\xc3\xa3o" in line)
        lines[number] = lines[number].replace(b"S\xc3\xa3o", b"S\xe3o")
        return b"".join(lines), number + 1
    if case == "attachment stub":
        number = next(n for n, line in enumerate(lines) if b'"data":' in line)
        lines[number] = lines[number].replace(b'"data":', b'"stub":true,"was":')
        return b"".join(lines), number + 1
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["bad JSON", "truncated line", "wrong header", "no end line", "not UTF-8", "attachment stub"],
)
async def test_corrupt_backup_names_the_line_and_writes_nothing(
    database: Database, target: Database, tmp_path: Path, case: str
) -> None:
    """A corrupt file raises BackupFormatError with its line number before any write:
    the target stays empty."""
    await fill(database, 250)
    good = tmp_path / "good.jsonl"
    await backup(database, good)
    spoilt, line = _corrupt(good.read_bytes().splitlines(keepends=True), case)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(spoilt)

    with pytest.raises(BackupFormatError) as info:
        await restore(path, target)

    assert info.value.line == line
    assert f"line {line}:" in str(info.value)
    assert await leaves(target) == {}
    assert (await target.info())["doc_count"] == 0


async def test_restore_interrupted_among_design_documents_resumes_there(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """A restore stopped after the first design document goes on with the second; the
    documents, all written before, are not sent again."""
    docs = [{"_id": f"doc{n}", "_rev": f"1-{rev_hash()}", "n": n} for n in range(20)]
    designs = [{"_id": f"_design/d{n}", "_rev": f"1-{rev_hash()}"} for n in range(3)]
    assert await database.save_revisions(designs + docs) == []
    path = tmp_path / "db.jsonl"
    await backup(database, path)

    def stop_in_design(progress: BackupProgress) -> None:
        if progress.phase == "design":
            raise Interrupted

    with pytest.raises(Interrupted):
        await restore(path, target, batch_size=1, in_flight=1, progress=stop_in_design)
    summary = await restore(path, target, batch_size=1, in_flight=1)

    assert (summary.skipped, summary.revisions, summary.design_revisions) == (21, 0, 2)
    assert await leaves(target) == await leaves(database)


async def test_cut_gzip_backup_is_refused_and_writes_nothing(
    database: Database, target: Database, tmp_path: Path
) -> None:
    """A gzip backup cut short raises BackupFormatError; the target stays empty."""
    await fill(database, 250)
    path = tmp_path / "db.jsonl.gz"
    await backup(database, path)
    path.write_bytes(path.read_bytes()[:-30])

    with pytest.raises(BackupFormatError, match=r"line \d+"):
        await restore(path, target)

    assert await leaves(target) == {}


async def test_backup_of_a_missing_database_touches_no_file(
    couchdb: CouchDB, tmp_path: Path
) -> None:
    """NotFoundError for a database that does not exist; no file, no checkpoint."""
    path = tmp_path / "db.jsonl"
    with pytest.raises(NotFoundError):
        await backup(Database(couchdb, f"aiocouch_test_{uuid.uuid4().hex}"), path)
    assert list(tmp_path.iterdir()) == []
