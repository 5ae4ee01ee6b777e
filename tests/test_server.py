"""The server's own resources (aiocouch.server) and sessions (aiocouch.session).

Health, uuids, membership, tasks, database infos and the set-up state, then who the
client is, logging in and out. CouchDB's answers are those of transcript sections 1, 2
and 14; where pouchdb-server lacks an endpoint (DIFF.md summary 10) the test is
``couchdb_only`` and names the block it was written from.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from aiocouch import (
    BadRequestError,
    CouchDB,
    Database,
    InvalidResponseError,
    NotFoundError,
    SessionAuth,
    UnauthorizedError,
)
from aiocouch.session import Login
from testserver.request_counter import RequestCounter
from testserver.scripted_server import ScriptedServer, answering, http_response

CLUSTER_STATES = {
    "cluster_disabled",
    "single_node_disabled",
    "single_node_enabled",
    "cluster_enabled",
    "cluster_finished",
}


@pytest.fixture
async def three_databases(couchdb: CouchDB) -> AsyncIterator[list[str]]:
    """Three new databases whose names sort together (and after nothing else made here)."""
    prefix = f"aiocouch_test_dbsinfo_{uuid.uuid4().hex[:12]}"
    names = [f"{prefix}_{n}" for n in ("a", "b", "c")]
    for name in names:
        await couchdb.create(name)
    try:
        yield names
    finally:
        for name in names:
            with contextlib.suppress(NotFoundError):
                await Database(couchdb, name).delete()


@contextlib.asynccontextmanager
async def scripted_client(body: bytes) -> AsyncIterator[CouchDB]:
    """A client of a server that answers every request with 200 and ``body``."""
    async with ScriptedServer(answering(http_response(200, body))) as server:
        client = CouchDB(server.url)
        try:
            yield client
        finally:
            await client.close()


# --- health, uuids, membership, tasks, set-up state ---


@pytest.mark.couchdb_only("pouchdb-server has no /_up (transcript 1.2)")
async def test_up_reports_a_healthy_node(couchdb: CouchDB) -> None:
    status = await couchdb.up()
    assert status["status"] == "ok"


@pytest.mark.couchdb_only("pouchdb-server has no /_up (transcript 1.2)")
async def test_up_needs_no_login(server_url: str) -> None:
    async with CouchDB(server_url) as anonymous:
        assert (await anonymous.up())["status"] == "ok"


async def test_uuids_are_as_many_distinct_strings_as_asked(
    couchdb: CouchDB, request_counter: RequestCounter, is_pouchdb: bool
) -> None:
    request_counter.reset()
    uuids = await couchdb.uuids(5)
    assert len(uuids) == 5
    assert len(set(uuids)) == 5
    # CouchDB's algorithms give 32 hex digits (transcript 1.4); pouchdb-server its own form.
    pattern = r"[0-9A-Za-z-]+" if is_pouchdb else r"[0-9a-f]{32}"
    assert all(re.fullmatch(pattern, value) for value in uuids)
    assert request_counter.requests == [("GET", "/_uuids?count=5")]
    assert len(await couchdb.uuids()) == 1


@pytest.mark.parametrize("count", [0, -1, True, 2.0, "3"])
async def test_uuids_refuses_a_count_that_is_no_positive_int_before_any_request(
    couchdb: CouchDB, request_counter: RequestCounter, count: object
) -> None:
    request_counter.reset()
    with pytest.raises(ValueError, match="count must be a positive int"):
        await couchdb.uuids(count)  # type: ignore[arg-type]
    assert request_counter.count == 0


async def test_membership_lists_this_node_among_the_cluster_nodes(couchdb: CouchDB) -> None:
    membership = await couchdb.membership()
    assert membership["cluster_nodes"]
    assert set(membership["cluster_nodes"]) <= set(membership["all_nodes"])


async def test_active_tasks_is_a_list_of_task_objects(couchdb: CouchDB) -> None:
    tasks = await couchdb.active_tasks()
    assert isinstance(tasks, list)
    assert all(isinstance(task, dict) and "type" in task for task in tasks)


async def test_an_active_tasks_answer_that_is_no_array_of_objects_raises() -> None:
    async with scripted_client(b'{"tasks": []}') as client:
        with pytest.raises(InvalidResponseError, match="a JSON array of objects"):
            await client.active_tasks()


async def test_a_membership_answer_without_node_lists_raises() -> None:
    body = b'{"all_nodes": "couchdb@127.0.0.1"}'
    async with scripted_client(body) as client:
        with pytest.raises(InvalidResponseError, match="all_nodes"):
            await client.membership()


async def test_cluster_setup_reports_one_of_the_documented_states(couchdb: CouchDB) -> None:
    # CouchDB: single_node_enabled (transcript 14.10); pouchdb-server: a stub
    # cluster_disabled (with 201).
    assert await couchdb.cluster_setup() in CLUSTER_STATES


@pytest.mark.couchdb_only("pouchdb-server's /_cluster_setup is a fixed stub (transcript 14.10)")
async def test_cluster_setup_checks_the_system_databases_named(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    request_counter.reset()
    state = await couchdb.cluster_setup(ensure_dbs_exist=["_users", "_replicator"])
    assert state in {"single_node_enabled", "cluster_finished"}
    assert request_counter.requests == [
        ("GET", "/_cluster_setup?ensure_dbs_exist=%5B%22_users%22%2C%22_replicator%22%5D")
    ]


async def test_cluster_setup_refuses_a_str_for_the_list_of_databases(
    couchdb: CouchDB, request_counter: RequestCounter
) -> None:
    request_counter.reset()
    with pytest.raises(TypeError, match="list of database names"):
        await couchdb.cluster_setup(ensure_dbs_exist="_users")
    assert request_counter.count == 0


# --- database infos ---


@pytest.mark.couchdb_only("pouchdb-server has no /_dbs_info (transcript 14.25)")
async def test_dbs_info_pages_through_a_range_of_databases_in_name_order(
    couchdb: CouchDB, three_databases: list[str], request_counter: RequestCounter
) -> None:
    request_counter.reset()
    rows = [
        row
        async for row in couchdb.dbs_info(
            start_key=three_databases[0], end_key=three_databases[-1], page_size=2
        )
    ]
    assert [row["key"] for row in rows] == three_databases
    assert [row["info"]["db_name"] for row in rows] == three_databases
    assert all(row["info"]["doc_count"] == 0 for row in rows)
    # Two pages: the second starts after the last name of the first.
    first, second = request_counter.requests
    assert "limit=2" in first[1] and "skip" not in first[1]
    assert f"start_key=%22{three_databases[1]}%22" in second[1] and "skip=1" in second[1]


@pytest.mark.couchdb_only("pouchdb-server has no /_dbs_info (transcript 14.26)")
async def test_dbs_info_of_named_databases_marks_the_missing_ones(
    couchdb: CouchDB, three_databases: list[str], request_counter: RequestCounter
) -> None:
    missing = f"aiocouch_test_missing_{uuid.uuid4().hex}"
    names = [three_databases[2], missing, three_databases[0]]
    request_counter.reset()
    rows = [row async for row in couchdb.dbs_info(names, page_size=2)]
    assert [row["key"] for row in rows] == names
    assert rows[0]["info"]["db_name"] == three_databases[2]
    assert rows[1] == {"key": missing, "error": "not_found"}
    assert rows[2]["info"]["db_name"] == three_databases[0]
    assert request_counter.requests == [("POST", "/_dbs_info"), ("POST", "/_dbs_info")]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"names": ["Bad Name"]}, BadRequestError, "Invalid database name"),
        ({"names": "onedb"}, TypeError, "not a str"),
        ({"page_size": 0}, ValueError, "page_size"),
        ({"names": ["a"], "start_key": "a"}, ValueError, "not both"),
        ({"start_key": "_Bad"}, BadRequestError, "Invalid database name"),
    ],
)
async def test_dbs_info_refuses_bad_arguments_before_any_request(
    couchdb: CouchDB,
    request_counter: RequestCounter,
    arguments: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    request_counter.reset()
    with pytest.raises(error, match=message):
        async for _ in couchdb.dbs_info(**arguments):  # type: ignore[arg-type]
            pass
    assert request_counter.count == 0


# --- sessions ---


async def test_session_names_the_admin_and_how_it_authenticated(
    couchdb: CouchDB, admin_user: str
) -> None:
    session = await couchdb.session()
    assert (session.name, session.is_admin) == (admin_user, True)
    assert session.authenticated == "default"  # basic authentication (transcript 2.2)
    assert "cookie" in session.authentication_handlers


async def test_session_of_an_anonymous_client_has_no_name(server_url: str) -> None:
    async with CouchDB(server_url) as anonymous:
        session = await anonymous.session()
    assert (session.name, session.roles, session.authenticated) == (None, [], None)
    assert not session.is_admin


async def test_login_returns_a_cookie_that_authenticates_another_client(
    couchdb: CouchDB, server_url: str, throwaway_user: tuple[str, str]
) -> None:
    name, password = throwaway_user
    login = await couchdb.login(name, password)
    assert (login.name, login.roles) == (name, [])
    assert login.cookie and login.cookie not in repr(login)
    async with CouchDB(server_url, cookie=login.cookie) as with_cookie:
        session = await with_cookie.session()
    assert (session.name, session.authenticated) == (name, "cookie")


@pytest.mark.couchdb_only("pouchdb-server's session cookie has no Max-Age (transcript 2.3)")
async def test_login_reports_the_cookie_lifetime(
    couchdb: CouchDB, throwaway_user: tuple[str, str]
) -> None:
    login = await couchdb.login(*throwaway_user)
    assert login.lifetime == 600  # [chttpd_auth] timeout, CouchDB's default


async def test_login_leaves_the_client_authenticated_as_before(
    server_url: str, admin_user: str, admin_password: str, throwaway_user: tuple[str, str]
) -> None:
    # A cookie session must not take the cookie of the user logged in for the caller.
    async with CouchDB(server_url, auth=SessionAuth(admin_user, admin_password)) as client:
        assert (await client.session()).name == admin_user
        login = await client.login(*throwaway_user)
        assert login.name == throwaway_user[0]
        session = await client.session()
    assert (session.name, session.authenticated) == (admin_user, "cookie")


async def test_login_with_a_wrong_password_raises_unauthorized(
    couchdb: CouchDB, throwaway_user: tuple[str, str]
) -> None:
    with pytest.raises(UnauthorizedError):
        await couchdb.login(throwaway_user[0], "wrong-" + throwaway_user[1])
    assert (await couchdb.session()).is_admin  # the client itself is unaffected


@pytest.mark.parametrize(("name", "password"), [("", "pw"), ("user", ""), (None, "pw")])
async def test_login_refuses_an_empty_name_or_password_before_any_request(
    couchdb: CouchDB, request_counter: RequestCounter, name: object, password: str
) -> None:
    request_counter.reset()
    with pytest.raises(ValueError, match="non-empty"):
        await couchdb.login(name, password)  # type: ignore[arg-type]
    assert request_counter.count == 0


async def test_logout_makes_a_cookie_session_log_in_again(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    counter = RequestCounter()
    async with CouchDB(
        server_url,
        auth=SessionAuth(admin_user, admin_password),
        trace_configs=counter.trace_configs,
    ) as client:
        await client.session()
        await client.logout()
        session = await client.session()
    assert session.name == admin_user
    assert counter.requests == [
        ("POST", "/_session"),
        ("GET", "/_session"),
        ("DELETE", "/_session"),
        ("POST", "/_session"),
        ("GET", "/_session"),
    ]


async def test_a_login_answer_without_cookie_raises() -> None:
    body = b'{"ok": true, "name": "alice", "roles": []}'
    async with scripted_client(body) as client:
        with pytest.raises(InvalidResponseError, match="no AuthSession cookie"):
            await client.login("alice", "secret")


def test_a_login_repr_hides_the_cookie() -> None:
    login = Login("alice", [], "c2VjcmV0", 600.0)
    assert "c2VjcmV0" not in repr(login)
    assert "alice" in repr(login)
