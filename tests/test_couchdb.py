"""CouchDB: the client object, its session, and the server-level calls (API.md section 4)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest

from aiocouch import (
    BadRequestError,
    CouchDB,
    Database,
    NotFoundError,
    PreconditionFailedError,
    UnauthorizedError,
)
from aiocouch.cluster import Quorum
from testserver.pouchdb_server import CouchServer
from testserver.request_counter import RequestCounter


def unique_name() -> str:
    return f"aiocouch_test_{uuid.uuid4().hex}"


@pytest.fixture
async def scratch_names(couchdb: CouchDB) -> AsyncIterator[list[str]]:
    """Names of databases a test creates; each is deleted afterwards (if it exists)."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(NotFoundError):
            await Database(couchdb, name).delete()


def new_name(names: list[str]) -> str:
    name = unique_name()
    names.append(name)
    return name


# --- construction and session ---


async def test_constructor_with_keyword_credentials_sends_no_request(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    counter = RequestCounter()
    client = CouchDB(
        server_url,
        user=admin_user,
        password=admin_password,
        trace_configs=counter.trace_configs,
    )
    await client.close()
    assert counter.count == 0


async def test_positional_credentials_authenticate_like_keywords(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    counter = RequestCounter()
    async with CouchDB(
        server_url, admin_user, admin_password, trace_configs=counter.trace_configs
    ) as client:
        assert counter.count == 0
        response, session = await client._server._get("/_session")
    assert response.status == 200
    assert session["userCtx"]["name"] == admin_user
    assert "_admin" in session["userCtx"]["roles"]
    assert counter.requests == [("GET", "/_session")]


async def test_async_with_returns_the_client_and_sends_nothing(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    counter = RequestCounter()
    client = CouchDB(
        server_url, user=admin_user, password=admin_password, trace_configs=counter.trace_configs
    )
    async with client as entered:
        assert entered is client
    assert counter.count == 0


async def test_async_with_closes_the_session_on_exit(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    connector = aiohttp.TCPConnector()
    async with CouchDB(
        server_url, user=admin_user, password=admin_password, connector=connector
    ) as client:
        await client.info()
        assert not connector.closed
    assert connector.closed


async def test_async_with_closes_the_session_when_the_block_raises(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    connector = aiohttp.TCPConnector()
    with pytest.raises(RuntimeError, match="boom"):
        async with CouchDB(
            server_url, user=admin_user, password=admin_password, connector=connector
        ) as client:
            await client.info()
            raise RuntimeError("boom")
    assert connector.closed


async def test_async_with_closes_a_given_connector_even_without_requests(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    connector = aiohttp.TCPConnector()
    async with CouchDB(server_url, user=admin_user, password=admin_password, connector=connector):
        pass
    assert connector.closed


async def login_cookie(server_url: str, user: str, password: str) -> str:
    """The ``AuthSession`` cookie of a login: POST /_session (transcript 2.3)."""
    async with CouchDB(server_url) as anonymous:
        response, _ = await anonymous._server._post(
            "/_session", data={"name": user, "password": password}
        )
    morsel = SimpleCookie(response.headers["Set-Cookie"])["AuthSession"]
    return morsel.value


async def test_cookie_is_sent_as_auth_session(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    # A real login cookie: CouchDB refuses a made-up one with 400 (transcript 2.14).
    cookie = await login_cookie(server_url, admin_user, admin_password)
    recorder = RequestCounter()
    async with CouchDB(server_url, cookie=cookie, trace_configs=recorder.trace_configs) as c:
        assert "version" in await c.info()
        _, session = await c._server._get("/_session")
    assert session["userCtx"]["name"] == admin_user
    assert len(recorder.headers) == 2
    for _, _, headers in recorder.headers:
        assert headers["Cookie"] == f"AuthSession={cookie}"
        assert "Authorization" not in headers


@pytest.mark.couchdb_only("pouchdb-server ignores a malformed AuthSession cookie (DIFF 2.14)")
async def test_malformed_cookie_is_a_bad_request(server_url: str) -> None:
    async with CouchDB(server_url, cookie="c00k1e") as client:
        with pytest.raises(BadRequestError) as caught:
            await client.info()
    assert caught.value.status == 400
    assert "Malformed AuthSession cookie" in str(caught.value)


async def test_credentials_in_the_url_authenticate(
    couch_server: CouchServer, admin_user: str, admin_password: str
) -> None:
    parts = urlsplit(couch_server.url)
    url = f"{parts.scheme}://{admin_user}:{admin_password}@{parts.netloc}{parts.path}"
    async with CouchDB(url) as client:
        _, session = await client._server._get("/_session")
    assert session["userCtx"]["name"] == admin_user


async def test_empty_password_sends_no_authorization(server_url: str, admin_user: str) -> None:
    recorder = RequestCounter()
    async with CouchDB(
        server_url, user=admin_user, password="", trace_configs=recorder.trace_configs
    ) as client:
        _, session = await client._server._get("/_session")
    assert session["userCtx"]["name"] is None
    assert all("Authorization" not in headers for _, _, headers in recorder.headers)


async def test_every_request_accepts_json(
    server_url: str, admin_user: str, admin_password: str, quorum: Quorum | None
) -> None:
    recorder = RequestCounter()
    name = unique_name()
    async with CouchDB(
        server_url,
        user=admin_user,
        password=admin_password,
        trace_configs=recorder.trace_configs,
        quorum=quorum,  # the test reads its write through _all_docs
    ) as client:
        await client.info()
        await client.check_credentials()
        db = await client.create(name)
        try:
            await client[name]
            assert name in await client.keys()
            doc = await db.create("doc", data={"a": 1})
            await doc.save()
            assert [d.id async for d in db.docs()] == ["doc"]
            assert [d.id async for d in db.docs(["doc"])] == ["doc"]
            await db.info()
        finally:
            await db.delete()
    methods = {method for method, _, _ in recorder.headers}
    assert {"GET", "HEAD", "PUT", "POST", "DELETE"} <= methods
    for method, path, headers in recorder.headers:
        assert headers.get("Accept") == "application/json", (method, path, headers)


async def test_trailing_slash_in_the_server_url_is_not_doubled(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    counter = RequestCounter()
    async with CouchDB(
        server_url + "/",
        user=admin_user,
        password=admin_password,
        trace_configs=counter.trace_configs,
    ) as client:
        info = await client.info()
        names = await client.keys()
        db = await client[database.id]
        assert [doc.id async for doc in db.docs()] == []
    assert "version" in info
    assert database.id in names
    assert counter.requests == [
        ("GET", "/"),
        ("GET", "/_all_dbs"),
        ("HEAD", f"/{database.id}"),
        ("GET", f"/{database.id}/_all_docs?include_docs=true"),
    ]


async def test_timeout_keyword_reaches_the_aiohttp_session(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    async with CouchDB(
        server_url,
        user=admin_user,
        password=admin_password,
        timeout=aiohttp.ClientTimeout(total=1e-6),
    ) as client:
        with pytest.raises(asyncio.TimeoutError):
            await client.info()
    async with CouchDB(
        server_url,
        user=admin_user,
        password=admin_password,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as client:
        assert "version" in await client.info()


# --- check_credentials ---


async def test_check_credentials_sends_one_session_request(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    assert await couchdb.check_credentials() is None
    assert request_counter.requests == [("GET", "/_session")]


async def test_check_credentials_with_a_wrong_password_raises_unauthorized(
    server_url: str, throwaway_user: tuple[str, str]
) -> None:
    name, password = throwaway_user
    async with CouchDB(server_url, user=name, password=password + "-wrong") as client:
        with pytest.raises(UnauthorizedError) as info:
            await client.check_credentials()
    assert isinstance(info.value, PermissionError)
    assert isinstance(info.value, aiohttp.ClientResponseError)
    assert info.value.status == 401


async def test_unknown_user_gets_unauthorized_for_database_lookup(server_url: str) -> None:
    # A new name each run: CouchDB counts failed logins per name (5 lock it out).
    nobody = f"aiocouch_nobody_{uuid.uuid4().hex}"
    async with CouchDB(server_url, user=nobody, password="nope") as client:
        with pytest.raises(UnauthorizedError) as info:
            await client["_users"]
    assert info.value.status == 401


# --- create ---


async def test_create_returns_the_database_with_one_put(
    couchdb: CouchDB, request_counter: RequestCounter, scratch_names: list[str]
) -> None:
    name = new_name(scratch_names)
    db = await couchdb.create(name)
    assert isinstance(db, Database)
    assert db.id == name
    assert request_counter.requests == [("PUT", f"/{name}")]
    assert name in await couchdb.keys()
    assert (await db.info())["doc_count"] == 0


async def test_create_existing_raises_precondition_failed(
    couchdb: CouchDB, request_counter: RequestCounter, scratch_names: list[str]
) -> None:
    name = new_name(scratch_names)
    await couchdb.create(name)
    request_counter.reset()
    with pytest.raises(PreconditionFailedError) as info:
        await couchdb.create(name)
    assert isinstance(info.value, ValueError)
    assert info.value.status == 412
    assert request_counter.requests == [("PUT", f"/{name}")]


async def test_create_existing_with_exists_ok_keeps_its_documents(
    couchdb: CouchDB, request_counter: RequestCounter, scratch_names: list[str]
) -> None:
    name = new_name(scratch_names)
    first = await couchdb.create(name)
    doc = await first.create("kept", data={"x": 1})
    await doc.save()
    request_counter.reset()

    again = await couchdb.create(name, exists_ok=True)

    assert again.id == name
    assert request_counter.requests == [("PUT", f"/{name}")]
    assert (await again.get("kept"))["x"] == 1


async def test_create_sends_params_in_the_query_string(
    couchdb: CouchDB, request_counter: RequestCounter, scratch_names: list[str]
) -> None:
    name = new_name(scratch_names)
    await couchdb.create(name, q=1, partitioned=False)
    [(method, path)] = request_counter.requests
    assert method == "PUT"
    assert urlsplit(path).path == f"/{name}"
    assert parse_qs(urlsplit(path).query) == {"q": ["1"], "partitioned": ["false"]}


@pytest.mark.couchdb_only("pouchdb-server ignores partitioned= (no props in the db info)")
async def test_create_partitioned_database_is_partitioned(
    couchdb: CouchDB, request_counter: RequestCounter, scratch_names: list[str]
) -> None:
    name = new_name(scratch_names)
    db = await couchdb.create(name, partitioned=True)
    assert parse_qs(urlsplit(request_counter.requests[0][1]).query) == {"partitioned": ["true"]}
    assert (await db.info())["props"] == {"partitioned": True}


async def test_concurrent_creates_with_exists_ok_all_succeed(
    couchdb: CouchDB, scratch_names: list[str]
) -> None:
    name = new_name(scratch_names)
    databases = await asyncio.gather(*(couchdb.create(name, exists_ok=True) for _ in range(5)))
    assert [db.id for db in databases] == [name] * 5
    assert name in await couchdb.keys()


@pytest.mark.parametrize("name", ["Bad Name", "_bad", "", "Upper", "1starts_with_digit", "a b"])
async def test_create_with_an_invalid_name_raises_before_any_request(
    couchdb: CouchDB, request_counter: RequestCounter, name: str
) -> None:
    with pytest.raises(ValueError) as info:
        await couchdb.create(name)
    assert isinstance(info.value, BadRequestError)
    assert request_counter.count == 0


@pytest.mark.parametrize("name", [None, 42, b"bytes"])
async def test_create_with_a_non_str_name_raises_type_error_before_any_request(
    couchdb: CouchDB, request_counter: RequestCounter, name: object
) -> None:
    with pytest.raises(TypeError):
        await couchdb.create(name)  # type: ignore[arg-type]
    assert request_counter.count == 0


@pytest.mark.parametrize("suffix", ["/sub", "+b(c)$", "-x_y"])
async def test_create_accepts_names_with_special_characters(
    couchdb: CouchDB, request_counter: RequestCounter, scratch_names: list[str], suffix: str
) -> None:
    name = unique_name() + suffix
    scratch_names.append(name)
    db = await couchdb.create(name)
    assert db.id == name
    assert (await couchdb[name]).id == name
    assert request_counter.requests == [
        ("PUT", "/" + quote(name, safe="")),
        ("HEAD", "/" + quote(name, safe="")),
    ]


# --- couchdb[name] ---


async def test_getitem_existing_database_sends_one_head(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    db = await couchdb[database.id]
    assert isinstance(db, Database)
    assert db.id == database.id
    assert request_counter.requests == [("HEAD", f"/{database.id}")]


async def test_getitem_system_database(couchdb: CouchDB, request_counter: RequestCounter) -> None:
    db = await couchdb["_users"]
    assert db.id == "_users"
    assert request_counter.requests == [("HEAD", "/_users")]


async def test_getitem_missing_database_raises_not_found(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    name = unique_name()
    with pytest.raises(NotFoundError) as info:
        await couchdb[name]
    assert isinstance(info.value, KeyError)
    assert info.value.args[0] == f"The database '{name}' does not exist."
    assert request_counter.requests == [("HEAD", f"/{name}")]


async def test_getitem_after_delete_raises_not_found(couchdb: CouchDB) -> None:
    name = unique_name()
    db = await couchdb.create(name)
    await db.delete()
    with pytest.raises(NotFoundError):
        await couchdb[name]


# --- keys() and info() ---


async def test_keys_lists_databases_with_one_request(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    names = await couchdb.keys()
    assert isinstance(names, list)
    assert database.id in names
    assert request_counter.requests == [("GET", "/_all_dbs")]


async def test_keys_sends_params_verbatim(
    couchdb: CouchDB, database: Database, request_counter: RequestCounter
) -> None:
    await couchdb.keys(limit=1, startkey=f'"{database.id}"')
    [(method, path)] = request_counter.requests
    assert method == "GET"
    assert urlsplit(path).path == "/_all_dbs"
    assert parse_qs(urlsplit(path).query) == {"limit": ["1"], "startkey": [f'"{database.id}"']}


@pytest.mark.couchdb_only("pouchdb-server ignores limit/startkey/endkey on /_all_dbs")
async def test_keys_limit_and_range_select_databases(couchdb: CouchDB, database: Database) -> None:
    assert len(await couchdb.keys(limit=1)) == 1
    key = f'"{database.id}"'
    assert await couchdb.keys(startkey=key, endkey=key) == [database.id]


async def test_info_returns_the_welcome_object(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    info = await couchdb.info()
    assert isinstance(info, dict)
    assert isinstance(info["version"], str)
    assert request_counter.requests == [("GET", "/")]
