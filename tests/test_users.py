"""User accounts (aiocouch.users): create, fetch, change password and roles, delete.

Run on the test server (pouchdb-server keeps users in ``_users`` as CouchDB does, with
fewer PBKDF2 iterations: DIFF.md 12.2), with the shapes of the CouchDB 3.4.3 transcript
(section 12). A new password is checked by logging in with it; wrong passwords are only
ever tried for the user the test made, never for the admin (CouchDB locks an account for
5 minutes after 5 failed logins).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiocouch import (
    ConflictError,
    CouchDB,
    NotFoundError,
    RemoteResponseError,
    UnauthorizedError,
    Users,
)
from aiocouch.exception import InvalidResponseError
from testserver.exposed_text import exposed_text
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)

HASH_FIELDS = ("derived_key", "salt")


@pytest.fixture
async def user_names(couchdb: CouchDB) -> AsyncIterator[Callable[[], str]]:
    """Makes unique user names; those users are deleted after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"aiocouch_user_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield make
    for name in made:
        with contextlib.suppress(Exception):
            await couchdb.users.delete(name)


def new_password() -> str:
    return f"pw-{uuid.uuid4().hex}"


async def logs_in(server_url: str, name: str, password: str) -> bool:
    """Whether ``name`` can authenticate with ``password`` (GET /_session, basic)."""
    async with CouchDB(server_url, name, password) as client:
        try:
            await client.check_credentials()
        except UnauthorizedError:
            return False
    return True


async def test_a_created_user_can_log_in_and_is_fetched_without_password(
    couchdb: CouchDB, user_names: Callable[[], str], server_url: str
) -> None:
    name, password = user_names(), new_password()

    created = await couchdb.users.create(name, password, roles=["readers"], email="a@b.c")
    fetched = await couchdb.users.get(name)

    assert (created.name, created.roles) == (name, ["readers"])
    assert created.rev is not None
    assert (fetched.name, fetched.roles, fetched.rev) == (name, ["readers"], created.rev)
    assert fetched.data["type"] == "user"
    assert fetched.data["email"] == "a@b.c"
    assert "password" not in fetched.data
    assert all(field in fetched.data for field in HASH_FIELDS)  # transcript 12.2
    assert await logs_in(server_url, name, password)
    assert not await logs_in(server_url, name, password + "-wrong")


async def test_creating_an_existing_user_raises_conflict(
    couchdb: CouchDB, user_names: Callable[[], str]
) -> None:
    name = user_names()
    await couchdb.users.create(name, new_password())
    with pytest.raises(ConflictError):  # transcript 12.3
        await couchdb.users.create(name, new_password())


async def test_set_password_replaces_the_old_one(
    couchdb: CouchDB, user_names: Callable[[], str], server_url: str
) -> None:
    name, old, new = user_names(), new_password(), new_password()
    created = await couchdb.users.create(name, old, roles=["r"])
    before = await couchdb.users.get(name)

    changed = await couchdb.users.set_password(name, new)

    assert changed.rev != created.rev
    assert changed.roles == ["r"]
    assert "password" not in changed.data
    assert not any(field in changed.data for field in HASH_FIELDS)  # the old hash: gone
    assert await logs_in(server_url, name, new)
    assert not await logs_in(server_url, name, old)
    stored = await couchdb.users.get(name)
    assert stored.rev == changed.rev
    assert stored.data["derived_key"] != before.data["derived_key"]


async def test_set_roles_keeps_the_password(
    couchdb: CouchDB, user_names: Callable[[], str], server_url: str
) -> None:
    name, password = user_names(), new_password()
    await couchdb.users.create(name, password, roles=["a"])

    changed = await couchdb.users.set_roles(name, ["b", "c"])

    assert changed.roles == ["b", "c"]
    assert (await couchdb.users.get(name)).roles == ["b", "c"]
    assert await logs_in(server_url, name, password)


async def test_a_deleted_user_is_gone_and_cannot_log_in(
    couchdb: CouchDB, user_names: Callable[[], str], server_url: str
) -> None:
    name, password = user_names(), new_password()
    await couchdb.users.create(name, password)

    await couchdb.users.delete(name)

    with pytest.raises(NotFoundError):
        await couchdb.users.get(name)
    with pytest.raises(NotFoundError):
        await couchdb.users.delete(name)
    with pytest.raises(NotFoundError):
        await couchdb.users.set_password(name, new_password())
    assert not await logs_in(server_url, name, password)


@pytest.mark.parametrize(
    "call",
    [
        lambda users: users.create("", "pw"),
        lambda users: users.create("_system", "pw"),
        lambda users: users.create("a\nb", "pw"),
        lambda users: users.create(42, "pw"),
        lambda users: users.create("name", ""),
        lambda users: users.create("name", "pw\r\n"),
        lambda users: users.create("name", b"pw"),
        lambda users: users.create("name", "pw", roles="admin"),
        lambda users: users.create("name", "pw", roles=[""]),
        lambda users: users.create("name", "pw", roles=["a\x00"]),
        lambda users: users.create("name", "pw", type="admin"),
        lambda users: users.create("name", "pw", _id="org.couchdb.user:other"),
        lambda users: users.get(""),
        lambda users: users.set_password("name", ""),
        lambda users: users.set_roles("name", [1]),
        lambda users: users.delete("_name"),
    ],
)
async def test_invalid_input_is_refused_before_any_request(
    couchdb: CouchDB,
    request_counter: RequestCounter,
    call: Callable[[Users], Awaitable[Any]],
) -> None:
    request_counter.reset()
    with pytest.raises((ValueError, TypeError)):
        await call(couchdb.users)
    assert request_counter.count == 0


# --- passwords never show ---


async def test_reprs_and_logs_never_show_passwords(
    caplog: pytest.LogCaptureFixture, couchdb: CouchDB, user_names: Callable[[], str]
) -> None:
    caplog.set_level(logging.DEBUG)
    name, first, second = user_names(), new_password(), new_password()
    created = await couchdb.users.create(name, first)
    changed = await couchdb.users.set_password(name, second)
    fetched = await couchdb.users.get(name)
    with pytest.raises(ConflictError) as conflict:
        await couchdb.users.create(name, first)

    shown = exposed_text(created, changed, fetched, couchdb.users, conflict.value)
    shown += "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for secret in (first, second, fetched.data["derived_key"], fetched.data["salt"]):
        assert secret not in shown


@contextlib.asynccontextmanager
async def scripted(
    answer: Callable[[ReceivedRequest], bytes],
) -> AsyncIterator[tuple[ScriptedServer, CouchDB]]:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(answer(request))

    async with ScriptedServer(handler) as server, CouchDB(server.url, "admin", "x") as client:
        yield server, client


async def test_a_server_echoing_the_password_in_its_error_never_shows_it() -> None:
    password = new_password()

    def echo(request: ReceivedRequest) -> bytes:
        sent = json.loads(request.body)
        reason = f"doc.password {sent['password']} is not allowed"
        return http_response(403, json.dumps({"error": "forbidden", "reason": reason}).encode())

    async with scripted(echo) as (server, client):
        with pytest.raises(RemoteResponseError) as raised:
            await client.users.create("someone", password)
    assert json.loads(server.requests[0].body)["password"] == password
    assert server.requests[0].target == "/_users/org.couchdb.user%3Asomeone"  # 12.1
    assert password[:8] not in exposed_text(raised.value)


async def test_an_invalid_answer_echoing_the_password_never_shows_it() -> None:
    password = new_password()
    user_doc = {"_id": "org.couchdb.user:someone", "_rev": "1-a", "name": "someone"}

    def answer(request: ReceivedRequest) -> bytes:
        if request.method == "GET":
            return http_response(200, json.dumps(user_doc).encode())
        echoed = request.body[request.body.index(b'"password"') :]
        return http_response(201, b"<p>" + echoed, content_type="text/html")

    async with scripted(answer) as (_, client):
        with pytest.raises(InvalidResponseError) as raised:
            await client.users.set_password("someone", password)
    assert password[:8] not in exposed_text(raised.value)
