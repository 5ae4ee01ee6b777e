"""Exceptions (API.md section 2): classes, messages, the legacy decorators, real statuses."""

from __future__ import annotations

import base64
import traceback
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import aiocouch
import aiocouch.exception
from aiocouch import CouchDB, Database, Document
from aiocouch.exception import (
    BadRequestError,
    ConflictError,
    ExpectationFailedError,
    ForbiddenError,
    NotFoundError,
    PreconditionFailedError,
    RemoteResponseError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    generator_raises,
    raise_for_endpoint,
    raises,
)

GENERIC_MESSAGE = (
    "Something went wrong, but I couldn't deduce the type of exception nor format a nice "
    "exception for you. I'm sorry."
)

# (class, builtin base, HTTP status), as in the contract's table
TYPED = [
    (BadRequestError, ValueError, 400),
    (UnauthorizedError, PermissionError, 401),
    (ForbiddenError, PermissionError, 403),
    (NotFoundError, KeyError, 404),
    (ConflictError, KeyError, 409),
    (PreconditionFailedError, ValueError, 412),
    (UnsupportedMediaTypeError, ValueError, 415),
    (ExpectationFailedError, ValueError, 417),
]
TYPED_IDS = [cls.__name__ for cls, _, _ in TYPED]
EIGHT = tuple(cls for cls, _, _ in TYPED)


def remote_error(status: int, reason: str | None = "a reason") -> RemoteResponseError:
    return RemoteResponseError(reason, None, (), status=status, message="HTTP phrase")


def leaks(text: str, secret: str, user: str) -> bool:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return secret in text or token in text


def everything_shown(exc: BaseException) -> str:
    """str, repr and args of an exception and of every exception in its chain.

    (Formatted tracebacks also quote the test's source lines, which name the password.)
    """
    shown: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        shown += [str(current), repr(current), repr(current.args)]
        shown += traceback.format_exception_only(type(current), current)
        current = current.__cause__ or current.__context__
    return "\n".join(shown)


# --- classes ---


@pytest.mark.parametrize(("cls", "base", "status"), TYPED, ids=TYPED_IDS)
def test_typed_class_keeps_builtin_base_and_is_a_client_response_error(
    cls: type[Exception], base: type[Exception], status: int
) -> None:
    assert issubclass(cls, base)
    assert issubclass(cls, aiohttp.ClientResponseError)
    assert issubclass(cls, RemoteResponseError)
    assert issubclass(cls, aiocouch.RemoteResponseError)


@pytest.mark.parametrize(("cls", "base", "status"), TYPED, ids=TYPED_IDS)
def test_typed_class_is_exported_from_the_package_and_the_module(
    cls: type[Exception], base: type[Exception], status: int
) -> None:
    assert getattr(aiocouch, cls.__name__) is cls
    assert getattr(aiocouch.exception, cls.__name__) is cls


@pytest.mark.parametrize(("cls", "base", "status"), TYPED, ids=TYPED_IDS)
def test_typed_error_built_from_a_message_is_caught_by_its_builtin_base(
    cls: type[Exception], base: type[Exception], status: int
) -> None:
    with pytest.raises(base) as caught:
        raise cls("the message")
    assert caught.value.args == ("the message",)


@pytest.mark.parametrize(
    "cls", [BadRequestError, UnauthorizedError, ForbiddenError, PreconditionFailedError]
)
def test_str_of_typed_error_is_the_message(cls: type[Exception]) -> None:
    assert str(cls("Access forbidden: a reason")) == "Access forbidden: a reason"


@pytest.mark.parametrize("cls", [NotFoundError, ConflictError])
def test_str_of_key_error_classes_is_the_quoted_message(cls: type[Exception]) -> None:
    message = "The document 'x' does not exist"
    assert str(cls(message)) == str(KeyError(message))
    assert str(cls("plain")) == "'plain'"


def test_remote_response_error_with_no_request_info() -> None:
    exc = RemoteResponseError(None, None, (), status=400)
    assert exc.status == 400
    assert exc.reason is None
    assert isinstance(exc, aiohttp.ClientResponseError)
    assert "400" in str(exc)
    assert "400" in repr(exc)


def test_remote_response_error_keeps_reason_message_and_headers() -> None:
    exc = RemoteResponseError(
        "Document is missing", None, (), status=404, message="Not Found", headers={"X-A": "b"}
    )
    assert exc.reason == "Document is missing"
    assert exc.status == 404
    assert exc.message == "Not Found"
    assert exc.headers == {"X-A": "b"}


# --- raise_for_endpoint and the decorators ---


class FakeDocument:
    """An endpoint with every attribute the message templates may use."""

    id = "doc-id"
    endpoint = "/db/doc-id"

    def __init__(self) -> None:
        self._data = {"_id": "doc-id", "_rev": "3-abc"}


class FakeAttachment:
    id = "file.txt"
    endpoint = "/db/doc-id/file.txt"

    def __init__(self) -> None:
        self._document = FakeDocument()


@pytest.mark.parametrize(("cls", "base", "status"), TYPED, ids=TYPED_IDS)
def test_raise_for_endpoint_picks_the_class_of_the_status(
    cls: type[Exception], base: type[Exception], status: int
) -> None:
    original = remote_error(status)
    with pytest.raises(cls) as caught:
        raise_for_endpoint(FakeDocument(), "Failed for {id}: {reason}", original)
    assert type(caught.value) is cls
    assert caught.value.args == ("Failed for doc-id: a reason",)
    assert caught.value.__cause__ is original
    assert isinstance(caught.value, aiohttp.ClientResponseError)


def test_raise_for_endpoint_formats_every_placeholder() -> None:
    with pytest.raises(ConflictError) as caught:
        raise_for_endpoint(
            FakeDocument(), "{id} {endpoint} {rev} {reason}", remote_error(409, "stale")
        )
    assert caught.value.args == ("doc-id /db/doc-id 3-abc stale",)

    with pytest.raises(NotFoundError) as caught_attachment:
        raise_for_endpoint(
            FakeAttachment(),
            "{id} of {document_id} at {document_rev}: {reason}",
            remote_error(404, "missing"),
        )
    assert caught_attachment.value.args == ("file.txt of doc-id at 3-abc: missing",)


def test_raise_for_endpoint_renders_a_missing_reason_as_none() -> None:
    with pytest.raises(ForbiddenError) as caught:
        raise_for_endpoint(FakeDocument(), "Access forbidden: {reason}", remote_error(403, None))
    assert str(caught.value) == "Access forbidden: None"


@pytest.mark.parametrize("endpoint", [object(), None, "a string"])
def test_raise_for_endpoint_works_on_any_object(endpoint: Any) -> None:
    with pytest.raises(ForbiddenError) as caught:
        raise_for_endpoint(endpoint, "Access forbidden: {reason}", remote_error(403))
    assert str(caught.value) == "Access forbidden: a reason"
    with pytest.raises(BadRequestError) as caught_plain:
        raise_for_endpoint(endpoint, "No placeholders", remote_error(400))
    assert str(caught_plain.value) == "No placeholders"


@pytest.mark.parametrize("status", [405, 429, 500, 503])
def test_raise_for_endpoint_unknown_status_without_type_is_the_generic_value_error(
    status: int,
) -> None:
    original = remote_error(status)
    with pytest.raises(ValueError) as caught:
        raise_for_endpoint(FakeDocument(), "Execution error", original)
    assert str(caught.value) == GENERIC_MESSAGE
    assert caught.value.__cause__ is original


def test_raise_for_endpoint_explicit_type_wins_for_any_status() -> None:
    original = remote_error(500, "boom")
    with pytest.raises(RuntimeError) as caught:
        raise_for_endpoint(FakeDocument(), "Query execution failed", original, RuntimeError)
    assert type(caught.value) is RuntimeError
    assert str(caught.value) == "Query execution failed"
    assert caught.value.__cause__ is original

    with pytest.raises(ForbiddenError) as caught_forbidden:
        raise_for_endpoint(FakeDocument(), "Access forbidden: {reason}", original, ForbiddenError)
    assert str(caught_forbidden.value) == "Access forbidden: boom"
    assert caught_forbidden.value.__cause__ is original

    with pytest.raises(NotFoundError) as caught_override:
        raise_for_endpoint(FakeDocument(), "gone: {reason}", remote_error(400), NotFoundError)
    assert caught_override.value.args == ("gone: a reason",)


class Decorated(FakeDocument):
    """Async functions and generators wrapped with the legacy decorators."""

    def __init__(self, error: BaseException | None, items: int = 0) -> None:
        super().__init__()
        self.error = error
        self.items = items

    @raises(404, "The document {id} does not exist: {reason}")
    @raises(409, "Conflict on {id} at {rev}: {reason}")
    @raises(403, "Access forbidden: {reason}")
    @raises(500, "Execution error")
    @raises(501, "Query execution failed", RuntimeError)
    async def call(self, value: int = 0) -> int:
        if self.error is not None:
            raise self.error
        return value + 1

    @generator_raises(404, "The database of {id} does not exist: {reason}")
    @generator_raises(500, "Execution error")
    @generator_raises(501, "Feed failed", RuntimeError)
    async def generate(self) -> AsyncIterator[int]:
        for n in range(self.items):
            yield n
        if self.error is not None:
            raise self.error


async def test_raises_passes_the_result_through_without_error() -> None:
    assert await Decorated(None).call(41) == 42
    assert await Decorated(None).call(value=1) == 2


@pytest.mark.parametrize(
    ("status", "cls", "message"),
    [
        (404, NotFoundError, "The document doc-id does not exist: a reason"),
        (409, ConflictError, "Conflict on doc-id at 3-abc: a reason"),
        (403, ForbiddenError, "Access forbidden: a reason"),
    ],
)
async def test_raises_translates_a_listed_status(
    status: int, cls: type[Exception], message: str
) -> None:
    original = remote_error(status)
    with pytest.raises(cls) as caught:
        await Decorated(original).call()
    assert caught.value.args == (message,)
    assert caught.value.__cause__ is original
    assert isinstance(caught.value, aiohttp.ClientResponseError)


@pytest.mark.parametrize("status", [400, 401, 412, 502])
async def test_raises_reraises_an_unlisted_status_unchanged(status: int) -> None:
    original = remote_error(status)
    with pytest.raises(RemoteResponseError) as caught:
        await Decorated(original).call()
    assert caught.value is original


async def test_raises_unknown_status_without_type_gives_the_generic_value_error() -> None:
    original = remote_error(500)
    with pytest.raises(ValueError) as caught:
        await Decorated(original).call()
    assert str(caught.value) == GENERIC_MESSAGE
    assert caught.value.__cause__ is original


async def test_raises_explicit_exception_type() -> None:
    original = remote_error(501)
    with pytest.raises(RuntimeError) as caught:
        await Decorated(original).call()
    assert type(caught.value) is RuntimeError
    assert str(caught.value) == "Query execution failed"
    assert caught.value.__cause__ is original


@pytest.mark.parametrize("error", [ValueError("local"), KeyError("k"), TypeError("t")])
async def test_raises_lets_other_exceptions_pass(error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        await Decorated(error).call()
    assert caught.value is error


async def test_raises_typed_error_with_a_listed_status_is_translated_again() -> None:
    # the typed errors of this package are RemoteResponseErrors too
    original = ConflictError("inner", reason="Document update conflict.", status=409)
    with pytest.raises(ConflictError) as caught:
        await Decorated(original).call()
    assert caught.value.args == ("Conflict on doc-id at 3-abc: Document update conflict.",)
    assert caught.value.__cause__ is original


async def test_generator_raises_yields_all_items_without_error() -> None:
    assert [n async for n in Decorated(None, items=3).generate()] == [0, 1, 2]


async def test_generator_raises_error_before_the_first_item() -> None:
    original = remote_error(404, "no_db_file")
    agen = Decorated(original).generate()
    with pytest.raises(NotFoundError) as caught:
        await agen.__anext__()
    assert str(caught.value) == str(KeyError("The database of doc-id does not exist: no_db_file"))
    assert caught.value.__cause__ is original


async def test_generator_raises_error_after_some_items() -> None:
    original = remote_error(404)
    received: list[int] = []
    with pytest.raises(NotFoundError):
        async for n in Decorated(original, items=2).generate():
            received.append(n)
    assert received == [0, 1]


async def test_generator_raises_unlisted_status_and_other_errors_unchanged() -> None:
    original = remote_error(401)
    with pytest.raises(RemoteResponseError) as caught:
        [n async for n in Decorated(original, items=1).generate()]
    assert caught.value is original

    local = RuntimeError("local")
    with pytest.raises(RuntimeError) as caught_local:
        [n async for n in Decorated(local).generate()]
    assert caught_local.value is local


async def test_generator_raises_generic_and_explicit_types() -> None:
    with pytest.raises(ValueError) as caught:
        [n async for n in Decorated(remote_error(500)).generate()]
    assert str(caught.value) == GENERIC_MESSAGE

    with pytest.raises(RuntimeError) as caught_explicit:
        [n async for n in Decorated(remote_error(501)).generate()]
    assert str(caught_explicit.value) == "Feed failed"


# --- real server statuses ---


async def test_missing_document_is_not_found_404(database: Database) -> None:
    with pytest.raises(NotFoundError) as caught:
        await database.get("no-such-doc")
    exc = caught.value
    assert exc.status == 404
    assert isinstance(exc, KeyError)
    assert isinstance(exc, aiohttp.ClientResponseError)
    assert isinstance(exc, RemoteResponseError)
    assert "no-such-doc" in str(exc)
    assert len(exc.args) == 1
    assert str(exc) == str(KeyError(exc.args[0]))


@pytest.fixture(params=["lean", "aiohttp"])
async def any_transport(
    request: pytest.FixtureRequest, server_url: str, admin_user: str, admin_password: str
) -> AsyncIterator[CouchDB]:
    """An admin client on the lean transport, or on aiohttp (a connector selects it)."""
    options: dict[str, Any] = {}
    if request.param == "aiohttp":
        options["connector"] = aiohttp.TCPConnector()
    async with CouchDB(server_url, user=admin_user, password=admin_password, **options) as client:
        yield client


def assert_caused_by_the_response_error(exc: RemoteResponseError, phrase: str) -> None:
    """As in aiocouch 4.0.1: raised from the plain error for the same answer."""
    cause = exc.__cause__
    assert type(cause) is RemoteResponseError
    assert isinstance(cause, aiohttp.ClientResponseError)
    assert cause.status == exc.status
    assert cause.request_info is exc.request_info
    assert cause.headers is exc.headers
    assert cause.reason == exc.reason
    assert cause.message == phrase
    assert "direct cause" in "".join(traceback.format_exception(type(exc), exc, None))


async def test_typed_errors_of_answers_keep_the_response_error_as_their_cause(
    any_transport: CouchDB, database: Database
) -> None:
    db = Database(any_transport, database.id)
    with pytest.raises(NotFoundError) as missing:
        await db.get("no-such-doc")
    assert_caused_by_the_response_error(missing.value, "Not Found")
    assert missing.value.request_info.url.path == f"/{database.id}/no-such-doc"

    await Document(db, "doc", data={"v": 1}).save()
    with pytest.raises(ConflictError) as conflict:
        await Document(db, "doc", data={"v": 2}).save()
    assert_caused_by_the_response_error(conflict.value, "Conflict")
    assert conflict.value.headers is not None

    gone = Database(any_transport, f"aiocouch_missing_{uuid.uuid4().hex}")
    with pytest.raises(NotFoundError) as streamed:
        [doc async for doc in gone.docs()]
    assert_caused_by_the_response_error(streamed.value, "Not Found")
    with pytest.raises(PreconditionFailedError) as exists:
        await any_transport.create(database.id)
    assert_caused_by_the_response_error(exists.value, "Precondition Failed")


async def test_missing_database_through_a_private_helper_is_not_found(couchdb: CouchDB) -> None:
    with pytest.raises(NotFoundError) as caught:
        await couchdb._server._get(f"/aiocouch_missing_{uuid.uuid4().hex}")
    assert caught.value.status == 404


async def test_stale_revision_is_a_conflict_409(database: Database) -> None:
    first = Document(database, "doc")
    first["v"] = 1
    await first.save()
    second = await database.get("doc")
    second["v"] = 2
    await second.save()

    first["v"] = 3
    with pytest.raises(ConflictError) as caught:
        await first.save()
    exc = caught.value
    assert exc.status == 409
    assert isinstance(exc, KeyError)
    assert isinstance(exc, aiohttp.ClientResponseError)
    assert exc.reason  # the server's reason
    assert str(exc) == str(KeyError(exc.args[0]))


async def test_existing_database_is_precondition_failed_412(
    couchdb: CouchDB, database: Database
) -> None:
    with pytest.raises(PreconditionFailedError) as caught:
        await couchdb.create(database.id)
    exc = caught.value
    assert exc.status == 412
    assert isinstance(exc, ValueError)
    assert isinstance(exc, aiohttp.ClientResponseError)


async def test_bulk_docs_without_docs_is_bad_request_400(
    couchdb: CouchDB, database: Database
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await couchdb._server._post(f"/{database.id}/_bulk_docs", data={"documents": []})
    exc = caught.value
    assert exc.status == 400
    assert isinstance(exc, ValueError)
    assert isinstance(exc, aiohttp.ClientResponseError)
    assert exc.reason


async def test_find_without_selector_is_bad_request_400(
    couchdb: CouchDB, database: Database
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await couchdb._server._post(f"/{database.id}/_find", data={"limit": 1})
    assert caught.value.status == 400


@pytest.mark.couchdb_only("pouchdb-server accepts a startkey that is not JSON (DIFF 5.20)")
async def test_query_parameter_that_is_not_json_is_bad_request_400(database: Database) -> None:
    with pytest.raises(BadRequestError) as caught:
        [doc_id async for doc_id in database.akeys(startkey="notjson")]
    assert caught.value.status == 400


async def test_status_outside_the_eight_is_still_typed_and_catchable(
    couchdb: CouchDB, database: Database, is_pouchdb: bool
) -> None:
    # "docs" not a list: CouchDB answers 400, pouchdb-server 500 (DIFF 5.9)
    with pytest.raises(aiohttp.ClientResponseError) as caught:
        await couchdb._server._post(f"/{database.id}/_bulk_docs", data={"docs": "nope"})
    exc = caught.value
    assert isinstance(exc, RemoteResponseError)
    if is_pouchdb:
        assert exc.status == 500
        assert not isinstance(exc, EIGHT)
        assert type(exc) is not RemoteResponseError
    else:
        assert exc.status == 400
        assert isinstance(exc, BadRequestError)


@pytest.mark.couchdb_only("pouchdb-server answers PATCH with 404 instead of 405 (DIFF 13.1)")
async def test_method_not_allowed_405_is_typed(couchdb: CouchDB, database: Database) -> None:
    with pytest.raises(aiohttp.ClientResponseError) as caught:
        await couchdb._server._request("PATCH", f"/{database.id}")
    exc = caught.value
    assert exc.status == 405
    assert isinstance(exc, RemoteResponseError)
    assert not isinstance(exc, EIGHT)
    assert type(exc) is not RemoteResponseError


async def test_wrong_password_is_unauthorized_401_and_never_shown(
    server_url: str, throwaway_user: tuple[str, str]
) -> None:
    name, password = throwaway_user
    wrong = f"{password}-wrong-secret"
    async with CouchDB(server_url, user=name, password=wrong) as client:
        assert not leaks(repr(client), wrong, name)
        assert not leaks(repr(client._server), wrong, name)
        with pytest.raises(UnauthorizedError) as caught:
            await client.check_credentials()
    exc = caught.value
    assert exc.status == 401
    assert isinstance(exc, PermissionError)
    assert isinstance(exc, aiohttp.ClientResponseError)
    shown = everything_shown(exc)
    assert not leaks(shown, wrong, name)
    assert not leaks(repr(exc.__cause__), wrong, name)


async def test_credentials_never_shown_in_errors_of_a_logged_in_client(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    async with CouchDB(server_url, user=admin_user, password=admin_password) as client:
        for text in (repr(client), str(client), repr(client._server), str(client._server)):
            assert not leaks(text, admin_password, admin_user)
        db = Database(client, database.id)
        errors: list[BaseException] = []
        for call in (
            lambda: db.get("missing"),
            lambda: client.create(database.id),
            lambda: client._server._get(f"/aiocouch_missing_{uuid.uuid4().hex}"),
            lambda: client._server._post(f"/{database.id}/_bulk_docs", data={"documents": []}),
        ):
            with pytest.raises(aiohttp.ClientResponseError) as caught:
                await call()
            errors.append(caught.value)
        missing = Database(client, f"aiocouch_missing_{uuid.uuid4().hex}")
        with pytest.raises(NotFoundError) as caught_feed:
            [event async for event in missing.changes(feed="continuous")]
        errors.append(caught_feed.value)
    for exc in errors:
        assert not leaks(everything_shown(exc), admin_password, admin_user), repr(exc)
