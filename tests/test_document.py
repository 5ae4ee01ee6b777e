"""Document: the local dict-like copy of one CouchDB document (API.md section 6).

Every test runs against the real test server and counts the requests the library sends.
"""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest

from aiocouch import (
    BadRequestError,
    ConflictError,
    CouchDB,
    Database,
    Document,
    HTTPResponse,
    NotFoundError,
    UnauthorizedError,
)
from testserver.request_counter import RequestCounter


async def saved_document(database: Database, id: str, **fields: object) -> Document:
    """A document that exists on the server with ``fields``."""
    document = Document(database, id, data=dict(fields))
    await document.save()
    return document


async def server_copy(database: Database, id: str) -> dict[str, object]:
    """The document's current body on the server."""
    return dict(await database.get(id))


# --- construction ---


async def test_constructing_a_document_sends_no_request(
    database: Database, request_counter: RequestCounter
) -> None:
    Document(database, "plain")
    Document(database, "with_data", data={"a": 1})
    by_keyword = Document(database=database, id="by_keyword")
    assert by_keyword._database is database
    assert request_counter.count == 0


def test_new_document_without_data_holds_only_its_id() -> None:
    document = Document(None, "lonely")
    assert dict(document) == {"_id": "lonely"}
    assert document.id == "lonely"
    assert document.rev is None
    assert document.exists is False
    assert document.data is None
    assert document.json == {}


def test_data_is_used_by_reference_and_receives_the_id() -> None:
    data = {"name": "shared"}
    document = Document(None, "ref", data=data)
    assert data == {"name": "shared", "_id": "ref"}
    document["extra"] = 1
    assert data["extra"] == 1
    data["later"] = 2
    assert document["later"] == 2


def test_id_is_the_first_key_of_a_new_document() -> None:
    document = Document(None, "first")
    document["b"] = 1
    assert list(document.keys()) == ["_id", "b"]


@pytest.mark.parametrize("data", [["a", "list"], "a string", 42, Document(None, "other")])
def test_data_that_is_not_a_dict_raises_type_error(data: object) -> None:
    with pytest.raises(TypeError):
        Document(None, "doc", data=data)  # type: ignore[arg-type]


async def test_empty_id_raises_value_error_before_any_request(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(ValueError):
        Document(database, "")
    with pytest.raises(ValueError):
        await database.get("")
    assert request_counter.count == 0


@pytest.mark.parametrize("bad_id", [1, None, b"bytes", ["list"]])
async def test_id_that_is_not_a_str_raises_type_error_before_any_request(
    database: Database, request_counter: RequestCounter, bad_id: object
) -> None:
    with pytest.raises(TypeError):
        Document(database, bad_id)  # type: ignore[arg-type]
    assert request_counter.count == 0


# --- fetch ---


async def test_fetch_replaces_local_data_with_the_server_copy(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved_document(database, "doc", name="server")
    request_counter.reset()

    document = Document(database, "doc")
    await document.fetch()

    assert request_counter.requests == [("GET", f"/{database.id}/doc")]
    assert document["name"] == "server"
    assert document.exists
    assert document.rev is not None and document.rev.startswith("1-")
    assert await document.save() is None  # clean right after the fetch
    assert request_counter.count == 1


async def test_fetch_with_unsaved_changes_raises_conflict_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="saved")
    document["name"] = "local edit"
    request_counter.reset()

    with pytest.raises(ConflictError):
        await document.fetch()

    assert request_counter.count == 0
    assert document["name"] == "local edit"


async def test_fetch_with_discard_changes_overwrites_local_edits(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="saved")
    document["name"] = "local edit"
    document["local_only"] = True
    request_counter.reset()

    await document.fetch(discard_changes=True)

    assert request_counter.count == 1
    assert document["name"] == "saved"
    assert "local_only" not in document


async def test_fetch_of_a_document_with_only_its_id_needs_no_discard(database: Database) -> None:
    await saved_document(database, "doc", name="saved")
    document = Document(database, "doc")  # never fetched, but holds nothing but _id

    await document.fetch()

    assert document["name"] == "saved"


async def test_fetch_with_rev_returns_that_revision(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", version=1)
    first_rev = document.rev
    document["version"] = 2
    await document.save()
    request_counter.reset()

    old = Document(database, "doc")
    await old.fetch(rev=first_rev)

    assert request_counter.requests == [("GET", f"/{database.id}/doc?rev={first_rev}")]
    assert old["version"] == 1
    assert old.rev == first_rev


async def test_fetch_of_missing_document_raises_not_found(
    database: Database, request_counter: RequestCounter
) -> None:
    document = Document(database, "missing")

    with pytest.raises(NotFoundError) as excinfo:
        await document.fetch()

    error = excinfo.value
    assert isinstance(error, KeyError)
    assert isinstance(error, aiohttp.ClientResponseError)
    assert error.status == 404
    assert str(error) == repr(error.args[0])  # shown like any KeyError
    assert request_counter.count == 1
    assert dict(document) == {"_id": "missing"}


async def test_get_of_deleted_document_raises_not_found(database: Database) -> None:
    document = await saved_document(database, "doc", name="gone soon")
    await document.delete()

    with pytest.raises(NotFoundError):
        await database.get("doc")


@pytest.mark.couchdb_only("pouchdb-server answers a malformed rev with 404, not 400 (DIFF 4.10)")
async def test_fetch_with_malformed_rev_raises_bad_request(database: Database) -> None:
    await saved_document(database, "doc", name="saved")
    document = Document(database, "doc")

    with pytest.raises(BadRequestError) as excinfo:
        await document.fetch(rev="bad")

    assert isinstance(excinfo.value, ValueError)
    assert isinstance(excinfo.value, aiohttp.ClientResponseError)
    assert excinfo.value.status == 400


# --- save ---


async def test_save_of_new_document_returns_created_response(
    database: Database, request_counter: RequestCounter
) -> None:
    document = Document(database, "doc", data={"name": "new"})

    response = await document.save()

    assert isinstance(response, HTTPResponse)
    assert response.status in (201, 202)
    assert request_counter.requests == [("PUT", f"/{database.id}/doc")]
    assert document.exists
    assert document.rev is not None and document.rev.startswith("1-")
    assert await server_copy(database, "doc") == dict(document)


async def test_save_response_headers_are_case_insensitive(database: Database) -> None:
    document = Document(database, "doc")

    response = await document.save()

    assert response is not None
    assert response.etag == document.rev
    assert "Etag" in response.headers and "ETag" in response.headers
    assert response.headers["Etag"] == response.headers["ETag"] == response.headers["etag"]
    assert response.headers.get("ETag") == response.headers.get("Etag")
    assert "Location" in response.headers and "location" in response.headers


async def test_save_of_document_without_fields_stores_only_id_and_rev(database: Database) -> None:
    document = Document(database, "empty")
    await document.save()

    assert set(document.keys()) == {"_id", "_rev"}
    assert await server_copy(database, "empty") == {"_id": "empty", "_rev": document.rev}


async def test_save_of_unchanged_document_returns_none_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="saved")
    fetched = await database.get("doc")
    request_counter.reset()

    assert await document.save() is None
    assert await fetched.save() is None
    assert request_counter.count == 0


async def test_a_fetched_document_is_clean_until_changed_and_its_revision_counts(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved_document(database, "doc", name="saved", n=1, big=2**63 + 1, nested={"a": [1]})
    fetched = await database.get("doc")
    request_counter.reset()
    # (the server's text compared with this client's encoding first)
    assert await fetched.save() is None
    await fetched.fetch()  # (no unsaved changes: fetch checks that first)
    assert request_counter.requests == [("GET", f"/{database.id}/doc")]

    saved = await saved_document(database, "new", n=1)
    del saved["_rev"]  # (the state kept is the body sent, which held no revision)
    request_counter.reset()
    with pytest.raises(ConflictError):
        await saved.save()
    assert request_counter.requests == [("PUT", f"/{database.id}/new")]


async def test_save_sends_each_change_once(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", counter=0)
    request_counter.reset()

    document["counter"] = 1
    first = await document.save()
    second = await document.save()

    assert first is not None and first.status in (201, 202)
    assert second is None
    assert request_counter.requests == [("PUT", f"/{database.id}/doc")]
    assert document.rev is not None and document.rev.startswith("2-")


async def test_in_place_change_of_nested_value_makes_document_dirty(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", nested={"x": 0, "items": []})
    request_counter.reset()

    document["nested"]["x"] = 1
    document["nested"]["items"].append("new")
    response = await document.save()

    assert response is not None
    assert request_counter.count == 1
    assert (await server_copy(database, "doc"))["nested"] == {"x": 1, "items": ["new"]}


async def test_save_conflict_raises_conflict_error_and_keeps_local_data(
    database: Database, request_counter: RequestCounter
) -> None:
    mine = await saved_document(database, "doc", owner="nobody")
    theirs = await database.get("doc")
    theirs["owner"] = "them"
    await theirs.save()
    stale_rev = mine.rev
    mine["owner"] = "me"
    request_counter.reset()

    with pytest.raises(ConflictError) as excinfo:
        await mine.save()

    assert isinstance(excinfo.value, KeyError)
    assert isinstance(excinfo.value, aiohttp.ClientResponseError)
    assert excinfo.value.status == 409
    assert mine.rev == stale_rev
    assert mine["owner"] == "me"
    assert (await server_copy(database, "doc"))["owner"] == "them"

    request_counter.reset()
    with pytest.raises(ConflictError):
        await mine.save()  # still dirty, so it is sent again
    assert request_counter.count == 1


async def test_save_of_never_fetched_document_colliding_with_existing_raises_conflict(
    database: Database,
) -> None:
    await saved_document(database, "doc", name="first")
    newcomer = Document(database, "doc", data={"name": "second"})

    with pytest.raises(ConflictError):
        await newcomer.save()

    assert newcomer.rev is None
    assert dict(newcomer) == {"name": "second", "_id": "doc"}
    assert (await server_copy(database, "doc"))["name"] == "first"


# --- delete ---


async def test_delete_leaves_only_the_id_in_the_document(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="to delete")
    rev = document.rev
    request_counter.reset()

    response = await document.delete()

    assert isinstance(response, HTTPResponse)
    assert response.status in (200, 202)
    assert request_counter.requests == [("DELETE", f"/{database.id}/doc?rev={rev}")]
    assert dict(document) == {"_id": "doc"}
    assert document.exists is False
    assert document.rev is None
    assert document.data is None
    assert document.json == {}
    with pytest.raises(NotFoundError):
        await database.get("doc")


async def test_save_after_delete_resurrects_without_stray_fields(database: Database) -> None:
    document = await saved_document(database, "doc", name="first life")
    await document.delete()

    document["name"] = "second life"
    response = await document.save()

    assert response is not None and response.status in (201, 202)
    assert document.exists
    assert document.rev is not None and document.rev.startswith("3-")
    body = await server_copy(database, "doc")
    assert body == {"_id": "doc", "_rev": document.rev, "name": "second life"}


async def test_save_right_after_delete_sends_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="to delete")
    await document.delete()
    request_counter.reset()

    assert await document.save() is None
    assert request_counter.count == 0


async def test_delete_with_unsaved_changes_raises_conflict_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="saved")
    document["name"] = "local edit"
    request_counter.reset()

    with pytest.raises(ConflictError):
        await document.delete()

    assert request_counter.count == 0
    assert (await server_copy(database, "doc"))["name"] == "saved"


async def test_changing_only_the_rev_is_a_change_that_save_sends_and_delete_refuses(
    database: Database, request_counter: RequestCounter
) -> None:
    mine = await saved_document(database, "doc", name="mine")
    theirs = await database.get("doc")
    theirs["name"] = "theirs"
    await theirs.save()
    request_counter.reset()

    mine.rev = theirs.rev  # the data is unchanged, only the revision differs
    with pytest.raises(ConflictError):
        await mine.delete()  # unsaved local changes: refused before any request
    assert request_counter.count == 0

    response = await mine.save()
    assert response is not None and response.status in (201, 202)
    assert await mine.save() is None  # clean again: nothing sent
    assert request_counter.requests == [("PUT", f"/{database.id}/doc")]
    stored = await server_copy(database, "doc")
    assert stored["name"] == "mine"
    assert stored["_rev"] == mine.rev and str(mine.rev).startswith("3-")


async def test_setting_a_stale_rev_makes_save_send_and_raise_conflict(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="v1")
    first_rev = str(document.rev)
    document["name"] = "v2"
    await document.save()
    document["name"] = "v1"
    await document.save()  # data as in revision 1, revision 3
    request_counter.reset()

    document.rev = first_rev
    with pytest.raises(ConflictError):
        await document.save()
    assert request_counter.requests == [("PUT", f"/{database.id}/doc")]


async def test_delete_with_discard_changes_deletes_despite_local_edits(
    database: Database,
) -> None:
    document = await saved_document(database, "doc", name="saved")
    document["name"] = "local edit"

    await document.delete(discard_changes=True)

    assert dict(document) == {"_id": "doc"}
    with pytest.raises(NotFoundError):
        await database.get("doc")


async def test_delete_of_never_saved_document_raises_key_error_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(KeyError):
        await Document(database, "never_saved").delete()
    with pytest.raises(KeyError):
        await Document(database, "never_saved").delete(discard_changes=True)
    assert request_counter.count == 0


async def test_delete_with_stale_rev_raises_conflict(database: Database) -> None:
    mine = await saved_document(database, "doc", name="v1")
    theirs = await database.get("doc")
    theirs["name"] = "v2"
    await theirs.save()

    with pytest.raises(ConflictError):
        await mine.delete()

    assert mine.exists
    assert (await server_copy(database, "doc"))["name"] == "v2"


# --- copy ---


async def test_copy_creates_a_new_document_from_the_server_revision(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "original", name="on server")
    document["name"] = "local edit, not copied"
    request_counter.reset()

    response = await document.copy("duplicate")

    assert isinstance(response, HTTPResponse)
    assert response.status == 201
    assert request_counter.requests == [("COPY", f"/{database.id}/original")]
    duplicate = await database.get("duplicate")
    assert duplicate.json == {"name": "on server"}
    assert document["name"] == "local edit, not copied"


@pytest.mark.couchdb_only(
    "pouchdb-server's COPY answer has no ETag rev and no Location (DIFF 4.28)"
)
async def test_copy_response_carries_new_rev_and_location(database: Database) -> None:
    document = await saved_document(database, "original", name="on server")

    response = await document.copy("duplicate")

    duplicate = await database.get("duplicate")
    assert response.etag == duplicate.rev
    assert "Location" in response.headers
    assert "Etag" in response.headers
    assert "ETag" in response.headers
    assert response.headers["Etag"] == response.headers["ETag"]
    assert response.headers["ETag"].strip('"') == duplicate.rev


async def test_copy_onto_an_existing_document_raises_conflict(database: Database) -> None:
    document = await saved_document(database, "original", name="original")
    await saved_document(database, "taken", name="already here")

    with pytest.raises(ConflictError):
        await document.copy("taken")

    assert (await server_copy(database, "taken"))["name"] == "already here"


async def test_copy_of_missing_document_raises_not_found(database: Database) -> None:
    with pytest.raises(NotFoundError):
        await Document(database, "missing").copy("duplicate")


# --- info ---


async def test_info_reports_id_and_current_server_rev(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="v1")
    document["name"] = "v2"
    await document.save()
    stale = Document(database, "doc", data={"name": "local edit"})  # local state is ignored
    request_counter.reset()

    info = await stale.info()

    assert info == {"ok": True, "id": "doc", "rev": document.rev}
    assert request_counter.requests[0] == ("HEAD", f"/{database.id}/doc")


@pytest.mark.couchdb_only(
    "pouchdb-server's ETag is a body hash, not the rev (DIFF 4.23), so the rev needs a GET"
)
async def test_info_sends_exactly_one_head_request(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="saved")
    request_counter.reset()

    info = await document.info()

    assert request_counter.requests == [("HEAD", f"/{database.id}/doc")]
    assert info["rev"] == document.rev


async def test_info_of_missing_document_raises_not_found(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(NotFoundError) as excinfo:
        await Document(database, "missing").info()

    assert excinfo.value.status == 404
    assert request_counter.requests == [("HEAD", f"/{database.id}/missing")]


async def test_fetch_info_is_a_deprecated_alias_of_info(database: Database) -> None:
    document = await saved_document(database, "doc")

    with pytest.warns(DeprecationWarning):
        info = await document.fetch_info()

    assert info["id"] == "doc"


# --- conflicts and revisions ---


async def make_conflict(database: Database, id: str) -> tuple[Document, str]:
    """A saved document plus a second, conflicting first revision written beside it."""
    document = await saved_document(database, id, side="ours")
    other_rev = "1-" + "f" * 32
    await document._put({"_id": id, "_rev": other_rev, "side": "theirs"}, new_edits=False)
    return document, other_rev


async def test_conflicts_lists_the_losing_revisions(
    database: Database, request_counter: RequestCounter
) -> None:
    document, other_rev = await make_conflict(database, "doc")
    winner = (await database.get("doc")).rev
    request_counter.reset()

    conflicts = await document.conflicts()

    assert request_counter.requests == [("GET", f"/{database.id}/doc?conflicts=true")]
    assert len(conflicts) == 1
    assert {winner, *conflicts} == {document.rev, other_rev}


async def test_conflicts_works_on_a_dirty_document_and_keeps_its_data(
    database: Database,
) -> None:
    document, _ = await make_conflict(database, "doc")
    document["side"] = "local edit"
    before = dict(document)

    assert len(await document.conflicts()) == 1
    assert dict(document) == before


async def test_conflicts_of_a_document_without_conflicts_is_empty(database: Database) -> None:
    document = await saved_document(database, "doc", name="alone")
    assert await document.conflicts() == []


async def test_private_put_with_new_edits_false_changes_no_local_state(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", side="ours")
    before = dict(document)
    request_counter.reset()

    response, _ = await document._put(
        {"_id": "doc", "_rev": "1-" + "a" * 32, "side": "theirs"}, new_edits=False
    )

    assert response.status in (201, 202)
    assert request_counter.requests == [("PUT", f"/{database.id}/doc?new_edits=false")]
    assert dict(document) == before
    assert await document.save() is None


async def test_revs_lists_every_revision_newest_first(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", version=1)
    revisions = [document.rev]
    for version in (2, 3):
        document["version"] = version
        await document.save()
        revisions.append(document.rev)
    request_counter.reset()

    assert await document.revs() == list(reversed(revisions))
    assert request_counter.requests == [("GET", f"/{database.id}/doc?revs_info=true")]


async def test_revs_of_never_saved_document_raises_not_found(database: Database) -> None:
    with pytest.raises(NotFoundError):
        await Document(database, "never_saved").revs()


# --- properties ---


async def test_rev_setter_requires_a_str(database: Database) -> None:
    document = Document(database, "doc")
    document.rev = "1-abc"
    assert document.rev == "1-abc"
    assert document["_rev"] == "1-abc"
    with pytest.raises(TypeError):
        document.rev = 1  # type: ignore[assignment]
    assert document.rev == "1-abc"


async def test_data_is_the_live_dict_of_an_existing_document(database: Database) -> None:
    document = await saved_document(database, "doc", name="saved")

    data = document.data
    assert data is not None
    assert data == dict(document)
    data["added_through_data"] = True
    assert document["added_through_data"] is True


async def test_json_holds_only_fields_without_underscore_as_a_new_dict(
    database: Database,
) -> None:
    document = await saved_document(database, "doc", name="saved", nested={"_keep": 1})

    content = document.json
    assert content == {"name": "saved", "nested": {"_keep": 1}}
    content["name"] = "changed copy"
    assert document["name"] == "saved"


async def test_json_of_an_existing_document_can_seed_a_clone(database: Database) -> None:
    original = await saved_document(database, "original", name="cloned", size=3)

    clone = await database.create("clone", data=original.json)
    await clone.save()

    assert (await database.get("clone")).json == {"name": "cloned", "size": 3}


async def test_exists_is_false_for_a_document_marked_deleted(database: Database) -> None:
    document = await saved_document(database, "doc")
    assert document.exists

    document["_deleted"] = True

    assert document.exists is False
    assert document.data is None
    assert document.json == {}


async def test_properties_send_no_request(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", name="saved")
    request_counter.reset()

    _ = (document.rev, document.data, document.json, document.exists, document.id)
    document.attachment("file.txt")

    assert request_counter.count == 0


async def test_dirty_cache_tracks_unsaved_changes(database: Database) -> None:
    document = Document(database, "doc")
    assert document._dirty_cache is True  # never saved

    await document.save()
    assert document._dirty_cache is False

    document["name"] = "edited"
    assert document._dirty_cache is True
    del document["name"]
    assert document._dirty_cache is False  # a content comparison, not an edit flag


# --- the dict-like surface ---


def test_item_access_assignment_deletion_and_membership() -> None:
    document = Document(None, "doc", data={"a": 1})

    document["b"] = 2
    assert document["a"] == 1 and document["b"] == 2
    assert "a" in document and "missing" not in document
    del document["a"]
    assert "a" not in document
    with pytest.raises(KeyError):
        document["a"]
    with pytest.raises(KeyError):
        del document["a"]


def test_keys_values_items_follow_insertion_order() -> None:
    document = Document(None, "doc", data={"z": 26, "a": 1})
    document["m"] = 13

    assert list(document.keys()) == ["z", "a", "_id", "m"]
    assert list(document.values()) == [26, 1, "doc", 13]
    assert list(document.items()) == [("z", 26), ("a", 1), ("_id", "doc"), ("m", 13)]
    assert dict(document) == {"z": 26, "a": 1, "_id": "doc", "m": 13}


def test_get_does_not_insert_but_setdefault_does() -> None:
    document = Document(None, "doc", data={"present": 1})

    assert document.get("present") == 1
    assert document.get("absent") is None
    assert document.get("absent", "fallback") == "fallback"
    assert "absent" not in document

    assert document.setdefault("present", 99) == 1
    assert document.setdefault("inserted", []) == []
    assert document["inserted"] == []
    assert document.setdefault("inserted_none") is None
    assert "inserted_none" in document


def test_update_merges_like_dict_update() -> None:
    document = Document(None, "doc", data={"a": 1, "b": 2})
    document.update({"b": 20, "c": 30})
    assert dict(document) == {"a": 1, "b": 20, "_id": "doc", "c": 30}


async def test_dict_like_changes_send_no_request_until_save(
    database: Database, request_counter: RequestCounter
) -> None:
    document = await saved_document(database, "doc", a=1)
    request_counter.reset()

    document["b"] = 2
    del document["a"]
    document.update({"c": 3})
    document.setdefault("d", 4)
    _ = (document.get("b"), "c" in document, list(document.items()))
    assert request_counter.count == 0

    await document.save()
    assert request_counter.count == 1
    assert (await database.get("doc")).json == {"b": 2, "c": 3, "d": 4}


def test_repr_and_str_are_the_json_of_the_data_indented_by_two() -> None:
    document = Document(None, "doc", data={"name": "James", "nested": {"list": [1, 2]}})

    expected = json.dumps({"name": "James", "nested": {"list": [1, 2]}, "_id": "doc"}, indent=2)
    assert repr(document) == expected
    assert str(document) == expected


# --- the async context manager ---


async def test_context_manager_creates_a_missing_document(
    database: Database, request_counter: RequestCounter
) -> None:
    async with Document(database, "doc") as document:
        document["name"] = "created"

    assert request_counter.requests == [
        ("GET", f"/{database.id}/doc"),
        ("PUT", f"/{database.id}/doc"),
    ]
    assert document.exists
    assert (await database.get("doc")).json == {"name": "created"}


async def test_context_manager_keeps_local_data_of_a_missing_document(
    database: Database,
) -> None:
    async with Document(database, "doc", data={"seed": 1}) as document:
        assert document["seed"] == 1

    assert (await database.get("doc")).json == {"seed": 1}


async def test_context_manager_fetches_an_existing_document_discarding_local_data(
    database: Database,
) -> None:
    await saved_document(database, "doc", name="on server")

    async with Document(database, "doc", data={"local": True}) as document:
        assert document["name"] == "on server"
        assert "local" not in document
        document["name"] = "updated"

    body = await database.get("doc")
    assert body.json == {"name": "updated"}
    assert body.rev is not None and body.rev.startswith("2-")


async def test_context_manager_without_changes_sends_only_the_fetch(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved_document(database, "doc", name="on server")
    request_counter.reset()

    async with Document(database, "doc"):
        pass

    assert request_counter.requests == [("GET", f"/{database.id}/doc")]


async def test_context_manager_sends_nothing_when_the_block_raises(
    database: Database, request_counter: RequestCounter
) -> None:
    await saved_document(database, "doc", name="on server")
    request_counter.reset()

    with pytest.raises(RuntimeError, match="boom"):
        async with Document(database, "doc") as document:
            document["name"] = "never saved"
            raise RuntimeError("boom")

    assert request_counter.requests == [("GET", f"/{database.id}/doc")]
    assert (await database.get("doc"))["name"] == "on server"


async def test_context_manager_propagates_a_save_conflict(database: Database) -> None:
    await saved_document(database, "doc", name="v1")

    with pytest.raises(ConflictError):
        async with Document(database, "doc") as document:
            document["name"] = "mine"
            concurrent = await database.get("doc")
            concurrent["name"] = "theirs"
            await concurrent.save()

    assert (await database.get("doc"))["name"] == "theirs"


# --- ids that need quoting ---

SPECIAL_IDS = [
    "a/b",
    "a+b",
    "a?b",
    "a#b",
    "100%",
    "a%2Fb",
    "a b",
    "ça🛋",
    "..",
    ".",
    "_design/x",
    "_local/x",
]


@pytest.mark.parametrize("doc_id", SPECIAL_IDS)
async def test_special_id_addresses_exactly_that_document(
    database: Database, request_counter: RequestCounter, doc_id: str
) -> None:
    document = Document(database, doc_id, data={"value": doc_id})
    await document.save()

    fetched = await database.get(doc_id)
    assert fetched["_id"] == doc_id
    assert fetched["value"] == doc_id
    assert fetched.rev == document.rev

    info = await fetched.info()
    assert info["id"] == doc_id

    fetched["value"] = "updated"
    await fetched.save()
    assert (await database.get(doc_id))["value"] == "updated"

    await fetched.delete()
    with pytest.raises(NotFoundError):
        await database.get(doc_id)

    prefix = f"/{database.id}/"
    assert all(
        path.startswith(prefix) and len(path) > len(prefix) for _, path in request_counter.requests
    )


async def test_special_ids_are_listed_as_themselves(database: Database) -> None:
    for doc_id in SPECIAL_IDS:
        await saved_document(database, doc_id, value=doc_id)

    listed = [doc_id async for doc_id in database.akeys()]

    # _local documents are never part of _all_docs
    assert sorted(listed) == sorted(i for i in SPECIAL_IDS if not i.startswith("_local/"))


async def test_dot_dot_id_does_not_reach_the_server_root(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(NotFoundError):
        await database.get("..")
    with pytest.raises(NotFoundError):
        await Document(database, "..").info()

    assert [path for _, path in request_counter.requests] == [
        f"/{database.id}/%2E%2E",
        f"/{database.id}/%2E%2E",
    ]


# --- credentials ---


def secrets_of(user: str, password: str) -> list[str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [password, f"{user}:{password}", token]


async def test_credentials_never_appear_in_client_repr(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    url_with_credentials = server_url.replace("://", f"://{admin_user}:{admin_password}@", 1)
    for client in (
        CouchDB(server_url, user=admin_user, password=admin_password),
        CouchDB(url_with_credentials),
    ):
        async with client:
            shown = repr(client) + str(client)
            for secret in secrets_of(admin_user, admin_password):
                assert secret not in shown


async def test_credentials_never_appear_in_errors(
    admin_user: str, admin_password: str, database: Database
) -> None:
    with pytest.raises(NotFoundError) as excinfo:
        await database.get("missing")

    error = excinfo.value
    shown = repr(error) + str(error) + str(error.args)
    for secret in secrets_of(admin_user, admin_password):
        assert secret not in shown


async def test_wrong_password_raises_unauthorized_without_showing_it(
    server_url: str, throwaway_user: tuple[str, str], database: Database
) -> None:
    name, _ = throwaway_user
    wrong_password = "not-the-password-7f3a"
    async with CouchDB(server_url, user=name, password=wrong_password) as client:
        with pytest.raises(UnauthorizedError) as excinfo:
            await Document(Database(client, database.id), "doc").fetch()

    error = excinfo.value
    assert isinstance(error, PermissionError)
    assert error.status == 401
    shown = repr(error) + str(error)
    for secret in secrets_of(name, wrong_password):
        assert secret not in shown


@pytest.mark.couchdb_only("pouchdb-server keeps numbers as JavaScript doubles")
async def test_integers_beyond_64_bits_round_trip_exactly(database: Database) -> None:
    big = 123456789012345678901234567890
    doc = Document(database, "big", data={"big": big, "negative": -big})
    await doc.save()
    fetched = await database.get("big")
    assert fetched["big"] == big
    assert fetched["negative"] == -big
    assert [d["big"] async for d in database.docs()] == [big]
