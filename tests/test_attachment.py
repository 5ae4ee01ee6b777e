"""Attachment: whole-body bytes attached to a document (API.md section 10)."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest

from aiocouch import ConflictError, Database, Document, NotFoundError
from aiocouch.attachment import Attachment
from testserver.request_counter import RequestCounter

BINARY = bytes(range(256))


async def saved_document(database: Database, id: str = "doc", **fields: object) -> Document:
    document = Document(database, id, data=dict(fields))
    await document.save()
    return document


async def test_attachment_handle_sends_no_request(
    database: Database, request_counter: RequestCounter
) -> None:
    attachment = Document(database, "doc").attachment("file.txt")

    assert isinstance(attachment, Attachment)
    assert attachment.id == "file.txt"
    assert attachment.content_type is None
    assert request_counter.count == 0


async def test_save_uploads_then_refetches_the_parent(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, name="parent")
    first_rev = document.rev
    attachment = document.attachment("file.txt")
    request_counter.reset()

    result = await attachment.save(b"hello world", "text/plain")

    assert result is None
    assert request_counter.requests == [
        ("PUT", f"/{database.id}/doc/file.txt?rev={first_rev}"),
        ("GET", f"/{database.id}/doc"),
    ]
    assert attachment.content_type == "text/plain"
    assert document.rev is not None and document.rev.startswith("2-")
    assert document.rev == (await database.get("doc")).rev
    assert document["name"] == "parent"
    stub = document["_attachments"]["file.txt"]
    assert stub["stub"] is True
    assert stub["length"] == len(b"hello world")
    assert stub["content_type"] == "text/plain"
    assert await document.save() is None  # the re-fetch left the parent clean


async def test_fetch_returns_the_bytes_and_sets_content_type(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database)
    await document.attachment("blob.bin").save(BINARY, "application/octet-stream")
    request_counter.reset()

    attachment = Document(database, "doc").attachment("blob.bin")  # parent never fetched
    content = await attachment.fetch()

    assert content == BINARY
    assert isinstance(content, bytes)
    assert attachment.content_type == "application/octet-stream"
    assert request_counter.requests == [("GET", f"/{database.id}/doc/blob.bin")]


async def test_fetch_of_missing_attachment_raises_not_found(database: Database) -> None:
    document = await saved_document(database)

    with pytest.raises(NotFoundError) as excinfo:
        await document.attachment("missing.txt").fetch()

    assert isinstance(excinfo.value, KeyError)
    assert isinstance(excinfo.value, aiohttp.ClientResponseError)
    assert excinfo.value.status == 404


async def test_exists_sends_one_head_and_sets_content_type(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database)
    await document.attachment("file.txt").save(b"text", "text/plain")
    request_counter.reset()

    attachment = Document(database, "doc").attachment("file.txt")
    assert await attachment.exists() is True

    assert attachment.content_type == "text/plain"
    assert request_counter.requests == [("HEAD", f"/{database.id}/doc/file.txt")]


async def test_exists_is_false_for_missing_attachment_or_document(database: Database) -> None:
    document = await saved_document(database)

    assert await document.attachment("missing.txt").exists() is False
    assert await Document(database, "no_such_doc").attachment("file.txt").exists() is False


async def test_delete_removes_the_attachment_and_refetches_the_parent(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database)
    attachment = document.attachment("file.txt")
    await attachment.save(b"to delete", "text/plain")
    rev_with_attachment = document.rev
    request_counter.reset()

    result = await attachment.delete()

    assert result is None
    assert request_counter.requests == [
        ("DELETE", f"/{database.id}/doc/file.txt?rev={rev_with_attachment}"),
        ("GET", f"/{database.id}/doc"),
    ]
    assert attachment.content_type is None
    assert document.rev is not None and document.rev.startswith("3-")
    assert "file.txt" not in document.get("_attachments", {})
    assert await attachment.exists() is False
    with pytest.raises(NotFoundError):
        await attachment.fetch()


async def test_saving_again_replaces_content_and_content_type(database: Database) -> None:
    document = await saved_document(database)
    attachment = document.attachment("data")
    await attachment.save(b"first", "text/plain")

    await attachment.save(BINARY, "application/octet-stream")

    fresh = Document(database, "doc").attachment("data")
    assert await fresh.fetch() == BINARY
    assert fresh.content_type == "application/octet-stream"


async def test_several_attachments_live_side_by_side(database: Database) -> None:
    document = await saved_document(database)
    await document.attachment("a.txt").save(b"A", "text/plain")
    await document.attachment("b.bin").save(b"B", "application/octet-stream")

    assert set(document["_attachments"]) == {"a.txt", "b.bin"}
    assert await document.attachment("a.txt").fetch() == b"A"
    assert await document.attachment("b.bin").fetch() == b"B"


@pytest.mark.parametrize(
    "name",
    ["dir/a.bin", "with space.txt", "a+b?c#d.txt", "100%.txt", "ça🛋.txt", "dir/sub dir/x"],
)
async def test_special_names_address_exactly_that_attachment(
    database: Database, request_counter: RequestCounter, name: str
) -> None:
    document = await saved_document(database)
    attachment = document.attachment(name)
    request_counter.reset()

    await attachment.save(BINARY, "application/octet-stream")

    assert list(document["_attachments"]) == [name]
    fresh = Document(database, "doc").attachment(name)
    assert await fresh.exists() is True
    assert await fresh.fetch() == BINARY
    await attachment.delete()
    assert "_attachments" not in document or document["_attachments"] == {}
    assert await fresh.exists() is False

    parent = f"/{database.id}/doc"
    attachment_path = f"{parent}/{quote(name, safe='')}"
    paths = [path for _, path in request_counter.requests if path != parent]
    assert len(paths) == 5  # PUT, HEAD, GET, DELETE, HEAD
    assert all(path.split("?")[0] == attachment_path for path in paths)


async def test_save_on_never_saved_document_raises_value_error_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    attachment = Document(database, "new").attachment("file.txt")

    message = "^The document must be fetched or saved before updating attachments$"
    with pytest.raises(ValueError, match=message):
        await attachment.save(b"data", "text/plain")
    with pytest.raises(ValueError, match=message):
        await attachment.delete()

    assert request_counter.count == 0


async def test_save_on_deleted_document_raises_value_error(database: Database) -> None:
    document = await saved_document(database)
    await document.delete()

    with pytest.raises(ValueError):
        await document.attachment("file.txt").save(b"data", "text/plain")


async def test_later_parent_save_keeps_the_attachment(database: Database) -> None:
    document = await saved_document(database, name="parent")
    await document.attachment("file.txt").save(b"keep me", "text/plain")

    document["name"] = "changed parent"
    await document.save()

    stored = await database.get("doc")
    assert stored["name"] == "changed parent"
    assert "file.txt" in stored["_attachments"]
    assert await stored.attachment("file.txt").fetch() == b"keep me"


async def test_save_with_stale_parent_rev_raises_conflict(database: Database) -> None:
    stale = await saved_document(database, name="v1")
    current = await database.get("doc")
    current["name"] = "v2"
    await current.save()

    with pytest.raises(ConflictError) as excinfo:
        await stale.attachment("file.txt").save(b"data", "text/plain")

    assert excinfo.value.status == 409
    assert await stale.attachment("file.txt").exists() is False
    assert (await database.get("doc"))["name"] == "v2"


async def test_delete_with_stale_parent_rev_raises_conflict(database: Database) -> None:
    stale = await saved_document(database)
    await stale.attachment("file.txt").save(b"data", "text/plain")
    current = await database.get("doc")
    current["name"] = "changed elsewhere"
    await current.save()

    with pytest.raises(ConflictError):
        await stale.attachment("file.txt").delete()

    assert await current.attachment("file.txt").fetch() == b"data"


async def test_save_with_unsaved_parent_edits_uploads_then_raises_conflict(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, name="saved")
    document["name"] = "unsaved local edit"
    request_counter.reset()

    with pytest.raises(ConflictError):
        await document.attachment("file.txt").save(b"uploaded", "text/plain")

    assert request_counter.count == 1  # the upload; the re-fetch is refused locally
    assert document["name"] == "unsaved local edit"
    assert await Document(database, "doc").attachment("file.txt").fetch() == b"uploaded"
