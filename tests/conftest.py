"""Shared fixtures: one CouchDB-compatible server per session, clients, scratch databases.

The server, the ``couchdb`` client and the ``database`` come from aiocouch's own pytest
plugin (``src/aiocouch_pytest.py``, the one users get): a private pouchdb-server (the
``pouchdb_server`` option in pyproject.toml names ``testserver``'s) unless the environment
variable ``COUCHDB_URL`` (with ``COUCHDB_USER`` and ``COUCHDB_PASSWORD``) names one, e.g. a
real Apache CouchDB. This module adds what the suite needs beside them.

On a CouchDB cluster each document has ``n`` copies, and a read may miss a write that has
just answered unless it was written to all of them. The ``couchdb`` client (and so every
``database``) therefore writes and reads with ``w`` and ``r`` equal to the number of
copies: ``COUCHDB_COPIES`` if set, else the server's ``[cluster] n`` (at most its number
of nodes), 1 on pouchdb-server (then nothing is sent).

Mark tests that need Apache CouchDB with ``@pytest.mark.couchdb_only("why")``: they are
skipped on pouchdb-server only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from testserver.pouchdb_server import CouchServer, external_server_from_environment
from testserver.request_counter import RequestCounter

if TYPE_CHECKING:
    from aiocouch import CouchDB, Database
    from aiocouch.cluster import Quorum

pytest_plugins = ["pytester"]  # for tests/test_testserver.py

_IS_POUCHDB = pytest.StashKey[bool]()


def _is_pouchdb(config: pytest.Config) -> bool:
    """Whether this session's server is pouchdb-server, without starting it."""
    if _IS_POUCHDB not in config.stash:
        if not os.environ.get("COUCHDB_URL", "").strip():
            config.stash[_IS_POUCHDB] = True  # the local server is always pouchdb-server
        else:
            external = external_server_from_environment()
            config.stash[_IS_POUCHDB] = external is not None and external.is_pouchdb
    return config.stash[_IS_POUCHDB]


def _couchdb_only_reason(item: pytest.Item) -> str | None:
    """The reason of the item's ``couchdb_only`` marker, "" if it has none, None if unmarked."""
    marker = item.get_closest_marker("couchdb_only")
    if marker is None:
        return None
    reason = marker.args[0] if marker.args else marker.kwargs.get("reason")
    return reason.strip() if isinstance(reason, str) else ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``couchdb_only`` tests on pouchdb-server, before any fixture starts anything."""
    for item in items:
        reason = _couchdb_only_reason(item)
        if reason and _is_pouchdb(config):
            item.add_marker(pytest.mark.skip(reason=f"CouchDB only: {reason}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _couchdb_only_reason(item) == "":
        pytest.fail(
            "@pytest.mark.couchdb_only needs a reason, "
            'e.g. @pytest.mark.couchdb_only("pouchdb-server has no _purge")',
            pytrace=False,
        )


@pytest.fixture(scope="session")
def couch_server(couchdb_server: CouchServer) -> CouchServer:
    """The server for this session (the plugin's ``couchdb_server``)."""
    return couchdb_server


@pytest.fixture(scope="session")
def copies(couch_server: CouchServer) -> int:
    """How many copies of each document the server keeps (see the module)."""
    given = os.environ.get("COUCHDB_COPIES", "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise pytest.UsageError(f"COUCHDB_COPIES must be a number of at least 1: {given!r}")
        return int(given)
    if couch_server.is_pouchdb:
        return 1
    auth = (couch_server.user, couch_server.password)
    n = _get_json(f"{couch_server.url}/_node/_local/_config/cluster/n", auth)
    nodes = _get_json(f"{couch_server.url}/_membership", auth)["cluster_nodes"]
    return max(1, min(int(n), len(nodes)))


def _get_json(url: str, auth: tuple[str, str]) -> Any:
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "Authorization": f"Basic {token}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="session")
def quorum(copies: int) -> Quorum | None:
    """``Quorum(w=copies, r=copies)`` on a cluster, None where there is one copy: give it
    to a client a test builds itself when the test reads its own writes."""
    from aiocouch.cluster import Quorum

    return Quorum(w=copies, r=copies) if copies > 1 else None


@pytest.fixture
def server_url(couch_server: CouchServer) -> str:
    """Base URL of the server, without a trailing slash."""
    return couch_server.url


@pytest.fixture
def admin_user(couch_server: CouchServer) -> str:
    return couch_server.user


@pytest.fixture
def admin_password(couch_server: CouchServer) -> str:
    return couch_server.password


@pytest.fixture
def is_pouchdb(couch_server: CouchServer) -> bool:
    """True when the server is pouchdb-server rather than Apache CouchDB."""
    return couch_server.is_pouchdb


@pytest.fixture
def request_counter(quorum: Quorum | None) -> RequestCounter:
    """Counts the requests of clients built with ``trace_configs=request_counter.trace_configs``.

    The ``w`` and ``r`` of a cluster run are left out of the recorded paths: they go with
    every document request of the ``couchdb`` client.
    """
    if quorum is None:
        return RequestCounter()
    return RequestCounter(unrecorded=(f"w={quorum.w}", f"r={quorum.r}"))


@pytest.fixture
def couchdb_options(request_counter: RequestCounter, quorum: Quorum | None) -> dict[str, Any]:
    """The plugin's ``couchdb`` client records its requests in ``request_counter``; on a
    cluster it writes and reads every copy (``quorum``)."""
    return {"trace_configs": request_counter.trace_configs, "quorum": quorum}


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[..., CouchDB]]:
    """Makes clients: ``client_factory(url, transport="lean", **options)`` is a
    ``CouchDB(url, **options)`` on the lean transport, or on aiohttp's with
    ``transport="aiohttp"`` (a ``connector=`` selects it); each is closed after the test."""
    import aiohttp

    from aiocouch import CouchDB

    clients: list[CouchDB] = []

    def make(url: str, transport: str = "lean", **options: Any) -> CouchDB:
        if transport == "aiohttp":
            options["connector"] = aiohttp.TCPConnector()
        client = CouchDB(url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def throwaway_user(couchdb: CouchDB) -> AsyncIterator[tuple[str, str]]:
    """``(name, password)`` of a ``_users`` account made for one test, deleted after it.

    Tests of a wrong password log in as this user, never as the admin: CouchDB locks an
    account out for 5 minutes after 5 failed logins (``[chttpd_auth_lockout]``), which
    would lock the admin out of the rest of the suite and of the server.
    """
    name, password = f"aiocouch_user_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    path = f"/_users/org.couchdb.user:{name}"
    _, created = await couchdb._server._put(
        path, data={"name": name, "password": password, "roles": [], "type": "user"}
    )
    try:
        yield name, password
    finally:
        with contextlib.suppress(Exception):
            await couchdb._server._delete(path, params={"rev": created["rev"]})


@pytest.fixture
def database(database: Database, request_counter: RequestCounter) -> Database:
    """The plugin's ``database`` (made with ``database_params``, which a module may
    override: ``{"q": 1}`` for one shard), with ``request_counter`` reset once it exists,
    so a test counts only its own requests."""
    request_counter.reset()
    return database
