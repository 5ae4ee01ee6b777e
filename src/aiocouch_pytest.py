"""The pytest plugin of aiocouch: a ``couchdb`` client and a fresh ``database`` per test.

Registered through the ``pytest11`` entry point, so it is on wherever aiocouch and pytest
are installed (``pip install aiocouch[pytest]`` brings pytest and pytest-asyncio). It
lives outside the ``aiocouch`` package and imports nothing of it until a test asks for one
of its fixtures: a session that uses none of them pays for nothing but this module.

The server is the one of ``COUCHDB_URL`` (as an admin: ``COUCHDB_USER``,
``COUCHDB_PASSWORD``, default ``admin``/``password``), or a private pouchdb-server started
once per session when its program is named: ``--pouchdb-server=PATH`` on the command line
or ``pouchdb_server = PATH`` in the pytest configuration (a path relative to the
configuration file, or a name looked up on ``PATH``).

Fixtures:

- ``couchdb_server`` (session): the server, with ``url``, ``user``, ``password`` and
  ``is_pouchdb`` (see :class:`aiocouch.testing.CouchServer`);
- ``couchdb``: a :class:`aiocouch.CouchDB` client logged in as the admin, closed after the
  test; override ``couchdb_options`` (a dict) for more keyword arguments of ``CouchDB``;
- ``database``: a new, empty database with a unique name (``aiocouch_test_...``), deleted
  after the test; override ``database_params`` (a dict) for the keyword arguments of
  :meth:`aiocouch.CouchDB.create` (``{"partitioned": True}``, ``{"q": 1}``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aiocouch import CouchDB, Database
    from aiocouch.testing import CouchServer

_INI_NAME = "pouchdb_server"
_OPTION = "--pouchdb-server"
_SERVER = pytest.StashKey["CouchServer"]()

_NO_SERVER = (
    "the couchdb fixtures need a CouchDB server: set COUCHDB_URL (with COUCHDB_USER and "
    "COUCHDB_PASSWORD), or name a pouchdb-server program to start for the session with "
    f"{_OPTION}=PATH or '{_INI_NAME} = PATH' in the pytest configuration "
    "(npm install pouchdb-server: node_modules/.bin/pouchdb-server)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _INI_NAME,
        "aiocouch: the pouchdb-server program to start for the couchdb fixtures when "
        "COUCHDB_URL is not set (a path relative to this file, or a name on PATH)",
        default="",
    )
    group = parser.getgroup("aiocouch")
    group.addoption(
        _OPTION,
        dest="pouchdb_server",
        default=None,
        metavar="PATH",
        help="the pouchdb-server program to start for the couchdb fixtures when COUCHDB_URL "
        f"is not set (overrides the {_INI_NAME} ini option)",
    )


def _pouchdb_server_program(config: pytest.Config) -> str | None:
    """The pouchdb-server program configured, as a path or a name on PATH; None if none."""
    given: str | None = config.getoption("pouchdb_server")
    if given:
        return given if os.sep not in given else str(Path(given).resolve())
    configured = str(config.getini(_INI_NAME) or "").strip()
    if not configured:
        return None
    if os.sep not in configured:
        return configured
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return str((base / configured).resolve())


@pytest.fixture(scope="session")
def couchdb_server(pytestconfig: pytest.Config) -> Iterator[CouchServer]:
    """The server of this session: ``COUCHDB_URL``'s, or a pouchdb-server started for it."""
    from aiocouch.testing import LocalCouchServer, external_server_from_environment

    external = external_server_from_environment()
    if external is not None:
        yield external
        return
    program = _pouchdb_server_program(pytestconfig)
    if program is None:
        pytest.fail(_NO_SERVER, pytrace=False)
    with LocalCouchServer(executable=program) as server:
        pytestconfig.stash[_SERVER] = server
        try:
            yield server
        finally:
            del pytestconfig.stash[_SERVER]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fails a test during which the session's pouchdb-server exited, saying why it may have."""
    try:
        return (yield)
    finally:
        server = item.config.stash.get(_SERVER, None)
        if server is not None and not getattr(server, "running", True):
            pytest.fail(
                "pouchdb-server exited during this test; pouchdb-server 4.2.0 exits on a "
                "_changes filter other than _doc_ids and on PUT /{db} by a non-admin.\n"
                f"{server.output()}",  # type: ignore[attr-defined]
                pytrace=False,
            )


@pytest.fixture
def couchdb_options() -> dict[str, Any]:
    """More keyword arguments of the ``couchdb`` client's ``CouchDB(...)``: none here;
    override this fixture for others (``{"retry": False}``)."""
    return {}


@pytest.fixture
def database_params() -> dict[str, Any]:
    """The keyword arguments of the ``create()`` that makes ``database``: none here;
    override this fixture for others (``{"partitioned": True}``, ``{"q": 1}``)."""
    return {}


def _async_fixture(function: Any) -> Any:
    """An async fixture that works in pytest-asyncio's strict and auto modes alike."""
    try:
        import pytest_asyncio
    except ImportError:  # the pytest extra brings it
        pass
    else:
        return pytest_asyncio.fixture(function)

    @pytest.fixture(name=function.__name__)
    def missing(*args: Any, **kwargs: Any) -> None:
        pytest.fail(
            f"the {function.__name__} fixture needs pytest-asyncio: pip install 'aiocouch[pytest]'",
            pytrace=False,
        )

    return missing


@_async_fixture
async def couchdb(
    couchdb_server: CouchServer, couchdb_options: dict[str, Any]
) -> AsyncIterator[CouchDB]:
    """A client of the session's server, logged in as its admin, closed after the test."""
    from aiocouch import CouchDB

    async with CouchDB(
        couchdb_server.url,
        user=couchdb_server.user,
        password=couchdb_server.password,
        **couchdb_options,
    ) as client:
        yield client


@_async_fixture
async def database(
    couchdb: CouchDB, couchdb_server: CouchServer, database_params: dict[str, Any]
) -> AsyncIterator[Database]:
    """A new, empty database with a unique name, deleted after the test."""
    db = await couchdb.create(f"aiocouch_test_{uuid.uuid4().hex}", **database_params)
    try:
        yield db
    finally:
        await _delete(db, couchdb_server)


async def _delete(db: Database, server: CouchServer) -> None:
    """Deletes the test's database, with a client of its own if the test's one fails
    (a test may have closed it); warns if the database stays."""
    from aiocouch import CouchDB, Database, NotFoundError

    try:
        await db.delete()
        return
    except NotFoundError:
        return  # the test deleted it itself
    except Exception:
        pass  # tried again below, with a client of its own
    try:
        async with CouchDB(server.url, user=server.user, password=server.password) as client:
            with contextlib.suppress(NotFoundError):
                await Database(client, db.id).delete()
    except Exception as error:
        warnings.warn(
            f"aiocouch: the test database {db.id!r} could not be deleted: {error!r}",
            stacklevel=1,
        )
