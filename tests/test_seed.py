"""Every code snippet of aiocouch's "Documents" page, run verbatim against the test server.

Each snippet sits between ``# seed:begin`` and ``# seed:end``, copied character for
character from the page (only indented to fit in its test). The names a snippet needs
(``database``, ``doc``, ``SERVER_URL``, ``USER``, ``PASSWORD``) are bound first, and the
documents it reads are created beforehand. ``test_snippets_are_verbatim_copies_of_the_page``
checks that every snippet still matches the page and that no snippet of the page is missing.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import aiocouch
from aiocouch import CouchDB, Database, Document
from aiocouch.document import SecurityDocument

SEED_PAGE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "aiocouch-documents.txt"


async def given_document(database: Database, id: str, **fields: object) -> Document:
    document = Document(database, id, data=dict(fields))
    await document.save()
    return document


@pytest.fixture
async def my_database(couchdb: CouchDB) -> AsyncIterator[None]:
    """The context-manager examples use the fixed database "my_database": start and end clean."""
    with contextlib.suppress(aiocouch.NotFoundError):
        await (await couchdb["my_database"]).delete()
    yield
    with contextlib.suppress(aiocouch.NotFoundError):
        await (await couchdb["my_database"]).delete()


# --- Getting a Document instance ---


async def test_getting_a_document_instance(database: Database) -> None:
    await given_document(database, "butterfly", wings=4)
    await given_document(database, "wolpertinger", horns=2)

    # seed:begin
    butterfly_doc = await database["butterfly"]
    wolpertinger = await database.get("wolpertinger")
    # seed:end

    assert butterfly_doc.json == {"wings": 4}
    assert wolpertinger.json == {"horns": 2}
    assert butterfly_doc.exists and wolpertinger.exists


async def test_getting_a_document_instance_with_the_constructor(database: Database) -> None:
    # The page's snippet spells the id "butterly"; that document is created for it.
    await given_document(database, "butterly", wings=4)

    # seed:begin
    butterfly_doc = Document(database, "butterly")
    await butterfly_doc.fetch()
    # seed:end

    assert butterfly_doc.json == {"wings": 4}
    assert butterfly_doc.rev == (await database.get("butterly")).rev


# --- Creating new Documents ---


async def test_creating_a_new_document(database: Database) -> None:
    # seed:begin
    # get an Document instance
    doc = await database.create("new_doc")

    # set the document content
    doc["name"] = "The new document"

    # actually perform the request to save the document on the server
    await doc.save()
    # seed:end

    stored = await database.get("new_doc")
    assert stored.json == {"name": "The new document"}
    assert stored.rev == doc.rev


# --- Modify existing documents ---


async def test_modifying_an_existing_document(database: Database) -> None:
    await given_document(database, "existing_doc", name="The original document")

    # seed:begin
    # get an Document instance
    doc = await database["existing_doc"]

    # update the document content
    doc["name"] = "The modified document"

    # actually perform the request to save the modification to the server
    await doc.save()
    # seed:end

    stored = await database.get("existing_doc")
    assert stored.json == {"name": "The modified document"}
    assert stored.rev is not None and stored.rev.startswith("2-")


# --- Using Async Context Managers ---


@pytest.mark.usefixtures("my_database")
async def test_document_context_manager_example(
    server_url: str,
    admin_user: str,
    admin_password: str,
    couchdb: CouchDB,
    capsys: pytest.CaptureFixture[str],
) -> None:
    SERVER_URL, USER, PASSWORD = server_url, admin_user, admin_password

    # seed:begin
    from aiocouch import CouchDB
    from aiocouch.document import Document

    async with CouchDB(SERVER_URL, USER, PASSWORD) as client:
        # Create database on remote server (fetching it if it already exists)
        my_database = await client.create("my_database", exists_ok=True)

        # If document exists, it's fetched from the remote server
        async with Document(my_database, "secret_agents") as document:
            # Changes are made locally
            document["name"] = "James Bond"
            document["code"] = "007"
        # Upon exit from above context manager, document is saved remotely

        # Display the newly created document after fetching from remote server
        document = await my_database["secret_agents"]
        print(document)
    # seed:end

    printed = capsys.readouterr().out
    assert "James Bond" in printed
    assert "007" in printed
    stored = await (await couchdb["my_database"]).get("secret_agents")
    assert stored.json == {"name": "James Bond", "code": "007"}


@pytest.mark.usefixtures("my_database")
async def test_security_document_context_manager_example(
    server_url: str,
    admin_user: str,
    admin_password: str,
    couchdb: CouchDB,
    capsys: pytest.CaptureFixture[str],
) -> None:
    SERVER_URL, USER, PASSWORD = server_url, admin_user, admin_password

    # seed:begin
    from aiocouch import CouchDB
    from aiocouch.document import Document

    async with CouchDB(SERVER_URL, USER, PASSWORD) as client:
        # Create database on remote server (fetching it if it already exists)
        my_database = await client.create("my_database", exists_ok=True)

        async with SecurityDocument(my_database) as security_doc:
            # Give user 'bond' member access to 'my_database' database
            security_doc.add_member("bond")
            # Give user 'fleming' admin access to 'my_database' database
            security_doc.add_admin("fleming")
        # Upon exit from above context manager, document is saved remotely

        # Display the recent changes made to security document
        security_doc = await my_database.security()
        print(security_doc)
    # seed:end

    assert Document is aiocouch.Document  # the page imports it here without using it
    printed = capsys.readouterr().out
    assert "bond" in printed
    assert "fleming" in printed
    stored = await (await couchdb["my_database"]).security()
    assert stored.members == ["bond"]
    assert stored.admins == ["fleming"]


# --- Conflict handling ---


async def test_ignoring_a_conflict_keeps_the_existing_document(database: Database) -> None:
    await given_document(database, "agent", name="already here")
    doc = Document(database, "agent", data={"name": "latecomer"})

    # seed:begin
    with contextlib.suppress(aiocouch.ConflictError):
        await doc.save()
    # seed:end

    stored = await database.get("agent")
    assert stored.json == {"name": "already here"}


async def test_ignoring_conflicts_saves_a_document_without_conflict(database: Database) -> None:
    doc = Document(database, "agent", data={"name": "first"})

    # seed:begin
    with contextlib.suppress(aiocouch.ConflictError):
        await doc.save()
    # seed:end

    assert (await database.get("agent")).json == {"name": "first"}
    assert doc.exists


async def test_overriding_on_conflict_saves_the_local_content(database: Database) -> None:
    await given_document(database, "agent", name="already here")
    doc = Document(database, "agent", data={"name": "override"})

    # seed:begin
    try:
        await doc.save()
    except aiocouch.ConflictError:
        info = await doc.info()
        doc.rev = info["rev"]
        await doc.save()
    # seed:end

    stored = await database.get("agent")
    assert stored.json == {"name": "override"}
    assert stored.rev == doc.rev
    assert stored.rev is not None and stored.rev.startswith("2-")


async def test_overriding_on_conflict_saves_a_document_without_conflict(
    database: Database,
) -> None:
    doc = await given_document(database, "agent", name="v1")
    doc["name"] = "v2"

    # seed:begin
    try:
        await doc.save()
    except aiocouch.ConflictError:
        info = await doc.info()
        doc.rev = info["rev"]
        await doc.save()
    # seed:end

    assert (await database.get("agent")).json == {"name": "v2"}


# --- the snippets are the page's ---

_SNIPPET = re.compile(r"^( *)# seed:begin\n(.*?)^\1# seed:end$", re.MULTILINE | re.DOTALL)
# Lines of the page (before its API reference) that are code: comments, awaits, blocks,
# imports, assignments and calls.
_CODE_LINE = re.compile(
    r"^\s*(#|await |async with |with |try:|except |from |import |[\w.]+(\[.*\])? = |[\w.]+\(.*\)$)"
)


def snippets_of_this_module() -> list[str]:
    source = inspect.getsource(sys.modules[__name__])
    return [textwrap.dedent(match.group(2)) for match in _SNIPPET.finditer(source)]


def test_snippets_are_verbatim_copies_of_the_page() -> None:
    if not SEED_PAGE.exists():
        pytest.skip(f"the seed page {SEED_PAGE} is not available here")
    page = SEED_PAGE.read_text(encoding="utf-8")
    snippets = snippets_of_this_module()
    assert len(snippets) >= 8

    for snippet in snippets:
        assert snippet.rstrip("\n") in page, f"not on the page:\n{snippet}"

    guide = page.split("\nReference\n", 1)[0]
    code_lines = [line for line in guide.splitlines() if _CODE_LINE.match(line)]
    covered = {line for snippet in snippets for line in snippet.splitlines()}
    assert len(code_lines) > 30
    assert [line for line in code_lines if line not in covered] == []
