"""Authentication (aiocouch.auth): cookie session, JWT, proxy, and that no secret leaks.

Behaviour is tested against the test server where it supports it (a cookie session:
``POST /_session``, the ``AuthSession`` cookie, a configurable session timeout), and at
the protocol level against a :class:`ScriptedServer` that plays CouchDB's part exactly as
the CouchDB 3.4.3 transcript shows it (section 2): a login answers ``Set-Cookie:
AuthSession=...; Version=1; Expires=...; Max-Age=600; Path=/; HttpOnly``, and a request
with an expired cookie is anonymous, answered 401 where anonymous may not go (2.12).

No test logs in with the admin's name and a wrong password: CouchDB locks an account for
5 minutes after 5 failed logins. Wrong passwords go to a throwaway user of ``_users``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp
import pytest

import aiocouch
import aiocouch.auth
from aiocouch import (
    CouchDB,
    Database,
    Document,
    JWTAuth,
    NotFoundError,
    ProxyAuth,
    SessionAuth,
    UnauthorizedError,
)
from aiocouch.auth import Authentication
from aiocouch.cluster import Quorum
from aiocouch.exception import InvalidResponseError
from testserver.exposed_text import exposed_text
from testserver.request_counter import RequestCounter
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)

LEAN, AIOHTTP = "lean", "aiohttp"
NOT_PERSISTED = {"X-Couch-Persist": "false"}
NOT_ADMIN = b'{"error":"unauthorized","reason":"You are not a server admin."}'


@asynccontextmanager
async def scripted_client(
    handler: Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]],
    auth: Authentication,
    **options: Any,
) -> AsyncIterator[tuple[ScriptedServer, CouchDB]]:
    """A ScriptedServer answering with ``handler``, and a client of it using ``auth``."""
    async with ScriptedServer(handler) as server, CouchDB(server.url, auth=auth, **options) as c:
        yield server, c


def transport_options(transport: str) -> dict[str, Any]:
    """Options that pick the transport: ``connector=`` selects aiohttp (call in the loop)."""
    return {"connector": aiohttp.TCPConnector()} if transport == AIOHTTP else {}


def sent_cookies(counter: RequestCounter) -> list[str | None]:
    """The ``AuthSession`` value each recorded request carried (None for none)."""
    cookies: list[str | None] = []
    for _, _, headers in counter.headers:
        cookie = headers.get("Cookie")
        cookies.append(cookie.split("=", 1)[1] if cookie else None)
    return cookies


def logins(counter: RequestCounter) -> int:
    return counter.requests.count(("POST", "/_session"))


def assert_hidden(secrets: list[str], text: str) -> None:
    for secret in secrets:
        assert secret, "an empty secret would match anything"
        assert secret not in text


def basic_secrets(user: str, password: str) -> list[str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [password, f"{user}:{password}", token]


class FakeCouchSessions:
    """A ScriptedServer handler that plays CouchDB's cookie sessions (transcript 2.3, 2.12).

    Each login issues a new cookie (``s1``, ``s2``...) with ``max_age`` (or no lifetime);
    every other request is answered 200 with ``body`` if it carries a cookie that is still
    valid, else 401. :meth:`expire` ends all issued sessions, as the server's clock would.
    """

    def __init__(
        self, *, max_age: int | None = 600, body: bytes = b'{"ok":true}', accept: bool = True
    ) -> None:
        self.max_age = max_age
        self.body = body
        self.accept = accept
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.refresh_with: str | None = None

    def expire(self) -> None:
        self.valid.clear()

    def set_cookie(self, value: str) -> str:
        lifetime = "" if self.max_age is None else f"; Max-Age={self.max_age}"
        return f"AuthSession={value}; Version=1{lifetime}; Path=/; HttpOnly"

    async def __call__(self, request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if request.method == "POST" and request.target == "/_session":
            body = json.loads(request.body)
            cookie = f"s{len(self.issued) + 1}-{body['name']}"
            self.issued.append(cookie)
            self.valid.add(cookie)
            answer = json.dumps({"ok": True, "name": body["name"], "roles": []}).encode()
            headers = [("Set-Cookie", self.set_cookie(cookie))]
            await connection.send(http_response(200, answer, headers=headers))
            return
        cookie = (request.header("Cookie") or "").partition("AuthSession=")[2]
        if cookie in self.valid and self.accept:
            headers = []
            if self.refresh_with is not None:
                self.valid.add(self.refresh_with)
                headers.append(("Set-Cookie", self.set_cookie(self.refresh_with)))
            await connection.send(http_response(200, self.body, headers=headers))
        else:
            await connection.send(http_response(401, NOT_ADMIN))


# --- the public API ---


def test_strategies_are_exported_from_the_package() -> None:
    assert aiocouch.SessionAuth is aiocouch.auth.SessionAuth
    assert aiocouch.JWTAuth is aiocouch.auth.JWTAuth
    assert aiocouch.ProxyAuth is aiocouch.auth.ProxyAuth
    for name in ("SessionAuth", "JWTAuth", "ProxyAuth"):
        assert name in aiocouch.__all__
        assert issubclass(getattr(aiocouch, name), aiocouch.auth.Authentication)


def test_auth_takes_only_basic_auth_or_a_strategy() -> None:
    with pytest.raises(TypeError, match=r"auth= takes an aiohttp\.BasicAuth"):
        CouchDB("http://127.0.0.1:5984", auth=("user", "password"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("http://127.0.0.1:5984", {"user": "u", "password": "p"}),
        ("http://127.0.0.1:5984", {"cookie": "c00k1e"}),
        ("http://u:p@127.0.0.1:5984", {}),
    ],
    ids=["user-password", "cookie", "url-credentials"],
)
def test_a_strategy_with_other_credentials_is_refused(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Give the credentials once"):
        CouchDB(url, auth=SessionAuth("alice", "secret"), **options)


def test_session_auth_refuses_what_cannot_log_in() -> None:
    with pytest.raises(ValueError, match="non-empty password"):
        SessionAuth("alice", "")
    with pytest.raises(ValueError, match="control characters"):
        SessionAuth("alice\r\nX-Injected: 1", "secret")
    with pytest.raises(TypeError, match="must be a str"):
        SessionAuth(None, "secret")  # type: ignore[arg-type]


def test_jwt_auth_refuses_a_token_that_cannot_travel_in_a_header_without_showing_it() -> None:
    for token in ("", "abc def", "abc\r\nX-Injected: 1", "t\u00f6ken"):
        with pytest.raises(ValueError, match="visible ASCII") as info:
            JWTAuth(token)
        if token:
            assert token not in str(info.value)
    with pytest.raises(TypeError, match="a callable returning one"):
        JWTAuth(42)  # type: ignore[arg-type]


def test_proxy_auth_refuses_what_couchdb_would_read_differently() -> None:
    with pytest.raises(ValueError, match="comma"):
        ProxyAuth("alice", ["readers,writers"])
    with pytest.raises(ValueError, match="control characters"):
        ProxyAuth("alice", ["readers\n"])
    with pytest.raises(ValueError, match="surrounding whitespace"):
        ProxyAuth(" alice", [])
    with pytest.raises(TypeError, match="list of roles"):
        ProxyAuth("alice", "readers")
    with pytest.raises(ValueError, match="not both"):
        ProxyAuth("alice", token="t", secret="s")


async def test_one_session_auth_cannot_serve_two_servers() -> None:
    auth = SessionAuth("alice", "secret")
    async with CouchDB("http://127.0.0.1:5984", auth=auth):
        pass
    async with CouchDB("http://127.0.0.1:5984/", auth=auth):
        pass  # the same server: they share the session
    with pytest.raises(ValueError, match=r"give the client of http://127\.0\.0\.1:5985 its own"):
        CouchDB("http://127.0.0.1:5985", auth=auth)


@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
async def test_aiohttp_basic_auth_works_as_in_4_0_1(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    counter = RequestCounter()
    auth = aiohttp.BasicAuth(admin_user, admin_password)
    async with CouchDB(server_url, auth=auth, trace_configs=counter.trace_configs) as client:
        assert "_users" in await client.keys()
    [(_, _, headers)] = counter.headers
    assert headers["Authorization"] == "Basic " + basic_secrets(admin_user, admin_password)[2]


# --- a cookie session on the test server ---


@pytest.fixture
async def guarded_database(database: Database) -> Database:
    """The test's database, where anonymous requests get 401 on both servers (DIFF 3.15)."""
    security = await database.security()
    security.add_member("aiocouch_auth_nobody")
    await security.save()
    return database


@pytest.fixture
async def session_timeout(
    couchdb: CouchDB, is_pouchdb: bool
) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """Sets the server's session timeout (seconds) for this test; restored afterwards.

    CouchDB: ``[chttpd_auth] timeout`` through ``/_node/_local/_config`` (not persisted,
    transcript 14.15); pouchdb-server has only the 1.x path, ``/_config/couch_httpd_auth``
    (DIFF 14.11, 14.12).
    """
    server = couchdb._server
    if is_pouchdb:
        path = "/_config/couch_httpd_auth/timeout"
    else:
        path = "/_node/_local/_config/chttpd_auth/timeout"
    try:
        _, before = await server._request("GET", path)
    except NotFoundError:
        before = None

    async def set_timeout(seconds: int) -> None:
        await server._request("PUT", path, data=str(seconds), headers=NOT_PERSISTED)

    yield set_timeout
    if before is None:
        await server._request("DELETE", path, headers=NOT_PERSISTED)
    else:
        await server._request("PUT", path, data=before, headers=NOT_PERSISTED)


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
async def test_session_logs_in_once_on_first_use_and_then_sends_only_the_cookie(
    transport: str, server_url: str, admin_user: str, admin_password: str
) -> None:
    counter = RequestCounter()
    client = CouchDB(
        server_url,
        auth=SessionAuth(admin_user, admin_password),
        trace_configs=counter.trace_configs,
        **transport_options(transport),
    )
    async with client:
        assert counter.count == 0  # constructing it sends nothing
        _, session = await client._server._get("/_session")
        await client.keys()

    assert session["userCtx"]["name"] == admin_user
    assert session["info"]["authenticated"] == "cookie"
    assert counter.requests == [("POST", "/_session"), ("GET", "/_session"), ("GET", "/_all_dbs")]
    assert "Cookie" not in counter.headers[0][2]
    for _, _, headers in counter.headers:
        assert "Authorization" not in headers
    # Every request after the login carries a session cookie (pouchdb-server refreshes it
    # in each answer, so a later one may differ once a second has passed).
    assert all(sent_cookies(counter)[1:])


async def test_concurrent_first_requests_wait_for_one_login(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    counter = RequestCounter()
    auth = SessionAuth(admin_user, admin_password)
    async with CouchDB(server_url, auth=auth, trace_configs=counter.trace_configs) as client:
        results = await asyncio.gather(*(client.keys() for _ in range(50)))

    assert all("_users" in names for names in results)
    assert logins(counter) == 1
    assert counter.count == 51


async def test_refused_login_names_the_user_never_the_password_and_is_not_repeated(
    server_url: str, throwaway_user: tuple[str, str]
) -> None:
    name, password = throwaway_user
    wrong = f"wrong-{uuid.uuid4().hex}"
    counter = RequestCounter()
    errors: list[UnauthorizedError] = []
    auth = SessionAuth(name, wrong)
    async with CouchDB(server_url, auth=auth, trace_configs=counter.trace_configs) as client:
        for _ in range(3):
            with pytest.raises(UnauthorizedError) as info:
                await client.check_credentials()
            errors.append(info.value)

    # One failed login, not three: five would lock the account on CouchDB.
    assert counter.requests == [("POST", "/_session")]
    for error in errors:
        assert isinstance(error, PermissionError)
        assert error.status == 401
        assert f"Login as '{name}' refused" in str(error)
        assert_hidden([*basic_secrets(name, wrong), password], exposed_text(error))


async def test_login_of_an_unknown_user_is_refused(server_url: str) -> None:
    name = f"aiocouch_nobody_{uuid.uuid4().hex[:12]}"
    async with CouchDB(server_url, auth=SessionAuth(name, "pw")) as client:
        with pytest.raises(UnauthorizedError, match=f"Login as '{name}' refused"):
            await client.keys()


async def test_a_user_session_reaches_what_the_user_may(
    server_url: str, throwaway_user: tuple[str, str], guarded_database: Database
) -> None:
    name, password = throwaway_user
    security = await guarded_database.security()
    security.add_member(name)
    await security.save()

    async with CouchDB(server_url, auth=SessionAuth(name, password)) as client:
        _, session = await client._server._get("/_session")
        document = await Database(client, guarded_database.id).create("mine", data={"a": 1})
        await document.save()

    assert session["userCtx"]["name"] == name
    assert (await guarded_database.get("mine"))["a"] == 1


async def test_session_that_expires_mid_run_is_renewed_without_the_caller_noticing(
    server_url: str,
    admin_user: str,
    admin_password: str,
    guarded_database: Database,
    session_timeout: Callable[[int], Awaitable[None]],
    quorum: Quorum | None,
) -> None:
    await session_timeout(3)
    counter = RequestCounter()
    auth = SessionAuth(admin_user, admin_password)
    options = {"trace_configs": counter.trace_configs, "quorum": quorum}
    async with CouchDB(server_url, auth=auth, **options) as client:
        db = Database(client, guarded_database.id)
        for number in range(3):
            await (await db.create(f"before-{number}", data={"n": number})).save()
        await asyncio.sleep(4)  # longer than the session lasts: the cookie has expired
        counter.reset()
        for number in range(3):
            await (await db.create(f"after-{number}", data={"n": number})).save()

    # One login on pouchdb-server (after a 401); on CouchDB more if the run outlasts
    # half of the new session (renewed ahead of time, Max-Age=3).
    assert logins(counter) >= 1
    ids = [key async for key in guarded_database.akeys()]
    assert ids == [*(f"after-{n}" for n in range(3)), *(f"before-{n}" for n in range(3))]
    for key in ids:
        assert (await guarded_database.get(key)).rev.startswith("1-")  # written once


async def test_fifty_concurrent_calls_after_expiry_log_in_once(
    server_url: str,
    admin_user: str,
    admin_password: str,
    guarded_database: Database,
    session_timeout: Callable[[int], Awaitable[None]],
) -> None:
    await (await guarded_database.create("doc", data={"n": 1})).save()
    await session_timeout(3)
    counter = RequestCounter()
    auth = SessionAuth(admin_user, admin_password)
    async with CouchDB(server_url, auth=auth, trace_configs=counter.trace_configs) as client:
        db = Database(client, guarded_database.id)
        await db.info()
        await asyncio.sleep(4)  # the session has expired
        counter.reset()
        documents = await asyncio.gather(*(db.get("doc") for _ in range(50)))

    assert [document["n"] for document in documents] == [1] * 50
    assert logins(counter) == 1


async def test_refreshed_cookie_from_the_server_replaces_the_old_one(
    server_url: str,
    admin_user: str,
    admin_password: str,
    guarded_database: Database,
    session_timeout: Callable[[int], Awaitable[None]],
) -> None:
    # CouchDB refreshes a cookie once a tenth of the timeout has passed (in whole
    # seconds); pouchdb-server on every answer once its timestamp (seconds) changed.
    await session_timeout(10)
    counter = RequestCounter()
    auth = SessionAuth(admin_user, admin_password)
    async with CouchDB(server_url, auth=auth, trace_configs=counter.trace_configs) as client:
        db = Database(client, guarded_database.id)
        await db.info()
        await asyncio.sleep(2.2)
        await db.info()  # answered with a refreshed cookie
        await db.info()

    # One login, yet the last request carries another cookie than the first: the one the
    # server sent back (which answer first carried it depends on where the seconds tick).
    assert logins(counter) == 1
    _, first, _, after_refresh = sent_cookies(counter)
    assert first is not None
    assert after_refresh is not None
    assert after_refresh != first


# --- a cookie session, protocol level (ScriptedServer playing CouchDB) ---


async def test_401_renews_the_session_and_repeats_the_request_once() -> None:
    sessions = FakeCouchSessions(body=b'{"ok":true,"id":"doc","rev":"1-abc"}')
    async with scripted_client(sessions, SessionAuth("alice", "secret")) as (server, client):
        document = Document(Database(client, "db"), "doc", data={"n": 1})
        await document.save()
        sessions.expire()  # as the server's clock would
        document["n"] = 2
        await document.save()

    puts = [request for request in server.requests if request.method == "PUT"]
    assert [request.header("Cookie") for request in puts] == [
        "AuthSession=s1-alice",
        "AuthSession=s1-alice",  # refused with 401: not applied
        "AuthSession=s2-alice",
    ]
    assert puts[1].body == puts[2].body  # the same request, sent once more
    assert server.count("POST", "/_session") == 2


async def test_a_401_after_a_fresh_login_is_raised_never_looping() -> None:
    sessions = FakeCouchSessions(accept=False)  # the user may not do this at all
    async with scripted_client(sessions, SessionAuth("alice", "secret")) as (server, client):
        with pytest.raises(UnauthorizedError, match="You are not a server admin"):
            await client.keys()

    assert [(r.method, r.target) for r in server.requests] == [
        ("POST", "/_session"),
        ("GET", "/_all_dbs"),
        ("POST", "/_session"),
        ("GET", "/_all_dbs"),
    ]


async def test_concurrent_401s_wait_for_one_login() -> None:
    sessions = FakeCouchSessions(body=b"[]")
    async with scripted_client(sessions, SessionAuth("alice", "secret")) as (server, client):
        await client.keys()
        sessions.expire()
        results = await asyncio.gather(*(client.keys() for _ in range(50)))

    assert results == [[]] * 50
    assert server.count("POST", "/_session") == 2
    assert server.count("GET", "/_all_dbs") == 1 + 50 + 50


async def test_session_is_renewed_before_its_max_age_ends() -> None:
    # Max-Age=2: renewed once less than 1 s (half of it, under the 2 s margin) is left.
    sessions = FakeCouchSessions(max_age=2, body=b"[]")
    async with scripted_client(sessions, SessionAuth("alice", "secret")) as (server, client):
        await client.keys()
        await client.keys()
        await asyncio.sleep(1.3)
        await client.keys()

    assert [(r.method, r.header("Cookie")) for r in server.requests] == [
        ("POST", None),
        ("GET", "AuthSession=s1-alice"),
        ("GET", "AuthSession=s1-alice"),
        ("POST", None),  # before the cookie expired, not after a 401
        ("GET", "AuthSession=s2-alice"),
    ]


async def test_session_without_a_lifetime_is_kept_until_a_401() -> None:
    sessions = FakeCouchSessions(max_age=None, body=b"[]")
    async with scripted_client(sessions, SessionAuth("alice", "secret")) as (server, client):
        await client.keys()
        await asyncio.sleep(1.3)
        await client.keys()

    assert server.count("POST", "/_session") == 1


async def test_cookie_refreshed_in_an_error_answer_is_taken() -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        if request.method == "POST":
            cookie = "AuthSession=first; Version=1; Max-Age=600; Path=/; HttpOnly"
            await connection.send(
                http_response(200, b'{"ok":true}', headers=[("Set-Cookie", cookie)])
            )
        elif request.target == "/db/missing":
            cookie = "AuthSession=refreshed; Version=1; Max-Age=600; Path=/; HttpOnly"
            body = b'{"error":"not_found","reason":"missing"}'
            await connection.send(http_response(404, body, headers=[("Set-Cookie", cookie)]))
        else:
            await connection.send(http_response(200, b'{"db_name":"db"}'))

    async with scripted_client(handler, SessionAuth("alice", "secret")) as (server, client):
        db = Database(client, "db")
        with pytest.raises(NotFoundError) as info:
            await db.get("missing")
        await db.info()

    assert [r.header("Cookie") for r in server.requests] == [
        None,
        "AuthSession=first",
        "AuthSession=refreshed",
    ]
    assert "Set-Cookie" not in info.value.headers
    assert_hidden(["first", "refreshed"], exposed_text(info.value))


async def test_streamed_call_renews_the_session_on_a_401_before_any_row() -> None:
    rows = b'{"total_rows":1,"offset":0,"rows":[{"id":"a","key":"a","value":{"rev":"1-x"}}]}'
    sessions = FakeCouchSessions(body=rows)
    async with scripted_client(sessions, SessionAuth("alice", "secret")) as (server, client):
        db = Database(client, "db")
        assert [key async for key in db.akeys()] == ["a"]
        sessions.expire()
        assert [key async for key in db.akeys()] == ["a"]

    assert server.count("POST", "/_session") == 2
    assert server.count("GET") == 3


async def test_login_answer_without_a_session_cookie_raises() -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, b'{"ok":true,"name":"alice","roles":[]}'))

    async with scripted_client(handler, SessionAuth("alice", "secret")) as (server, client):
        with pytest.raises(InvalidResponseError, match="sent no AuthSession cookie"):
            await client.keys()

    assert [(r.method, r.target) for r in server.requests] == [("POST", "/_session")]


# --- JWT ---


class BearerServer:
    """Answers 200 to a request whose bearer token is in ``valid``, else 401."""

    def __init__(self, *valid: str) -> None:
        self.valid = set(valid)

    async def __call__(self, request: ReceivedRequest, connection: ScriptedConnection) -> None:
        token = (request.header("Authorization") or "").removeprefix("Bearer ")
        if token in self.valid:
            await connection.send(http_response(200, b"[]"))
        else:
            body = b'{"error":"unauthorized","reason":"exp not in future"}'
            await connection.send(http_response(401, body))


class TokenIssuer:
    """An async token provider: ``t1``, ``t2``... and how often it was called."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        return f"t{self.calls}"


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
async def test_fixed_jwt_is_sent_as_bearer_and_a_401_is_raised_as_is(transport: str) -> None:
    bearer = BearerServer("fixed.jwt.token")
    async with ScriptedServer(bearer) as server:
        auth = JWTAuth("fixed.jwt.token")
        async with CouchDB(server.url, auth=auth, **transport_options(transport)) as client:
            await client.keys()
            bearer.valid.clear()
            with pytest.raises(UnauthorizedError, match="exp not in future"):
                await client.keys()

    assert [r.header("Authorization") for r in server.requests] == ["Bearer fixed.jwt.token"] * 2


async def test_jwt_provider_is_asked_again_on_a_401_and_the_request_repeated_once() -> None:
    issuer = TokenIssuer()
    bearer = BearerServer("t1")
    async with scripted_client(bearer, JWTAuth(issuer)) as (server, client):
        await client.keys()
        bearer.valid = {"t2"}  # t1 expired
        await client.keys()
        await client.keys()

    assert issuer.calls == 2
    assert [r.header("Authorization") for r in server.requests] == [
        "Bearer t1",
        "Bearer t1",
        "Bearer t2",
        "Bearer t2",
    ]


async def test_jwt_provider_is_asked_once_for_fifty_concurrent_401s() -> None:
    issuer = TokenIssuer()
    bearer = BearerServer("t1")
    async with scripted_client(bearer, JWTAuth(issuer)) as (server, client):
        await asyncio.gather(*(client.keys() for _ in range(50)))
        bearer.valid = {"t2"}
        await asyncio.gather(*(client.keys() for _ in range(50)))

    assert issuer.calls == 2
    assert server.count("GET") == 50 + 50 + 50


async def test_jwt_refused_again_after_a_new_token_is_raised_never_looping() -> None:
    issuer = TokenIssuer()
    async with scripted_client(BearerServer(), JWTAuth(issuer)) as (server, client):
        with pytest.raises(UnauthorizedError):
            await client.keys()

    assert issuer.calls == 2
    assert server.count("GET") == 2


async def test_jwt_provider_may_be_a_plain_function() -> None:
    async with scripted_client(BearerServer("plain"), JWTAuth(lambda: "plain")) as (_, client):
        assert await client.keys() == []


async def test_jwt_provider_returning_an_unusable_token_raises_before_sending() -> None:
    async def broken() -> str:
        return "two words"

    async with scripted_client(BearerServer(), JWTAuth(broken)) as (server, client):
        with pytest.raises(ValueError, match="visible ASCII"):
            await client.keys()

    assert server.requests == []


def hs256_jwt(key: bytes, claims: Mapping[str, Any]) -> str:
    """A JWT signed with HMAC-SHA256 (what ``[jwt_keys] hmac:_default`` verifies)."""

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = encode(json.dumps(dict(claims)).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{encode(signature)}"


@pytest.fixture
async def couchdb_config(couchdb: CouchDB) -> AsyncIterator[Callable[[str, str], Awaitable[None]]]:
    """Sets ``[section] key = value`` on the server (not persisted), each restored after."""
    server = couchdb._server
    changed: list[tuple[str, Any]] = []

    async def set_value(name: str, value: str) -> None:
        path = f"/_node/_local/_config/{name}"
        try:
            _, before = await server._request("GET", path)
        except NotFoundError:
            before = None
        changed.append((path, before))
        await server._request("PUT", path, data=value, headers=NOT_PERSISTED)

    yield set_value
    for path, before in reversed(changed):
        if before is None:
            await server._request("DELETE", path, headers=NOT_PERSISTED)
        else:
            await server._request("PUT", path, data=before, headers=NOT_PERSISTED)


async def enable_handler(
    couchdb: CouchDB, set_config: Callable[[str, str], Awaitable[None]], handler: str
) -> None:
    """Puts ``{chttpd_auth, <handler>_authentication_handler}`` among the server's handlers."""
    handlers = ", ".join(
        f"{{chttpd_auth, {name}_authentication_handler}}" for name in ("cookie", handler, "default")
    )
    await set_config("chttpd/authentication_handlers", handlers)
    _, session = await couchdb._server._get("/_session")
    if handler not in session["info"]["authentication_handlers"]:
        pytest.skip(
            f"this CouchDB applies [chttpd] authentication_handlers only at start-up; "
            f"start it with {{chttpd_auth, {handler}_authentication_handler}} to run this test"
        )


@pytest.mark.couchdb_only(
    "pouchdb-server ignores bearer tokens (transcript 2.16, 2.17: same answer as anonymous)"
)
async def test_jwt_provider_renews_an_expired_token_on_couchdb(
    server_url: str,
    couchdb: CouchDB,
    couchdb_config: Callable[[str, str], Awaitable[None]],
) -> None:
    key = uuid.uuid4().bytes
    await couchdb_config("jwt_keys/hmac:_default", base64.b64encode(key).decode())
    await enable_handler(couchdb, couchdb_config, "jwt")
    name = f"aiocouch_jwt_{uuid.uuid4().hex[:12]}"
    now = int(time.time())
    expired = {"sub": name, "iat": now - 120, "nbf": now - 120, "exp": now - 60}
    fresh = {"sub": name, "iat": now, "nbf": now - 5, "exp": now + 600}
    tokens = iter([hs256_jwt(key, expired), hs256_jwt(key, fresh)])
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return next(tokens)

    async with CouchDB(server_url, auth=JWTAuth(provider)) as client:
        _, session = await client._server._get("/_session")

    assert calls == 2
    assert session["userCtx"]["name"] == name
    assert session["info"]["authenticated"] == "jwt"


# --- proxy authentication ---


async def test_proxy_headers_carry_the_user_roles_and_the_hmac_of_the_secret() -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, b"[]"))

    async with ScriptedServer(handler) as server:
        auth = ProxyAuth("alice", ["readers", "writers"], secret="proxy-secret-0b9e")
        async with CouchDB(server.url, auth=auth) as client:
            await client.keys()
        async with CouchDB(server.url, auth=ProxyAuth("Zo\u00eb", secret="proxy-secret-0b9e")) as c:
            await c.keys()
        async with CouchDB(server.url, auth=ProxyAuth("bob", token="given-token")) as client:
            await client.keys()

    alice, zoe, bob = server.requests
    assert alice.header("X-Auth-CouchDB-UserName") == "alice"
    assert alice.header("X-Auth-CouchDB-Roles") == "readers,writers"
    # printf alice | openssl dgst -sha1 -hmac proxy-secret-0b9e
    assert alice.header("X-Auth-CouchDB-Token") == "5c68c5e7a12743f6b1bc878475f3bf854c80ab1c"
    # The HMAC of the UTF-8 bytes, as they travel (CouchDB hashes the header's bytes).
    assert zoe.header("X-Auth-CouchDB-UserName") == "Zo\u00eb".encode().decode("latin-1")
    assert zoe.header("X-Auth-CouchDB-Token") == "9b81a39732fa10db319b6cce1dd3ef2aafc5914c"
    assert zoe.header("X-Auth-CouchDB-Roles") is None
    assert bob.header("X-Auth-CouchDB-Token") == "given-token"
    for request in server.requests:
        assert request.header("Authorization") is None
        assert request.header("Cookie") is None


@pytest.mark.couchdb_only(
    "pouchdb-server has no proxy authentication (its handlers are cookie and default, "
    "transcript 2.1)"
)
async def test_proxy_authentication_with_the_server_secret_on_couchdb(
    server_url: str,
    couchdb: CouchDB,
    couchdb_config: Callable[[str, str], Awaitable[None]],
) -> None:
    server = couchdb._server
    secret = None
    for section in ("chttpd_auth", "couch_httpd_auth"):
        with suppress(NotFoundError):
            _, secret = await server._get(f"/_node/_local/_config/{section}/secret")
            break
    if not secret:
        pytest.skip("the server has no [chttpd_auth] secret yet (it is set at the first login)")
    await couchdb_config("chttpd_auth/proxy_use_secret", "true")
    await enable_handler(couchdb, couchdb_config, "proxy")
    name = f"aiocouch_proxy_{uuid.uuid4().hex[:12]}"

    async with CouchDB(server_url, auth=ProxyAuth(name, ["readers"], secret=secret)) as client:
        _, session = await client._server._get("/_session")
    async with CouchDB(server_url, auth=ProxyAuth(name, ["readers"], secret="wrong")) as client:
        _, refused = await client._server._get("/_session")

    assert session["userCtx"] == {"name": name, "roles": ["readers"]}
    assert session["info"]["authenticated"] == "proxy"
    assert refused["userCtx"]["name"] is None  # a wrong token is anonymous, not an error


# --- no secret in a repr, a log record or an exception ---

SECRET = f"secret-{uuid.uuid4().hex}"
PROXY_SECRET = f"proxy-{uuid.uuid4().hex}"


def strategies() -> dict[str, Authentication]:
    async def provider() -> str:
        return f"provided-{SECRET}"

    return {
        "session": SessionAuth("alice", SECRET),
        "jwt": JWTAuth(f"jwt-{SECRET}"),
        "jwt-provider": JWTAuth(provider),
        "proxy-token": ProxyAuth("alice", ["readers"], token=f"token-{SECRET}"),
        "proxy-secret": ProxyAuth("alice", ["readers"], secret=PROXY_SECRET),
    }


def secrets_of(auth: Authentication, server: ScriptedServer | None = None) -> list[str]:
    """What must never show: the secrets, and each credential header value sent."""
    found = [SECRET, PROXY_SECRET]
    for request in server.requests if server else ():
        for name in ("Authorization", "Cookie", "X-Auth-CouchDB-Token"):
            value = request.header(name)
            if value:
                found += [value, value.rpartition(" ")[2].rpartition("=")[2]]
    return found


async def answer_404_with_a_fresh_cookie(
    request: ReceivedRequest, connection: ScriptedConnection
) -> None:
    """Plays CouchDB: logins succeed; every answer refreshes the cookie (as after 10%)."""
    cookie = ("Set-Cookie", f"AuthSession=refreshed-{SECRET}; Version=1; Max-Age=600; Path=/")
    if request.method == "POST":
        await connection.send(http_response(200, b'{"ok":true}', headers=[cookie]))
    elif request.target in ("/db/moved", "/db/loop"):
        target = "/db/missing" if request.target == "/db/moved" else "/db/loop"
        headers = [("Location", target), cookie]
        await connection.send(http_response(302, b"", headers=headers, content_type=None))
    else:
        body = b'{"error":"not_found","reason":"missing"}'
        await connection.send(http_response(404, body, headers=[cookie]))


@pytest.mark.parametrize("kind", list(strategies()))
async def test_reprs_never_show_credentials(kind: str) -> None:
    auth = strategies()[kind]
    async with scripted_client(answer_404_with_a_fresh_cookie, auth) as (server, client):
        db = Database(client, "db")
        with suppress(NotFoundError):
            await db.get("missing")
        document = Document(db, "doc")
        objects: list[object] = [
            auth,
            client,
            client._server,
            client._server._http,
            client._server._transport,
            db,
            document,
        ]
        shown = exposed_text(*objects)
    assert server.requests  # the credentials were sent, so there was something to leak
    assert_hidden(secrets_of(auth, server), shown)
    assert repr(auth).startswith(type(auth).__name__ + "(")


async def test_log_records_never_show_credentials(
    caplog: pytest.LogCaptureFixture, server_url: str, throwaway_user: tuple[str, str]
) -> None:
    name, password = throwaway_user
    counter = RequestCounter()
    caplog.set_level(logging.DEBUG)
    async with CouchDB(
        server_url, auth=SessionAuth(name, password), trace_configs=counter.trace_configs
    ) as client:
        await client.check_credentials()
    async with CouchDB(server_url, auth=SessionAuth(name, f"wrong-{SECRET}")) as client:
        with pytest.raises(UnauthorizedError):
            await client.check_credentials()
    for kind, auth in strategies().items():
        async with scripted_client(answer_404_with_a_fresh_cookie, auth) as (server, client):
            with suppress(NotFoundError):
                await Database(client, "db").get("missing")
        assert server.requests, kind

    cookies = [cookie for cookie in sent_cookies(counter) if cookie]
    assert cookies
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    assert_hidden([*basic_secrets(name, password), *cookies, SECRET, PROXY_SECRET], logged)
    assert f"Logging in to {server_url} as '{name}'" in logged  # the records are there


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
@pytest.mark.parametrize("kind", list(strategies()))
async def test_exceptions_never_show_credentials_or_the_session_cookie(
    kind: str, transport: str
) -> None:
    auth = strategies()[kind]
    errors: list[BaseException] = []
    options = transport_options(transport)
    async with scripted_client(answer_404_with_a_fresh_cookie, auth, **options) as (server, c):
        db = Database(c, "db")

        async def streamed() -> None:
            async for _ in db.akeys():
                pass

        for call in (db.get("missing"), db.get("moved"), db.get("loop"), streamed()):
            try:
                await call
            except aiohttp.ClientResponseError as exc:  # aiohttp's too many redirects too
                errors.append(exc)

    assert len(errors) == 4
    secrets = secrets_of(auth, server)
    for error in errors:
        assert_hidden(secrets, exposed_text(error))
    if transport == AIOHTTP:  # aiohttp follows the redirect, whose history is dropped
        assert ("GET", "/db/missing") in [(r.method, r.target) for r in server.requests]
