"""SecurityDocument: the ``_security`` object of a database (API.md section 7).

A new database's ``_security`` is admin-only on CouchDB 3.4 but ``{}`` on pouchdb-server
(DIFF 3.9); the tests assert CouchDB's roles and mark pouchdb-server's difference.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

import aiocouch
import aiocouch.document
from aiocouch import (
    ConflictError,
    CouchDB,
    Database,
    ForbiddenError,
    SecurityDocument,
    UnauthorizedError,
)
from testserver.request_counter import RequestCounter


def security_path(database: Database) -> str:
    return f"/{database.id}/_security"


def test_security_document_is_exported_from_the_package_and_the_document_module() -> None:
    assert aiocouch.SecurityDocument is aiocouch.document.SecurityDocument
    assert issubclass(SecurityDocument, aiocouch.Document)


async def test_security_sends_one_get_and_returns_a_clean_document(
    database: Database, request_counter: RequestCounter
) -> None:
    security = await database.security()

    assert isinstance(security, SecurityDocument)
    assert request_counter.requests == [("GET", security_path(database))]
    await security.save()
    assert request_counter.count == 1  # nothing changed, nothing sent


async def test_new_database_has_no_member_or_admin_names(database: Database) -> None:
    security = await database.security()

    assert security.members is None
    assert security.admins is None
    assert "_id" not in security


@pytest.mark.couchdb_only("a new pouchdb-server database has an empty _security (DIFF 3.9)")
async def test_new_couchdb_database_is_admin_only(database: Database) -> None:
    security = await database.security()

    assert security.member_roles == ["_admin"]
    assert security.admin_roles == ["_admin"]


async def test_security_document_never_exists_and_has_no_data_or_json(
    database: Database,
) -> None:
    security = await database.security()
    security.add_member("bond")
    await security.save()

    for document in (security, await database.security(), SecurityDocument(database)):
        assert document.exists is False
        assert document.data is None
        assert document.json == {}
        assert document.rev is None


def test_construction_with_data_keeps_exactly_the_security_object() -> None:
    data = {"members": {"names": ["bond"], "roles": []}}
    security = SecurityDocument(None, data=data)

    assert dict(security) == {"members": {"names": ["bond"], "roles": []}}
    assert security.members == ["bond"]
    assert security.member_roles == []
    assert security.admins is None
    assert security.admin_roles is None


def test_mutators_build_the_nested_structure_without_duplicates() -> None:
    security = SecurityDocument(None)

    security.add_member("bond")
    security.add_member("bond")
    security.add_member_role("agents")
    security.add_admin("fleming")
    security.add_admin_role("authors")
    security.add_admin_role("authors")

    assert security.members == ["bond"]
    assert security.member_roles == ["agents"]
    assert security.admins == ["fleming"]
    assert security.admin_roles == ["authors"]
    assert dict(security) == {
        "members": {"names": ["bond"], "roles": ["agents"]},
        "admins": {"names": ["fleming"], "roles": ["authors"]},
    }


def test_removing_the_last_entry_leaves_an_empty_list() -> None:
    security = SecurityDocument(None)
    security.add_member("bond")
    security.add_member_role("agents")
    security.add_admin("fleming")
    security.add_admin_role("authors")

    security.remove_member("bond")
    security.remove_member_role("agents")
    security.remove_admin("fleming")
    security.remove_admin_role("authors")

    assert security.members == []
    assert security.member_roles == []
    assert security.admins == []
    assert security.admin_roles == []


@pytest.mark.parametrize(
    "remove",
    [
        SecurityDocument.remove_member,
        SecurityDocument.remove_member_role,
        SecurityDocument.remove_admin,
        SecurityDocument.remove_admin_role,
    ],
)
def test_removing_an_absent_entry_raises_key_error_naming_it(remove: object) -> None:
    security = SecurityDocument(None)
    security.add_member("someone_else")
    security.add_admin("someone_else")

    with pytest.raises(KeyError, match="bond"):
        remove(security, "bond")  # type: ignore[operator]

    assert dict(security) == {
        "members": {"names": ["someone_else"]},
        "admins": {"names": ["someone_else"]},
    }


async def test_mutators_send_no_request(
    database: Database, request_counter: RequestCounter
) -> None:
    security = SecurityDocument(database)
    security.add_member("bond")
    security.add_admin("fleming")
    security.remove_member("bond")
    _ = (security.members, security.admins, security.member_roles, security.admin_roles)

    assert request_counter.count == 0


async def test_save_sends_one_put_only_when_changed(
    database: Database, request_counter: RequestCounter, is_pouchdb: bool
) -> None:
    security = await database.security()
    request_counter.reset()

    security.add_member("bond")
    security.add_admin_role("authors")
    assert await security.save() is None
    await security.save()

    assert request_counter.requests == [("PUT", security_path(database))]
    stored = await database.security()
    assert stored.members == ["bond"]
    # A new CouchDB database is admin-only, so its _security already lists the _admin
    # role (transcript 3.9); pouchdb-server's is empty (DIFF 3.9).
    assert stored.admin_roles == (["authors"] if is_pouchdb else ["_admin", "authors"])


async def test_removals_are_saved(database: Database) -> None:
    security = await database.security()
    security.add_member("bond")
    security.add_member("moneypenny")
    await security.save()

    security.remove_member("bond")
    await security.save()

    assert (await database.security()).members == ["moneypenny"]


async def test_fetch_of_never_fetched_security_document_raises_conflict_without_request(
    database: Database, request_counter: RequestCounter
) -> None:
    security = SecurityDocument(database)

    with pytest.raises(ConflictError):
        await security.fetch()

    assert request_counter.count == 0


async def test_fetch_with_discard_changes_loads_the_security_object(
    database: Database, request_counter: RequestCounter
) -> None:
    stored = await database.security()
    stored.add_member("bond")
    await stored.save()
    request_counter.reset()

    security = SecurityDocument(database)
    await security.fetch(discard_changes=True)

    assert request_counter.requests == [("GET", security_path(database))]
    assert security.members == ["bond"]
    assert "_id" not in security


async def test_context_manager_fetches_and_saves(
    database: Database, request_counter: RequestCounter
) -> None:
    async with SecurityDocument(database) as security:
        security.add_member("bond")
        security.add_admin("fleming")

    assert request_counter.requests == [
        ("GET", security_path(database)),
        ("PUT", security_path(database)),
    ]
    stored = await database.security()
    assert stored.members == ["bond"]
    assert stored.admins == ["fleming"]


async def test_context_manager_keeps_existing_entries(database: Database) -> None:
    async with SecurityDocument(database) as security:
        security.add_member("bond")

    async with SecurityDocument(database) as security:
        assert security.members == ["bond"]
        security.add_member("moneypenny")

    assert (await database.security()).members == ["bond", "moneypenny"]


async def test_context_manager_without_changes_sends_only_the_fetch(
    database: Database, request_counter: RequestCounter
) -> None:
    async with SecurityDocument(database):
        pass

    assert request_counter.requests == [("GET", security_path(database))]


async def test_context_manager_sends_nothing_when_the_block_raises(
    database: Database, request_counter: RequestCounter
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with SecurityDocument(database) as security:
            security.add_member("bond")
            raise RuntimeError("boom")

    assert request_counter.requests == [("GET", security_path(database))]
    assert (await database.security()).members is None


async def test_failed_save_raises_and_stays_dirty(
    server_url: str, throwaway_user: tuple[str, str], database: Database
) -> None:
    counter = RequestCounter()
    async with CouchDB(
        server_url,
        user=throwaway_user[0],
        password="wrong-password-3c1d",
        trace_configs=counter.trace_configs,
    ) as intruder:
        security = SecurityDocument(
            Database(intruder, database.id), data={"admins": {"names": ["intruder"]}}
        )

        with pytest.raises(UnauthorizedError) as excinfo:
            await security.save()
        assert isinstance(excinfo.value, PermissionError)
        assert excinfo.value.status == 401

        with pytest.raises(UnauthorizedError):
            await security.save()  # still dirty, so it is sent again

    assert counter.requests == [("PUT", security_path(database))] * 2
    assert (await database.security()).admins is None


@pytest.fixture
async def member_credentials(
    couchdb: CouchDB, database: Database
) -> AsyncIterator[tuple[str, str]]:
    """A ``_users`` account that is a member (not an admin) of ``database``."""
    name, password = f"member_{uuid.uuid4().hex[:8]}", "member-password"
    user_path = f"/_users/org.couchdb.user:{name}"
    _, created = await couchdb._server._put(
        user_path, data={"name": name, "password": password, "roles": [], "type": "user"}
    )
    async with SecurityDocument(database) as security:
        security.add_member(name)
    try:
        yield name, password
    finally:
        await couchdb._server._delete(user_path, params={"rev": created["rev"]})


async def test_non_admin_writer_is_refused_with_a_permission_error(
    server_url: str, database: Database, member_credentials: tuple[str, str], is_pouchdb: bool
) -> None:
    name, password = member_credentials
    async with CouchDB(server_url, user=name, password=password) as member:
        security = await Database(member, database.id).security()
        assert security.members == [name]
        security.add_admin(name)

        # CouchDB answers 500 (no_majority) and pouchdb-server 401 (DIFF 3.21)
        expected = UnauthorizedError if is_pouchdb else ForbiddenError
        with pytest.raises(expected) as excinfo:
            await security.save()

    assert isinstance(excinfo.value, PermissionError)
    assert (await database.security()).admins is None
