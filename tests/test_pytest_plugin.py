"""The pytest plugin for users (src/aiocouch_pytest.py), run as a user runs it: a test file
of their own in a separate pytest process (pytester), with pytest-asyncio in its default
strict mode and no configuration of this project."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from aiocouch import CouchDB
from testserver.doc_examples import DOCS, blocks_of
from testserver.pouchdb_server import POUCHDB_SERVER_BIN, CouchServer

USER_TESTS = """
import os
from pathlib import Path

import pytest

from aiocouch import Database


@pytest.mark.asyncio
async def test_a_document_round_trip(couchdb, database):
    doc = await database.create("hello", data={"n": 1})
    await doc.save()
    assert (await database["hello"])["n"] == 1
    assert isinstance(database, Database)
    Path("database.txt").write_text(database.id)
    marker = await couchdb.create(os.environ["MARKER_DB"])  # left for the outer test
    assert marker.id == os.environ["MARKER_DB"]


@pytest.mark.asyncio
async def test_each_test_gets_a_new_empty_database(database):
    assert [doc async for doc in database.docs()] == []


def test_without_fixtures():
    assert True
"""


@pytest.fixture
def marker_name() -> str:
    return f"aiocouch_test_marker_{uuid.uuid4().hex}"


def _run_user_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, marker: str
) -> pytest.RunResult:
    monkeypatch.setenv("MARKER_DB", marker)
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


async def test_a_users_tests_run_against_couchdb_url_and_their_database_is_deleted(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    couch_server: CouchServer,
    couchdb: CouchDB,
    marker_name: str,
) -> None:
    monkeypatch.setenv("COUCHDB_URL", couch_server.url)
    monkeypatch.setenv("COUCHDB_USER", couch_server.user)
    monkeypatch.setenv("COUCHDB_PASSWORD", couch_server.password)

    result = _run_user_tests(pytester, monkeypatch, marker_name)

    result.assert_outcomes(passed=3)
    database = (pytester.path / "database.txt").read_text()
    names = await couchdb.keys()
    try:
        # COUCHDB_URL honoured: what the user's test created is on this session's server
        assert marker_name in names
        # the fresh database of the test is gone again
        assert database.startswith("aiocouch_test_")
        assert database not in names
    finally:
        await (await couchdb[marker_name]).delete()


@pytest.mark.skipif(
    not os.access(POUCHDB_SERVER_BIN, os.X_OK), reason="testserver's pouchdb-server not installed"
)
def test_a_configured_pouchdb_server_is_started_for_the_session_and_stopped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, marker_name: str
) -> None:
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    pytester.makeini(f"[pytest]\npouchdb_server = {POUCHDB_SERVER_BIN}\n")
    pytester.makeconftest(
        """
import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def record_server(couchdb_server):
    Path("server.txt").write_text(f"{couchdb_server.url} {couchdb_server.pid}")
    assert couchdb_server.is_pouchdb
"""
    )

    result = _run_user_tests(pytester, monkeypatch, marker_name)

    result.assert_outcomes(passed=3)
    url, pid = (pytester.path / "server.txt").read_text().split()
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(ProcessLookupError):  # stopped at the end of the session
        os.kill(int(pid), 0)


@pytest.mark.skipif(
    not os.access(POUCHDB_SERVER_BIN, os.X_OK), reason="testserver's pouchdb-server not installed"
)
def test_a_test_during_which_the_pouchdb_server_exited_fails_saying_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    pytester.makeini(f"[pytest]\npouchdb_server = {POUCHDB_SERVER_BIN}\n")
    pytester.makepyfile(
        test_user="""
import os
import signal
import time


def test_the_server_goes_away(couchdb_server):
    os.kill(couchdb_server.pid, signal.SIGKILL)  # as if a request had made it exit
    while couchdb_server.running:
        time.sleep(0.05)
"""
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pouchdb-server exited during this test*"])


@pytest.mark.skipif(
    not os.access(POUCHDB_SERVER_BIN, os.X_OK), reason="testserver's pouchdb-server not installed"
)
def test_the_program_can_be_named_on_the_command_line_relative_to_the_working_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    pytester.makepyfile(
        test_user="""
def test_server(couchdb_server):
    assert couchdb_server.is_pouchdb
"""
    )
    program = Path(os.path.relpath(POUCHDB_SERVER_BIN, pytester.path))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--pouchdb-server={program}")
    result.assert_outcomes(passed=1)


def test_without_a_server_the_fixtures_fail_saying_what_to_configure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    pytester.makepyfile(
        test_user="""
import pytest

@pytest.mark.asyncio
async def test_needs_a_server(database):
    pass

def test_needs_nothing():
    pass
"""
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*set COUCHDB_URL*--pouchdb-server=PATH*"])


def test_a_missing_program_is_named_in_the_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    pytester.makeini("[pytest]\npouchdb_server = node_modules/.bin/pouchdb-server\n")
    pytester.makepyfile(test_user="def test_server(couchdb_server):\n    pass\n")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*node_modules/.bin/pouchdb-server not found*"])


def test_options_of_the_client_and_the_database_can_be_overridden(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, couch_server: CouchServer
) -> None:
    monkeypatch.setenv("COUCHDB_URL", couch_server.url)
    monkeypatch.setenv("COUCHDB_USER", couch_server.user)
    monkeypatch.setenv("COUCHDB_PASSWORD", couch_server.password)
    pytester.makepyfile(
        test_user="""
import aiohttp
import pytest

SENT = []


async def on_request_start(session, context, params):
    SENT.append((params.method, str(params.url)))


@pytest.fixture
def couchdb_options():
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return {"trace_configs": [trace]}


@pytest.fixture
def database_params():
    return {"q": 1}


@pytest.mark.asyncio
async def test_options(database):
    (method, url), = SENT  # the database's creation, through the options given
    assert method == "PUT"
    assert url.endswith(f"/{database.id}?q=1")
"""
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_the_examples_of_the_pytest_page_pass_as_a_users_test_module(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, couch_server: CouchServer
) -> None:
    monkeypatch.setenv("COUCHDB_URL", couch_server.url)
    monkeypatch.setenv("COUCHDB_USER", couch_server.user)
    monkeypatch.setenv("COUCHDB_PASSWORD", couch_server.password)
    tests = [
        block.code
        for block in blocks_of(DOCS / "pytest.md")
        if "tests/test_pytest_plugin.py" in block.reason
    ]
    assert len(tests) == 3  # the test, the fixture overrides, the test that skips
    pytester.makepyfile(test_user="\n\n".join(tests))

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")

    if couch_server.is_pouchdb:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(["*pouchdb-server exits on a _selector filter*"])
    else:
        result.assert_outcomes(passed=2)


def test_a_session_that_uses_no_fixture_of_the_plugin_imports_nothing_of_aiocouch(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    pytester.makepyfile(
        test_user="""
import sys


def test_plain(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("aiocouch")  # loaded, through pytest11
    assert not [name for name in sys.modules if name.split(".")[0] == "aiocouch"]
"""
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
