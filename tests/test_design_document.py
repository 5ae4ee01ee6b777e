"""DesignDocument: allowed keys, create_view, view(), saving (API.md section 8)."""

from __future__ import annotations

from typing import Any

import pytest

from aiocouch import (
    BadRequestError,
    ConflictError,
    Database,
    Document,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UpdateFunction,
    View,
)
from aiocouch.design_document import DesignDocsView, DesignDocument
from testserver.request_counter import RequestCounter

BY_N = "function(doc) { if (doc.n !== undefined) { emit(doc.n, doc.n); } }"
BY_TAG = "function(doc) { if (doc.tag) { emit(doc.tag, 1); } }"

ALLOWED_KEYS = [
    "language",
    "options",
    "filters",
    "lists",
    "rewrites",
    "shows",
    "updates",
    "validate_doc_update",
    "views",
]


async def put_numbers(db: Database, count: int) -> None:
    result = await db._bulk_docs([{"_id": f"n{i}", "n": i} for i in range(count)])
    assert all("rev" in item for item in result), result


def test_id_is_the_bare_name_and_endpoint_has_the_design_prefix(database: Database) -> None:
    ddoc = DesignDocument(database, "d")
    assert ddoc.id == "d"
    assert ddoc["_id"] == "d"
    assert ddoc.endpoint == f"/{database.id}/_design/d"


def test_design_doc_name_is_quoted_in_the_endpoint(database: Database) -> None:
    assert DesignDocument(database, "a/b").endpoint == f"/{database.id}/_design/a%2Fb"


@pytest.mark.parametrize("key", ALLOWED_KEYS)
def test_allowed_keys_can_be_set(database: Database, key: str) -> None:
    ddoc = DesignDocument(database, "d")
    ddoc[key] = {}
    assert ddoc[key] == {}


@pytest.mark.parametrize("key", ["foo", "map", "indexes", "_deleted"])
def test_other_keys_raise_key_error(database: Database, key: str) -> None:
    ddoc = DesignDocument(database, "d")
    with pytest.raises(KeyError):
        ddoc[key] = 1
    assert key not in ddoc


async def test_saved_design_document_is_stored_under_its_design_id(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("d")
    ddoc["views"] = {"by_n": {"map": BY_N}}
    ddoc["language"] = "javascript"
    request_counter.reset()
    response = await ddoc.save()
    assert response is not None
    assert response.status in (201, 202)
    assert request_counter.requests == [("PUT", f"/{database.id}/_design/d")]
    assert ddoc.exists
    assert [id async for id in database.akeys()] == ["_design/d"]
    stored = await database.get("_design/d")
    assert stored["views"] == {"by_n": {"map": BY_N}}
    assert stored.rev == ddoc.rev


async def test_fetched_design_document_has_the_prefixed_id(database: Database) -> None:
    ddoc = await database.design_doc("d")
    ddoc["language"] = "javascript"
    await ddoc.save()
    again = await database.design_doc("d", exists_ok=True)
    assert again.id == "d"
    assert again["_id"] == "_design/d"
    again["views"] = {"by_n": {"map": BY_N}}
    await again.save()
    assert (await database.get("_design/d"))["views"] == {"by_n": {"map": BY_N}}


async def test_create_view_saves_with_one_put_and_returns_a_working_view(
    database: Database, request_counter: RequestCounter
) -> None:
    await put_numbers(database, 4)
    ddoc = await database.design_doc("d")
    request_counter.reset()

    view = await ddoc.create_view("by_n", map_function=BY_N)

    assert request_counter.requests == [("PUT", f"/{database.id}/_design/d")]
    assert isinstance(view, View)
    assert (view.design_doc, view.id) == ("d", "by_n")
    assert ddoc["views"] == {"by_n": {"map": BY_N}}
    assert ddoc["language"] == "javascript"
    assert not ddoc._dirty_cache
    assert list((await view.get()).values()) == [0, 1, 2, 3]


async def test_create_view_with_a_reduce_function(database: Database) -> None:
    await put_numbers(database, 4)
    ddoc = await database.design_doc("d")
    view = await ddoc.create_view("sum", map_function=BY_N, reduce_function="_sum")
    assert ddoc["views"]["sum"] == {"map": BY_N, "reduce": "_sum"}
    assert list((await view.get()).values()) == [6]


async def test_create_view_forces_javascript_language(database: Database) -> None:
    ddoc = await database.design_doc("d")
    ddoc["language"] = "erlang"
    await ddoc.create_view("by_n", map_function=BY_N)
    assert (await database.get("_design/d"))["language"] == "javascript"


async def test_create_view_twice_raises_conflict_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("d")
    await ddoc.create_view("by_n", map_function=BY_N)
    request_counter.reset()
    with pytest.raises(ConflictError):
        await ddoc.create_view("by_n", map_function=BY_TAG)
    assert request_counter.count == 0
    assert ddoc["views"]["by_n"] == {"map": BY_N}
    assert (await database.get("_design/d"))["views"]["by_n"] == {"map": BY_N}


async def test_create_view_with_exists_ok_replaces_the_definition(database: Database) -> None:
    await database._bulk_docs([{"_id": "t", "tag": "x"}, {"_id": "u", "n": 1}])
    ddoc = await database.design_doc("d")
    await ddoc.create_view("v", map_function=BY_N)
    first_rev = ddoc.rev
    view = await ddoc.create_view("v", map_function=BY_TAG, exists_ok=True)
    assert ddoc.rev != first_rev
    assert (await database.get("_design/d"))["views"]["v"] == {"map": BY_TAG}
    assert list((await view.get()).keys()) == ["t"]


async def test_create_view_adds_to_an_existing_design_document(database: Database) -> None:
    first = await database.design_doc("d")
    await first.create_view("by_n", map_function=BY_N)
    ddoc = await database.design_doc("d", exists_ok=True)
    await ddoc.create_view("by_tag", map_function=BY_TAG)
    assert ddoc.rev is not None and ddoc.rev.startswith("2-")
    stored = await database.get("_design/d")
    assert set(stored["views"]) == {"by_n", "by_tag"}


async def test_create_view_on_an_existing_design_doc_with_that_view_raises_conflict(
    database: Database,
) -> None:
    first = await database.design_doc("d")
    await first.create_view("by_n", map_function=BY_N)
    ddoc = await database.design_doc("d", exists_ok=True)
    with pytest.raises(ConflictError):
        await ddoc.create_view("by_n", map_function=BY_TAG)


def test_view_returns_a_view_of_this_design_document_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = DesignDocument(database, "d")
    view = ddoc.view("by_n")
    assert isinstance(view, View)
    assert (view.design_doc, view.id) == ("d", "by_n")
    assert view.endpoint == f"/{database.id}/_design/d/_view/by_n"
    assert request_counter.count == 0


async def test_design_document_can_be_deleted(database: Database) -> None:
    ddoc = await database.design_doc("d")
    await ddoc.create_view("by_n", map_function=BY_N)
    await ddoc.delete()
    assert not ddoc.exists
    assert [id async for id in database.akeys()] == []


# --- HEAD, DELETE and COPY of a design document (transcript 14.59-14.62) ---


async def test_info_sends_a_head_to_the_design_path(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("d")
    await ddoc.create_view("by_n", map_function=BY_N)
    request_counter.reset()
    assert (await ddoc.info())["rev"] == ddoc.rev
    # pouchdb-server's ETag is no revision, so a GET follows there (DIFF 3).
    assert request_counter.requests[0] == ("HEAD", f"/{database.id}/_design/d")


async def test_delete_sends_a_delete_to_the_design_path_and_head_then_finds_nothing(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("d")
    await ddoc.create_view("by_n", map_function=BY_N)
    rev = ddoc.rev
    request_counter.reset()
    response = await ddoc.delete()
    assert response.status == 200
    assert request_counter.requests == [("DELETE", f"/{database.id}/_design/d?rev={rev}")]
    assert await database.design_doc("d") is not None  # HEAD 404: no ConflictError


@pytest.mark.couchdb_only("pouchdb-server answers COPY of a design document 404 (DIFF 14.59)")
async def test_copy_to_a_design_id_makes_another_design_document(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 14.59, 14.60
    ddoc = await database.design_doc("x")
    await ddoc.create_view("by_n", map_function=BY_N)
    request_counter.reset()
    response = await ddoc.copy("_design/x_copy")
    assert request_counter.requests == [("COPY", f"/{database.id}/_design/x")]
    assert response.status == 201
    copy = await database.design_doc("x_copy", exists_ok=True)
    assert copy.rev == response.etag
    assert copy["views"] == ddoc["views"]


# --- attachments of a design document (transcript 14.67-14.71) ---


async def test_design_document_attachments_live_below_the_design_path(
    database: Database, request_counter: RequestCounter
) -> None:
    ddoc = await database.design_doc("x")
    ddoc["language"] = "javascript"
    await ddoc.save()
    first = ddoc.rev
    attachment = ddoc.attachment("readme.txt")
    path = f"/{database.id}/_design/x/readme.txt"
    assert attachment.endpoint == path
    request_counter.reset()

    await attachment.save(b"design doc attachment\n", "text/plain")
    assert request_counter.requests == [
        ("PUT", f"{path}?rev={first}"),
        ("GET", f"/{database.id}/_design/x"),
    ]
    assert ddoc.rev is not None and ddoc.rev.startswith("2-")
    assert set(ddoc["_attachments"]) == {"readme.txt"}
    assert await ddoc.attachment("readme.txt").fetch() == b"design doc attachment\n"
    assert await attachment.exists()

    await attachment.delete()
    assert not await attachment.exists()
    with pytest.raises(NotFoundError):
        await attachment.fetch()
    assert "readme.txt" not in ddoc.get("_attachments", {})


# --- update functions (transcript 14.72-14.77) ---

STAMP = """function(doc, req) {
  if (!doc) {
    if (req.id) {
      return [{_id: req.id, made_by: "stamp", body: req.body}, "created " + req.id + "\\n"];
    }
    return [null, "no document\\n"];
  }
  doc.stamps = (doc.stamps || 0) + 1;
  return [doc, JSON.stringify({stamps: doc.stamps, query: req.query})];
}"""


async def stamp_function(database: Database) -> UpdateFunction:
    ddoc = await database.design_doc("upd")
    ddoc["updates"] = {"stamp": STAMP}
    await ddoc.save()
    return ddoc.update_function("stamp")


async def test_update_function_without_a_document_answers_its_text(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 14.73
    stamp = await stamp_function(database)
    request_counter.reset()
    result = await stamp.post("x")
    assert request_counter.requests == [("POST", f"/{database.id}/_design/upd/_update/stamp")]
    assert request_counter.headers[0][2]["Content-Type"] == "text/plain; charset=utf-8"
    assert (result.status, result.body, result.text()) == (200, b"no document\n", "no document\n")
    assert result.content_type is not None and result.content_type.startswith("text/html")
    assert (result.doc_id, result.rev) == (None, None)


async def test_update_function_on_a_document_saves_it_and_gives_the_new_revision(
    database: Database, request_counter: RequestCounter
) -> None:
    # transcript 14.74
    stamp = await stamp_function(database)
    document = Document(database, "doc1", data={"v": 1})
    await document.save()
    request_counter.reset()
    result = await stamp.put("doc1", "x", params={"tag": "t1"})
    assert request_counter.requests == [
        ("PUT", f"/{database.id}/_design/upd/_update/stamp/doc1?tag=t1")
    ]
    assert result.status == 201
    assert result.json() == {"stamps": 1, "query": {"tag": "t1"}}
    assert result.doc_id == "doc1"
    assert result.rev is not None and result.rev.startswith("2-")
    stored = await database.get("doc1")
    assert (stored.rev, stored["stamps"]) == (result.rev, 1)


async def test_update_function_can_create_the_document_it_is_called_for(
    database: Database,
) -> None:
    # transcript 14.75, 14.76
    stamp = await stamp_function(database)
    result = await stamp.put("upd_new", "hello")
    assert (result.status, result.text(), result.doc_id) == (201, "created upd_new\n", "upd_new")
    stored = await database.get("upd_new")
    assert dict(stored) == {
        "_id": "upd_new",
        "_rev": result.rev,
        "made_by": "stamp",
        "body": "hello",
    }


@pytest.mark.parametrize(
    ("body", "content_type", "sent_type", "stored"),
    [
        ({"a": [1, "x"]}, None, "application/json", '{"a":[1,"x"]}'),
        (b"raw", None, "application/octet-stream", "raw"),
        ("a=1", "application/x-www-form-urlencoded", "application/x-www-form-urlencoded", "a=1"),
    ],
)
async def test_update_function_body_goes_as_json_bytes_or_text_with_its_type(
    database: Database,
    request_counter: RequestCounter,
    body: Any,
    content_type: str | None,
    sent_type: str,
    stored: str,
) -> None:
    stamp = await stamp_function(database)
    request_counter.reset()
    await stamp.put("new doc", body, content_type=content_type)
    assert request_counter.requests == [
        ("PUT", f"/{database.id}/_design/upd/_update/stamp/new%20doc")
    ]
    assert request_counter.headers[0][2]["Content-Type"] == sent_type
    assert (await database.get("new doc"))["body"] == stored


async def test_a_missing_update_function_raises_not_found(database: Database) -> None:
    # transcript 14.77
    stamp = await stamp_function(database)
    with pytest.raises(NotFoundError):
        await DesignDocument(database, "upd").update_function("missing").post("x")
    with pytest.raises(NotFoundError):
        await DesignDocument(database, "nope").update_function("stamp").post("x")
    assert (await stamp.post()).status == 200


@pytest.mark.parametrize(("body", "error"), [(object(), TypeError), ("\ud800", ValueError)])
async def test_update_function_refuses_a_body_it_cannot_send_before_any_request(
    database: Database, request_counter: RequestCounter, body: Any, error: type[Exception]
) -> None:
    function = DesignDocument(database, "upd").update_function("stamp")
    with pytest.raises(error):
        await function.post(body)
    with pytest.raises(ValueError):
        await function.post("x", content_type="text/plain\r\nX-Evil: 1")
    with pytest.raises(BadRequestError):
        await function.put("_bad", "x")
    with pytest.raises(TypeError):
        await function.put(7, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DesignDocument(database, "upd").update_function("")
    with pytest.raises(TypeError):
        DesignDocument(database, "upd").update_function(None)  # type: ignore[arg-type]
    assert request_counter.count == 0


# --- validation functions ---

VALIDATE = """function(newDoc, oldDoc, userCtx) {
  if (newDoc.bad) { throw({forbidden: "bad documents are refused"}); }
  if (newDoc.unsigned) { throw({unauthorized: "sign your documents"}); }
}"""


async def with_validation(database: Database) -> None:
    ddoc = await database.design_doc("validate")
    ddoc["validate_doc_update"] = VALIDATE
    await ddoc.save()


async def test_a_forbidden_thrown_by_validation_surfaces_its_message(database: Database) -> None:
    await with_validation(database)
    with pytest.raises(ForbiddenError) as raised:
        await Document(database, "doc", data={"bad": True}).save()
    assert raised.value.status == 403
    assert (raised.value.error, raised.value.reason) == ("forbidden", "bad documents are refused")
    assert "bad documents are refused" in str(raised.value)
    await Document(database, "doc", data={"bad": False}).save()


async def test_an_unauthorized_thrown_by_validation_surfaces_its_message(
    database: Database,
) -> None:
    await with_validation(database)
    with pytest.raises(UnauthorizedError) as raised:
        await Document(database, "doc", data={"unsigned": True}).save()
    assert raised.value.status == 401
    assert (raised.value.error, raised.value.reason) == ("unauthorized", "sign your documents")
    assert "sign your documents" in str(raised.value)


async def test_validation_refusals_in_a_bulk_write_carry_their_messages(
    database: Database,
) -> None:
    await with_validation(database)
    async with database.create_docs() as bulk:
        bulk.create("good", data={"v": 1})
        bulk.create("bad", data={"bad": True})
    assert bulk.ok is not None and [doc.id for doc in bulk.ok] == ["good"]
    assert bulk.error is not None and [doc.id for doc in bulk.error] == ["bad"]
    assert bulk.response is not None
    [refused] = [item for item in bulk.response if item.get("id") == "bad"]
    assert (refused["error"], refused["reason"]) == ("forbidden", "bad documents are refused")


# --- _design_docs (transcript 5.26, 14.55, 14.56) ---


def test_design_docs_is_a_view_of_the_design_documents(database: Database) -> None:
    view = database.design_docs
    assert isinstance(view, DesignDocsView)
    assert view.endpoint == f"/{database.id}/_design_docs"


@pytest.mark.couchdb_only("pouchdb-server has no _design_docs (DIFF 5.26, 14.55, 14.56)")
async def test_design_docs_lists_streams_and_queries_the_design_documents(
    database: Database, request_counter: RequestCounter
) -> None:
    for name in ("x", "y"):
        ddoc = await database.design_doc(name)
        await ddoc.create_view("by_n", map_function=BY_N)
    await put_numbers(database, 2)
    request_counter.reset()
    listed = await database.design_docs.get()
    assert request_counter.requests == [("GET", f"/{database.id}/_design_docs")]
    assert [row["id"] for row in listed.rows] == ["_design/x", "_design/y"]
    assert listed.total_rows == 2

    ids = [id async for id in database.design_docs.ids(["_design/x", "_design/missing"])]
    assert ids == ["_design/x"]

    documents = [doc async for doc in database.design_docs.docs()]
    assert [(doc.id, doc["views"]) for doc in documents] == [
        ("_design/x", {"by_n": {"map": BY_N}}),
        ("_design/y", {"by_n": {"map": BY_N}}),
    ]

    answers = [
        [row["id"] async for row in result]
        async for result in database.design_docs.queries(
            [{"keys": ["_design/y"]}, {"descending": True, "limit": 1}]
        )
    ]
    assert answers == [["_design/y"], ["_design/y"]]
