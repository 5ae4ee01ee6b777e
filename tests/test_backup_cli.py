"""The ``backup`` and ``restore`` commands (aiocouch.cli.backup_commands) against the test
server: a round trip, a corrupt file (exit 9, the line named, nothing written), a missing
database (exit 3), and credentials that never show in the output."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from aiocouch import CouchDB, NotFoundError
from aiocouch.cli.backup_commands import backup, restore
from aiocouch.database import Database


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click 8.1
    except TypeError:
        return CliRunner()  # click 8.2 and later keep stderr apart by themselves


async def run(command: click.Command, *args: str, password: str) -> Result:
    """Runs ``command ARGS`` in this process (in a thread: it runs its own event loop),
    with ``password`` in $COUCHDB_PASSWORD."""
    return await asyncio.to_thread(
        _runner().invoke,
        command,
        list(args),
        env={"COUCHDB_PASSWORD": password},
        catch_exceptions=False,
    )


def server_args(url: str, user: str) -> list[str]:
    return ["--url", url, "--user", user, "--quiet"]


async def fill(database: Database, count: int) -> None:
    async with database.create_docs() as bulk:
        for n in range(count):
            bulk.create(f"doc-{n:04d}", data={"n": n, "text": "São"})


async def ids(database: Database) -> list[str]:
    return [id async for id in database.akeys()]


async def test_backup_and_restore_commands_round_trip(
    database: Database,
    couchdb: CouchDB,
    server_url: str,
    admin_user: str,
    admin_password: str,
    tmp_path: Path,
) -> None:
    """``backup DB FILE`` then ``restore FILE DB --create``: every document comes back;
    each prints a JSON summary; the password shows nowhere."""
    await fill(database, 120)
    path = tmp_path / "db.jsonl.gz"
    options = server_args(server_url, admin_user)
    target = f"{database.id}_restored"

    backed_up = await run(backup, database.id, str(path), *options, password=admin_password)
    restored = await run(restore, str(path), target, "--create", *options, password=admin_password)

    try:
        assert backed_up.exit_code == 0, backed_up.stderr
        assert json.loads(backed_up.stdout)["documents"] == 120
        assert restored.exit_code == 0, restored.stderr
        assert json.loads(restored.stdout)["revisions"] == 120
        assert await ids(Database(couchdb, target)) == await ids(database)
        for result in (backed_up, restored):
            assert admin_password not in result.stdout + result.stderr
    finally:
        await Database(couchdb, target).delete()


async def test_restore_command_names_the_corrupt_line_and_writes_nothing(
    database: Database, server_url: str, admin_user: str, admin_password: str, tmp_path: Path
) -> None:
    """A corrupt backup: exit code 9, the line named on stderr, the target left empty."""
    good = tmp_path / "good.jsonl"
    await fill(database, 10)
    options = server_args(server_url, admin_user)
    assert (
        await run(backup, database.id, str(good), *options, password=admin_password)
    ).exit_code == 0
    lines = good.read_bytes().splitlines(keepends=True)
    lines[6] = lines[6][:-10] + b"\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(lines))
    await database.delete()
    await database._couchdb.create(database.id)

    result = await run(restore, str(bad), database.id, *options, password=admin_password)

    assert result.exit_code == 9
    assert "line 7" in result.stderr and "nothing written" in result.stderr
    assert await ids(database) == []


async def test_restore_command_into_a_missing_database_exits_3(
    database: Database,
    couchdb: CouchDB,
    server_url: str,
    admin_user: str,
    admin_password: str,
    tmp_path: Path,
) -> None:
    """Without --create, a database that does not exist: exit code 3, nothing created."""
    path = tmp_path / "db.jsonl"
    options = server_args(server_url, admin_user)
    assert (
        await run(backup, database.id, str(path), *options, password=admin_password)
    ).exit_code == 0

    result = await run(
        restore, str(path), f"{database.id}_missing", *options, password=admin_password
    )

    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("aiocouch: not found")
    with pytest.raises(NotFoundError):
        await couchdb[f"{database.id}_missing"]
