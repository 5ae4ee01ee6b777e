"""Checks of the test infrastructure itself, with plain aiohttp (not the library under test)."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import aiohttp
import pytest

from testserver.pouchdb_server import CouchServer
from testserver.request_counter import RequestCounter

REPO_ROOT = Path(__file__).resolve().parent.parent
JSON = {"Accept": "application/json"}


def basic_auth(user: str, password: str) -> dict[str, str]:
    """Headers for basic auth (aiohttp 3.14 deprecates ``aiohttp.BasicAuth`` and ``auth=``)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {**JSON, "Authorization": f"Basic {token}"}


async def test_server_answers_json_welcome(server_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{server_url}/", headers=JSON) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        welcome = await r.json()
    assert "couchdb" in welcome or "express-pouchdb" in welcome


async def test_admin_credentials_work_and_anonymous_is_not_admin(
    server_url: str, admin_user: str, admin_password: str
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{server_url}/_session", headers=basic_auth(admin_user, admin_password)
        ) as r:
            assert r.status == 200
            user_ctx = (await r.json())["userCtx"]
        assert user_ctx["name"] == admin_user
        assert "_admin" in user_ctx["roles"]

        async with session.get(f"{server_url}/_session", headers=JSON) as r:
            assert r.status == 200
            assert "_admin" not in (await r.json())["userCtx"]["roles"]

        # An unknown name, never the admin's: CouchDB locks an account out after 5 failed
        # logins; it answers an unknown name as it answers a wrong password (2.10, 2.11).
        wrong = basic_auth(f"aiocouch_nobody_{uuid.uuid4().hex}", admin_password)
        async with session.get(f"{server_url}/_session", headers=wrong) as r:
            assert r.status == 401


async def test_request_counter_records_method_and_raw_path(
    server_url: str, request_counter: RequestCounter
) -> None:
    async with aiohttp.ClientSession(trace_configs=request_counter.trace_configs) as session:
        async with session.get(f"{server_url}/", headers=JSON) as r:
            await r.read()
        async with session.head(f"{server_url}/no_such_db/a%2Fb?x=%22y%22", headers=JSON) as r:
            await r.read()
    assert request_counter.count == 2
    assert request_counter.requests == [("GET", "/"), ("HEAD", "/no_such_db/a%2Fb?x=%22y%22")]

    request_counter.reset()
    assert request_counter.count == 0
    assert request_counter.requests == []


def test_local_server_is_pouchdb_unless_couchdb_url_is_set(couch_server: CouchServer) -> None:
    from aiocouch.testing import ExternalCouchServer, LocalCouchServer

    if isinstance(couch_server, LocalCouchServer):
        assert couch_server.is_pouchdb
        assert couch_server.running
        assert couch_server.url.startswith("http://127.0.0.1:")
    else:
        assert isinstance(couch_server, ExternalCouchServer)


def test_couchdb_only_marker(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipped with its reason on pouchdb-server; a marker without a reason is an error."""
    monkeypatch.delenv("COUCHDB_URL", raising=False)  # the inner run would use pouchdb-server
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        markers = couchdb_only(reason): needs CouchDB
        """
    )
    pytester.makeconftest((REPO_ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.couchdb_only("needs _purge")
        def test_with_reason(couchdb):
            raise AssertionError("must not run on pouchdb-server")

        @pytest.mark.couchdb_only(reason="keyword form")
        def test_with_keyword_reason():
            raise AssertionError("must not run on pouchdb-server")

        @pytest.mark.couchdb_only
        def test_without_reason():
            pass

        def test_unmarked():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*couchdb_only needs a reason*",
            "SKIPPED [[]1[]] test_couchdb_only_marker.py:*: CouchDB only: needs _purge",
            "SKIPPED [[]1[]] test_couchdb_only_marker.py:*: CouchDB only: keyword form",
        ]
    )
