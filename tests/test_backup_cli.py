"""``aiocouch backup`` and ``aiocouch restore`` (commands of the ``aiocouch`` group) against
the test server: a round trip, a corrupt file (exit 9, the line named, nothing written), a
missing database (exit 3), a finished backup not overwritten (exit 2), and credentials that
never show in the output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aiocouch import CouchDB, NotFoundError
from aiocouch.cli.main import cli
from aiocouch.database import Database
from testserver.scripted_server import ReceivedRequest, ScriptedConnection, ScriptedServer

SCRIPT = Path(sys.executable).with_name("aiocouch")
"""The console script that `pip install aiocouch[cli]` puts beside the interpreter."""
WAIT = 60.0
"""Seconds any wait on the subprocess may last at most."""


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click 8.1
    except TypeError:
        return CliRunner()  # click 8.2 and later keep stderr apart by themselves


async def run(*args: str, password: str) -> Result:
    """Runs ``aiocouch ARGS`` in this process (in a thread: it runs its own event loop),
    with ``password`` in $COUCHDB_PASSWORD."""
    return await asyncio.to_thread(
        _runner().invoke,
        cli,
        list(args),
        env={"COUCHDB_PASSWORD": password},
        catch_exceptions=False,
    )


def server_args(url: str, user: str) -> list[str]:
    """The group's options, before the command: the server, its admin, no progress."""
    return ["--url", url, "--user", user, "--quiet"]


async def fill(database: Database, count: int) -> None:
    async with database.create_docs() as bulk:
        for n in range(count):
            bulk.create(f"doc-{n:04d}", data={"n": n, "text": "São"})


async def fill_more(database: Database) -> None:
    """Adds one more document, ``later``."""
    async with database.create_docs() as bulk:
        bulk.create("later", data={"n": 99})


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

    backed_up = await run(*options, "backup", database.id, str(path), password=admin_password)
    restored = await run(
        *options, "restore", str(path), target, "--create", password=admin_password
    )

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
        await run(*options, "backup", database.id, str(good), password=admin_password)
    ).exit_code == 0
    lines = good.read_bytes().splitlines(keepends=True)
    lines[6] = lines[6][:-10] + b"\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"".join(lines))
    await database.delete()
    await database._couchdb.create(database.id)

    result = await run(*options, "restore", str(bad), database.id, password=admin_password)

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
        await run(*options, "backup", database.id, str(path), password=admin_password)
    ).exit_code == 0

    result = await run(
        *options, "restore", str(path), f"{database.id}_missing", password=admin_password
    )

    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("aiocouch: not found")
    with pytest.raises(NotFoundError):
        await couchdb[f"{database.id}_missing"]


async def test_backup_command_keeps_a_finished_backup_unless_told_to_overwrite(
    database: Database, server_url: str, admin_user: str, admin_password: str, tmp_path: Path
) -> None:
    """A second backup into a finished backup's FILE: exit code 2 naming FILE, FILE kept;
    with --overwrite it is replaced."""
    await fill(database, 5)
    path = tmp_path / "db.jsonl"
    options = server_args(server_url, admin_user)
    assert (
        await run(*options, "backup", database.id, str(path), password=admin_password)
    ).exit_code == 0
    finished = path.read_bytes()
    await fill_more(database)

    refused = await run(*options, "backup", database.id, str(path), password=admin_password)
    replaced = await run(
        *options, "backup", database.id, str(path), "--overwrite", password=admin_password
    )

    assert refused.exit_code == 2, refused.stderr
    assert refused.stderr.startswith("aiocouch: invalid input: ") and str(path) in refused.stderr
    assert replaced.exit_code == 0, replaced.stderr
    assert json.loads(replaced.stdout)["documents"] == 6
    assert path.read_bytes() != finished


async def test_restore_command_with_refused_revisions_exits_1_naming_the_first(
    database: Database,
    couchdb: CouchDB,
    server_url: str,
    admin_user: str,
    admin_password: str,
    tmp_path: Path,
) -> None:
    """The target's validation function refuses one document: exit code 1, the message
    names it, every other document is written."""
    await fill(database, 5)
    path = tmp_path / "db.jsonl"
    options = server_args(server_url, admin_user)
    assert (
        await run(*options, "backup", database.id, str(path), password=admin_password)
    ).exit_code == 0
    target = await couchdb.create(f"{database.id}_guarded")
    try:
        await target.save_revisions(
            [
                {
                    "_id": "_design/guard",
                    "_rev": "1-0123456789abcdef0123456789abcdef",
                    "validate_doc_update": "function (doc) { if (doc.n === 3) "
                    "{ throw ({forbidden: 'no threes'}); } }",
                }
            ]
        )

        result = await run(*options, "restore", str(path), target.id, password=admin_password)

        assert result.exit_code == 1, result.stderr
        assert result.stderr.startswith("aiocouch: restore incomplete: the server refused 1 ")
        assert "'doc-0003'" in result.stderr
        assert [id for id in await ids(target) if not id.startswith("_design/")] == [
            f"doc-{n:04d}" for n in (0, 1, 2, 4)
        ]
    finally:
        await target.delete()


async def test_backup_command_stopped_with_ctrl_c_exits_130_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    """Ctrl-C while the server has not answered yet: exit code 130 and a message saying
    that running the same command again continues."""
    asked = asyncio.Event()

    async def silent(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        asked.set()
        await asyncio.Event().wait()  # reads the request, never answers

    async with ScriptedServer(silent) as server:
        env = {**os.environ, "COUCHDB_URL": server.url}
        for name in ("COUCHDB_USER", "COUCHDB_PASSWORD"):
            env.pop(name, None)
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "--quiet",
            "backup",
            "db",
            str(tmp_path / "db.jsonl"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            await asyncio.wait_for(asked.wait(), WAIT)
        finally:
            process.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(process.communicate(), WAIT)

    assert process.returncode == 130
    assert err.decode() == "aiocouch: interrupted: run the same command again to continue\n"
    assert out == b""
