"""The ``aiocouch`` command (aiocouch.cli) against the test server.

Most tests run the click group in this process (click's CliRunner, in a thread, since each
command runs its own event loop); the tests of what only a real process shows (the
console script, Ctrl-C, a closed pipe, progress on a pipe, the password that never shows)
run the installed ``aiocouch`` script as a subprocess. Protocol-level failures (a stalled
server, 403, 500) are played by a ScriptedServer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from aiocouch import CouchDB, Database, Document, NotFoundError
from aiocouch.backup import BackupFormatError
from aiocouch.cli._errors import ExitCode, classify
from aiocouch.cli._progress import Progress
from aiocouch.cli.main import cli
from aiocouch.exception import ForbiddenError, InternalServerError
from aiocouch.replication import ReplicationDocument
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    continuous_feed,
    error_answer,
    http_response,
    in_turn,
    query,
)

SCRIPT = Path(sys.executable).with_name("aiocouch")
"""The console script that `pip install aiocouch[cli]` puts beside the interpreter."""
WAIT = 60.0
"""Seconds any wait on a subprocess or the server may last at most."""
SECRET = f"pw-{uuid.uuid4().hex}"
UNKNOWN_USER = f"aiocouch_nobody_{uuid.uuid4().hex[:8]}"
"""Never the admin's name with a wrong password: CouchDB would lock the admin out."""


# --- helpers ---


@pytest.fixture
def env(server_url: str, admin_user: str, admin_password: str) -> dict[str, str]:
    """The environment that points the command at the test server as its admin."""
    return {
        "COUCHDB_URL": server_url,
        "COUCHDB_USER": admin_user,
        "COUCHDB_PASSWORD": admin_password,
    }


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click 8.1
    except TypeError:
        return CliRunner()  # click 8.2 and later keep stderr apart by themselves


async def run_cli(env: dict[str, str | None], *args: str, input: str | None = None) -> Result:
    """Runs ``aiocouch ARGS`` in this process (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(
        _runner().invoke, cli, list(args), env=env, input=input, catch_exceptions=False
    )


def lines_of(result: Result) -> list[Any]:
    return [json.loads(line) for line in result.stdout.splitlines()]


async def run_script(
    env: dict[str, str], *args: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Runs the installed ``aiocouch`` script; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), WAIT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def fill(database: Database, count: int) -> None:
    """Writes ``count`` documents ``doc-<i>`` holding ``{"n": i}``."""
    async with database.create_docs([f"doc-{i:04d}" for i in range(count)]) as bulk:
        async for document in bulk:
            document["n"] = int(document.id.partition("-")[2])
    assert bulk.ok is not None and len(bulk.ok) == count


@pytest.fixture
async def scratch_names(couchdb: CouchDB) -> AsyncIterator[Callable[[], str]]:
    """Makes unique database names; those databases are deleted after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"aiocouch_cli_{uuid.uuid4().hex}")
        return made[-1]

    yield make
    for name in made:
        with contextlib.suppress(NotFoundError):
            await Database(couchdb, name).delete()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- the server and its databases ---


async def test_info_prints_the_servers_welcome_as_one_json_object(env: dict[str, str]) -> None:
    result = await run_cli(env, "info")
    assert result.exit_code == 0, result.stderr
    (welcome,) = lines_of(result)
    assert isinstance(welcome["version"], str) and welcome["version"]


async def test_dbs_prints_one_database_name_a_line(env: dict[str, str], database: Database) -> None:
    result = await run_cli(env, "dbs")
    assert result.exit_code == 0, result.stderr
    names = lines_of(result)
    assert database.id in names
    assert all(isinstance(name, str) for name in names)


async def test_db_create_info_and_delete(
    env: dict[str, str], couchdb: CouchDB, scratch_names: Callable[[], str]
) -> None:
    name = scratch_names()
    created = await run_cli(env, "db", "create", name)
    assert created.exit_code == 0, created.stderr
    assert lines_of(created) == [{"ok": True, "db": name}]
    assert (await Database(couchdb, name).info())["db_name"] == name

    info = await run_cli(env, "db", "info", name)
    assert info.exit_code == 0, info.stderr
    assert lines_of(info)[0]["db_name"] == name
    assert lines_of(info)[0]["doc_count"] == 0

    again = await run_cli(env, "db", "create", name)
    assert again.exit_code == ExitCode.CONFLICT
    assert again.stdout == ""
    assert again.stderr.startswith("aiocouch: conflict:")
    assert (await run_cli(env, "db", "create", name, "--exists-ok")).exit_code == 0

    deleted = await run_cli(env, "db", "delete", name)
    assert deleted.exit_code == 0, deleted.stderr
    assert lines_of(deleted) == [{"ok": True, "db": name}]
    with pytest.raises(NotFoundError):
        await Database(couchdb, name).info()


async def test_a_missing_database_exits_with_not_found_naming_it(
    env: dict[str, str], scratch_names: Callable[[], str]
) -> None:
    name = scratch_names()
    for args in (("db", "info", name), ("get", name, "x"), ("changes", name)):
        result = await run_cli(env, *args)
        assert result.exit_code == ExitCode.NOT_FOUND == 3, args
        assert result.stdout == ""
        assert result.stderr.startswith("aiocouch: not found:")
        assert name in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.couchdb_only(
    "pouchdb-server answers DELETE of a missing database 200 (transcript 3.36)"
)
async def test_deleting_a_missing_database_exits_with_not_found(
    env: dict[str, str], scratch_names: Callable[[], str]
) -> None:
    name = scratch_names()
    result = await run_cli(env, "db", "delete", name)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert name in result.stderr


# --- documents ---


async def test_get_prints_the_document_with_id_and_rev(
    env: dict[str, str], database: Database
) -> None:
    document = Document(database, "one", data={"name": "São Paulo", "n": 1})
    await document.save()
    result = await run_cli(env, "get", database.id, "one")
    assert result.exit_code == 0, result.stderr
    assert lines_of(result) == [{"_id": "one", "_rev": document.rev, "name": "São Paulo", "n": 1}]

    missing = await run_cli(env, "get", database.id, "nope")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "nope" in missing.stderr


async def test_put_writes_a_document_from_stdin_or_a_file_and_updates_it_with_its_rev(
    env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    created = await run_cli(env, "put", database.id, "doc", input='{"n": 1, "text": "é"}')
    assert created.exit_code == 0, created.stderr
    (answer,) = lines_of(created)
    assert answer["ok"] is True and answer["id"] == "doc"
    stored = await database.get("doc")
    assert (stored.rev, stored["n"], stored["text"]) == (answer["rev"], 1, "é")

    file = tmp_path / "doc.json"
    file.write_text(json.dumps({"_id": "doc", "_rev": stored.rev, "n": 2}))
    updated = await run_cli(env, "put", database.id, "doc", str(file))
    assert updated.exit_code == 0, updated.stderr
    assert (await database.get("doc"))["n"] == 2

    stale = await run_cli(env, "put", database.id, "doc", str(file))
    assert stale.exit_code == ExitCode.CONFLICT
    assert stale.stderr.startswith("aiocouch: conflict:")
    assert (await database.get("doc"))["n"] == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"n": ', "no valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"_id": "other"}', "is not the ID"),
    ],
)
async def test_put_refuses_invalid_input_before_writing(
    env: dict[str, str], database: Database, body: str, problem: str
) -> None:
    result = await run_cli(env, "put", database.id, "doc", input=body)
    assert result.exit_code == ExitCode.INVALID_INPUT == 2
    assert problem in result.stderr
    assert (await database.info())["doc_count"] == 0


async def test_put_of_a_missing_file_names_it(env: dict[str, str], database: Database) -> None:
    result = await run_cli(env, "put", database.id, "doc", "/nonexistent/doc.json")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "/nonexistent/doc.json" in result.stderr


async def test_find_prints_the_matching_documents_one_a_line(
    env: dict[str, str], database: Database
) -> None:
    await fill(database, 12)
    result = await run_cli(env, "find", database.id, '{"n": {"$gte": 9}}')
    assert result.exit_code == 0, result.stderr
    found = lines_of(result)
    assert sorted(document["n"] for document in found) == [9, 10, 11]
    assert all(document["_id"] == f"doc-{document['n']:04d}" for document in found)

    limited = await run_cli(env, "find", database.id, '{"n": {"$gte": 0}}', "--limit", "5")
    assert limited.exit_code == 0, limited.stderr
    assert len(lines_of(limited)) == 5


@pytest.mark.parametrize("selector", ['{"n": ', "[1]"])
async def test_find_refuses_a_selector_that_is_no_json_object(
    env: dict[str, str], database: Database, selector: str
) -> None:
    result = await run_cli(env, "find", database.id, selector)
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "SELECTOR" in result.stderr
    assert result.stdout == ""


async def test_quiet_find_shows_no_server_warning(env: dict[str, str], database: Database) -> None:
    await fill(database, 2)
    loud = await run_cli(env, "find", database.id, '{"n": 1}')
    quiet = await run_cli(env, "--quiet", "find", database.id, '{"n": 1}')
    assert loud.stdout == quiet.stdout != ""
    # both servers warn that no index matches this selector
    assert "aiocouch: warning:" in loud.stderr
    assert quiet.stderr == ""


@pytest.fixture
async def counted_view(database: Database) -> Database:
    """The database with 10 documents and the view ``cli/by_n`` (emits n, reduce _count)."""
    await fill(database, 10)
    design = await database.design_doc("cli")
    await design.create_view(
        "by_n",
        map_function="function (doc) { emit(doc.n, null); }",
        reduce_function="_count",
    )
    return database


async def test_view_prints_rows_one_a_line_with_json_options(
    env: dict[str, str], counted_view: Database
) -> None:
    db = counted_view.id
    rows = await run_cli(env, "view", db, "cli", "by_n", "reduce=false", "startkey=7")
    assert rows.exit_code == 0, rows.stderr
    assert [row["key"] for row in lines_of(rows)] == [7, 8, 9]
    assert lines_of(rows)[0]["id"] == "doc-0007"

    newest = await run_cli(
        env, "view", db, "_design/cli", "by_n", "reduce=false", "descending=true", "limit=2"
    )
    assert [row["key"] for row in lines_of(newest)] == [9, 8]

    with_docs = await run_cli(
        env, "view", db, "cli", "by_n", "reduce=false", "key=3", "include_docs=true"
    )
    assert [row["doc"]["n"] for row in lines_of(with_docs)] == [3]

    reduced = await run_cli(env, "view", db, "cli", "by_n")
    assert lines_of(reduced) == [{"key": None, "value": 10}]


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ("colour=red", "unknown view option 'colour'"),
        ("limit", "name=value"),
        ("limit=-1", "invalid view options: limit"),
    ],
)
async def test_view_refuses_bad_options_before_any_request(
    env: dict[str, str], option: str, problem: str
) -> None:
    # a server that is not there: the refusal must come before any request
    unreachable = {**env, "COUCHDB_URL": f"http://127.0.0.1:{free_port()}"}
    result = await run_cli(unreachable, "view", "db", "cli", "by_n", option)
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert problem in result.stderr


async def test_a_missing_view_exits_with_not_found(
    env: dict[str, str], counted_view: Database
) -> None:
    result = await run_cli(env, "view", counted_view.id, "cli", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.startswith("aiocouch: not found:")


# --- changes ---


@pytest.fixture
def database_params() -> dict[str, Any]:
    """One shard, so that the changes come in the order they were written."""
    return {"q": 1}


async def test_changes_prints_each_change_once_as_json_lines(
    env: dict[str, str], database: Database
) -> None:
    await fill(database, 5)
    gone = await database.get("doc-0004")
    await gone.delete()

    result = await run_cli(env, "changes", database.id)
    assert result.exit_code == 0, result.stderr
    rows = lines_of(result)
    # The server numbers the documents of one bulk write in any order (pouchdb-server
    # too, under load), so the feed's order is not that of their ids.
    ids = [row["id"] for row in rows]
    assert sorted(ids) == [f"doc-{i:04d}" for i in range(5)]
    assert [row.get("deleted") is True for row in rows] == [doc_id == "doc-0004" for doc_id in ids]
    assert all("seq" in row and row["changes"][0]["rev"] for row in rows)

    after = await run_cli(env, "changes", database.id, "--since", str(rows[1]["seq"]))
    assert sorted(row["id"] for row in lines_of(after)) == sorted(ids[2:])

    chosen = await run_cli(
        env, "changes", database.id, "--doc-id", "doc-0001", "--doc-id", "doc-0003",
        "--include-docs",
    )  # fmt: skip
    # (in the feed's order, which for one bulk write is not that of the ids: see above)
    assert sorted((row["id"], row["doc"]["n"]) for row in lines_of(chosen)) == [
        ("doc-0001", 1),
        ("doc-0003", 3),
    ]

    limited = await run_cli(env, "changes", database.id, "--limit", "2")
    assert len(lines_of(limited)) == 2


async def test_changes_follow_prints_new_changes_until_ctrl_c(
    env: dict[str, str], database: Database
) -> None:
    await fill(database, 2)
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "changes",
        database.id,
        "--follow",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        seen = [json.loads(await asyncio.wait_for(process.stdout.readline(), WAIT))]
        seen.append(json.loads(await asyncio.wait_for(process.stdout.readline(), WAIT)))
        # (the documents of one bulk write come in any order)
        assert sorted(row["id"] for row in seen) == ["doc-0000", "doc-0001"]
        # a change made while it follows arrives, as its own line, at once
        await Document(database, "later", data={"n": 99}).save()
        late = json.loads(await asyncio.wait_for(process.stdout.readline(), WAIT))
        assert late["id"] == "later"
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), WAIT)
    assert code == ExitCode.INTERRUPTED == 130
    assert (await process.stderr.read()).decode() == "aiocouch: interrupted\n"


def _change(n: int) -> dict[str, Any]:
    return {"seq": f"{n}-g1AAAA", "id": f"c{n}", "changes": [{"rev": f"1-{n}"}]}


async def test_changes_follow_resumes_by_itself_after_a_dropped_connection(
    env: dict[str, str],
) -> None:
    printed_two = asyncio.Event()
    feeds = in_turn(
        continuous_feed(_change(1), _change(2), then="reset", handed_out=printed_two),
        continuous_feed(_change(3)),
    )
    async with ScriptedServer(feeds) as server:
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "changes",
            "somedb",
            "--follow",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env, "COUCHDB_URL": server.url},
        )
        assert process.stdout is not None and process.stderr is not None
        try:
            lines = [await asyncio.wait_for(process.stdout.readline(), WAIT) for _ in range(2)]
            printed_two.set()
            lines.append(await asyncio.wait_for(process.stdout.readline(), WAIT))
        finally:
            process.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(process.wait(), WAIT)
        first, resumed = server.requests[:2]
    assert [json.loads(line)["id"] for line in lines] == ["c1", "c2", "c3"]
    assert "since" not in query(first)
    assert query(resumed)["since"] == "2-g1AAAA"
    assert code == ExitCode.INTERRUPTED


async def test_changes_follow_refuses_limit(env: dict[str, str], database: Database) -> None:
    result = await run_cli(env, "changes", database.id, "--follow", "--limit", "3")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "--limit" in result.stderr


async def test_a_reader_that_stops_early_ends_the_command_quietly(
    env: dict[str, str], database: Database
) -> None:
    await fill(database, 3000)  # far more than a pipe holds
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "changes",
        database.id,
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    os.close(write_end)
    assert process.stderr is not None
    with os.fdopen(read_end, "rb") as reader:  # as `| head -1` does: one line, then closed
        first = await asyncio.wait_for(asyncio.to_thread(reader.readline), WAIT)
    # (the documents of one bulk write come in any order)
    assert json.loads(first)["id"] in {f"doc-{i:04d}" for i in range(3000)}
    code = await asyncio.wait_for(process.wait(), WAIT)
    assert code == 0
    assert (await process.stderr.read()) == b""


# --- replication ---


async def test_replicate_copies_the_documents_shows_progress_and_reports_as_json(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 20)
    target = scratch_names()
    code, out, err = await run_script(env, "replicate", database.id, target, "--create-target")
    assert code == 0, err
    report = json.loads(out)
    assert report["state"] == "completed"
    assert report["docs_written"] == 20
    assert report["doc_write_failures"] == 0
    # not a terminal: plain progress lines, the last one saying it is done
    progress = err.splitlines()
    assert progress and progress[-1].startswith(f"replicate {database.id} -> {target}: 20")
    assert "done after" in progress[-1]
    assert (await Database(couchdb, target).info())["doc_count"] == 20
    # a completed one-shot replication leaves no _replicator document behind
    with pytest.raises(NotFoundError):
        await Database(couchdb, "_replicator").get(report["id"])


async def test_quiet_replicate_prints_only_the_report(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 3)
    target = scratch_names()
    code, out, err = await run_script(
        env, "--quiet", "replicate", database.id, target, "--create-target"
    )
    assert code == 0, err
    assert err == ""
    assert json.loads(out)["docs_written"] == 3


async def test_replicating_a_missing_database_exits_with_not_found_and_starts_nothing(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    missing, target = scratch_names(), scratch_names()
    before = (await Database(couchdb, "_replicator").info())["doc_count"]
    from_missing = await run_cli(env, "replicate", missing, database.id)
    assert from_missing.exit_code == ExitCode.NOT_FOUND
    assert missing in from_missing.stderr
    to_missing = await run_cli(env, "replicate", database.id, target)
    assert to_missing.exit_code == ExitCode.NOT_FOUND
    assert target in to_missing.stderr
    assert (await Database(couchdb, "_replicator").info())["doc_count"] == before


async def test_replicate_no_wait_prints_the_document_id_at_once(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 4)
    target = scratch_names()
    result = await run_cli(env, "replicate", database.id, target, "--create-target", "--no-wait")
    assert result.exit_code == 0, result.stderr
    (started,) = lines_of(result)
    assert started["replicator_db"] == "_replicator"
    job = couchdb.replications.document(started["id"])
    try:
        final = await asyncio.wait_for(job.wait(max_interval=0.5), WAIT)
        assert final.state == "completed"
        assert final.docs_written == 4
    finally:
        await job.cancel()


@pytest.mark.couchdb_only(
    "pouchdb-server has no _scheduler and exits when the _replicator document of a running "
    "replication is deleted (transcript 14.99-14.103)"
)
async def test_replicate_continuous_wait_returns_once_caught_up_and_keeps_running(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 5)
    target = scratch_names()
    code, out, err = await run_script(
        env, "replicate", database.id, target, "--create-target", "--continuous", "--wait"
    )
    assert code == 0, err
    report = json.loads(out)
    job = couchdb.replications.document(report["id"])
    try:
        assert report["state"] == "running"
        assert report["docs_written"] == 5
        await Document(database, "later", data={"n": 99}).save()
        await asyncio.wait_for(_until_copied(Database(couchdb, target), "later"), WAIT)
    finally:
        await job.cancel()


async def _until_copied(database: Database, doc_id: str) -> None:
    while "n" not in await database.get(doc_id, default={}):
        await asyncio.sleep(0.2)


class _ReplicatingServer:
    """Answers as CouchDB does for a one-shot ``_replicator`` document ``job`` (transcript
    11.5, 14.101, 11.10): each poll of the scheduler finds 10 more documents read of 100."""

    def __init__(self) -> None:
        self.polls = 0

    async def __call__(self, request: ReceivedRequest, connection: ScriptedConnection) -> None:
        path = request.target.partition("?")[0]
        if request.method == "HEAD":
            answer = http_response(200)
        elif (request.method, path) == ("PUT", "/_replicator/job"):
            answer = http_response(201, b'{"ok":true,"id":"job","rev":"1-a"}')
        elif path == "/_scheduler/docs/_replicator/job":
            self.polls += 1
            read = min(10 * self.polls, 90)
            info = {"docs_read": read, "docs_written": read, "changes_pending": 100 - read}
            running = {"doc_id": "job", "state": "running", "info": info}
            answer = http_response(200, json.dumps(running).encode())
        elif (request.method, path) == ("GET", "/_replicator/job"):
            answer = http_response(200, b'{"_id":"job","_rev":"2-b"}')
        elif request.method == "DELETE":
            answer = http_response(200, b'{"ok":true,"id":"job","rev":"3-c"}')
        else:
            answer = http_response(404, b'{"error":"not_found","reason":"missing"}')
        await connection.send(answer)


async def test_replicate_shows_count_percent_and_eta_and_ctrl_c_cancels_it(
    env: dict[str, str],
) -> None:
    replicating = _ReplicatingServer()
    async with ScriptedServer(replicating) as server:
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "replicate",
            "source",
            "target",
            "--id",
            "job",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env, "COUCHDB_URL": server.url},
        )
        assert process.stdout is not None and process.stderr is not None
        try:
            line = await asyncio.wait_for(process.stderr.readline(), WAIT)
        finally:
            process.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(process.wait(), WAIT)
        requests = [(r.method, r.target) for r in server.requests]
    # a plain line (stderr is a pipe): count of the total, percent, rate, time left
    shown = line.decode()
    assert shown.startswith("replicate source -> target: ")
    count = shown.split(": ")[1].split(" ")[0]
    read, total = (int(n) for n in count.split("/"))
    assert total == 100 and 0 < read < 100
    assert f"({read}%)" in shown and "/s" in shown and "ETA 0:" in shown
    # Ctrl-C: the replication is cancelled (its document deleted), exit code 130
    assert code == ExitCode.INTERRUPTED
    assert requests[:3] == [("HEAD", "/source"), ("HEAD", "/target"), ("PUT", "/_replicator/job")]
    assert requests[-2:] == [("GET", "/_replicator/job"), ("DELETE", "/_replicator/job?rev=2-b")]
    assert (await process.stdout.read()) == b""


async def _completed_replication(env: dict[str, str], couchdb: CouchDB, *args: str) -> str:
    """Starts a one-shot replication with ``aiocouch replicate ARGS --no-wait`` and waits
    until it has completed: its _replicator document's id (pouchdb-server exits when the
    document of a running replication is deleted, transcript 14.103)."""
    result = await run_cli(env, "replicate", *args, "--no-wait")
    assert result.exit_code == 0, result.stderr
    (started,) = lines_of(result)
    job = couchdb.replications.document(started["id"])
    assert (await asyncio.wait_for(job.wait(max_interval=0.5), WAIT)).state == "completed"
    return str(started["id"])


async def test_replicate_cancel_deletes_the_documents_of_that_source_and_target_only(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 3)
    target, other = scratch_names(), scratch_names()
    replicator = Database(couchdb, "_replicator")
    first = await _completed_replication(env, couchdb, database.id, target, "--create-target")
    second = await _completed_replication(env, couchdb, database.id, target)
    elsewhere = await _completed_replication(env, couchdb, database.id, other, "--create-target")
    try:
        # --id: only that document
        only = await run_cli(env, "replicate", "--cancel", "--id", first, database.id, target)
        assert only.exit_code == 0, only.stderr
        assert lines_of(only) == [{"id": first, "replicator_db": "_replicator", "cancelled": True}]
        with pytest.raises(NotFoundError):
            await replicator.get(first)
        await replicator.get(second)
        # without: every replication of SOURCE to TARGET, none of another target
        rest = await run_cli(env, "replicate", "--cancel", database.id, target)
        assert rest.exit_code == 0, rest.stderr
        assert [line["id"] for line in lines_of(rest)] == [second]
        with pytest.raises(NotFoundError):
            await replicator.get(second)
        await replicator.get(elsewhere)
    finally:
        await couchdb.replications.document(elsewhere).cancel()


async def test_replicate_cancel_without_such_a_replication_exits_with_not_found(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    target, other = scratch_names(), scratch_names()
    kept = await _completed_replication(env, couchdb, database.id, target, "--create-target")
    try:
        # the same source to another target, and --id of a document of another target
        for args in ((database.id, other), ("--id", kept, database.id, other)):
            result = await run_cli(env, "replicate", "--cancel", *args)
            assert result.exit_code == ExitCode.NOT_FOUND, result.stderr
            assert result.stdout == ""
            assert f"of {database.id} to {other}" in result.stderr
        await Database(couchdb, "_replicator").get(kept)
    finally:
        await couchdb.replications.document(kept).cancel()


@pytest.mark.parametrize("option", ["--continuous", "--wait", "--no-wait", "--create-target"])
async def test_replicate_cancel_with_an_option_of_starting_is_a_usage_error(
    env: dict[str, str], option: str
) -> None:
    # an unreachable server: exit code 2, not 6, shows that nothing was sent
    unreachable = {**env, "COUCHDB_URL": f"http://127.0.0.1:{free_port()}"}
    result = await run_cli(unreachable, "replicate", "--cancel", option, "a", "b")
    assert result.exit_code == ExitCode.INVALID_INPUT == 2
    assert "--cancel" in result.stderr


@pytest.mark.couchdb_only(
    "pouchdb-server exits when the _replicator document of a running replication is "
    "deleted (transcript 14.99-14.103); on CouchDB the scheduler drops the job (11.10)"
)
async def test_replicate_cancel_stops_a_continuous_replication(
    env: dict[str, str], couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    await fill(database, 2)
    target = scratch_names()
    started = await run_cli(
        env, "replicate", database.id, target, "--create-target", "--continuous"
    )
    assert started.exit_code == 0, started.stderr
    (report,) = lines_of(started)
    job = couchdb.replications.document(report["id"])
    try:
        assert (await asyncio.wait_for(job.wait(max_interval=0.5), WAIT)).state == "running"
    except BaseException:
        await job.cancel()
        raise
    result = await run_cli(env, "replicate", "--cancel", database.id, target)
    assert result.exit_code == 0, result.stderr
    assert lines_of(result) == [
        {"id": report["id"], "replicator_db": "_replicator", "cancelled": True}
    ]
    with pytest.raises(NotFoundError):
        await job.fetch()
    await asyncio.wait_for(_until_unscheduled(job), WAIT)


async def _until_unscheduled(job: ReplicationDocument) -> None:
    while True:
        try:
            await job.status()
        except NotFoundError:
            return
        await asyncio.sleep(0.2)


# --- failures: exit codes and messages ---


async def test_an_unreachable_server_exits_with_unreachable(env: dict[str, str]) -> None:
    result = await run_cli({**env, "COUCHDB_URL": f"http://127.0.0.1:{free_port()}"}, "info")
    assert result.exit_code == ExitCode.UNREACHABLE == 6
    assert result.stderr.startswith("aiocouch: cannot connect to the server")
    assert result.stdout == ""


async def _silent(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    await asyncio.Event().wait()  # reads the request, never answers


async def test_a_server_silent_beyond_timeout_exits_with_unreachable(env: dict[str, str]) -> None:
    async with ScriptedServer(_silent) as server:
        result = await run_cli({**env, "COUCHDB_URL": server.url}, "--timeout", "0.3", "info")
    assert result.exit_code == ExitCode.UNREACHABLE
    assert "did not answer in time" in result.stderr


@pytest.mark.parametrize(
    ("status", "code", "start"),
    [
        (401, ExitCode.BAD_CREDENTIALS, "aiocouch: bad credentials:"),
        (403, ExitCode.FORBIDDEN, "aiocouch: not allowed:"),
        (500, ExitCode.FAILURE, "aiocouch: server error:"),
    ],
)
async def test_each_refusal_of_the_server_has_its_exit_code(
    env: dict[str, str], status: int, code: ExitCode, start: str
) -> None:
    async with ScriptedServer(error_answer(status)) as server:
        result = await run_cli({**env, "COUCHDB_URL": server.url}, "db", "info", "somedb")
    assert result.exit_code == code
    assert result.stderr.startswith(start)


async def test_an_unknown_user_exits_with_bad_credentials(env: dict[str, str]) -> None:
    result = await run_cli({**env, "COUCHDB_USER": UNKNOWN_USER, "COUCHDB_PASSWORD": SECRET}, "dbs")
    assert result.exit_code == ExitCode.BAD_CREDENTIALS == 4
    assert result.stderr.startswith("aiocouch: bad credentials:")


@pytest.mark.couchdb_only(
    "pouchdb-server answers a user who is not a member 401, CouchDB 403 (transcript 3.12)"
)
async def test_a_user_who_is_no_member_exits_with_forbidden(
    env: dict[str, str], couchdb: CouchDB, database: Database, throwaway_user: tuple[str, str]
) -> None:
    security = await database.security()
    security.add_member(f"{UNKNOWN_USER}_other")
    await security.save()
    name, password = throwaway_user
    result = await run_cli(
        {**env, "COUCHDB_USER": name, "COUCHDB_PASSWORD": password}, "db", "info", database.id
    )
    assert result.exit_code == ExitCode.FORBIDDEN
    assert result.stderr.startswith("aiocouch: not allowed:")


def test_exceptions_map_to_their_exit_codes() -> None:
    assert classify(ForbiddenError("no"))[0] is ExitCode.FORBIDDEN
    assert classify(InternalServerError("boom"))[0] is ExitCode.FAILURE
    assert classify(NotFoundError("Database 'x' does not exist")) == (
        ExitCode.NOT_FOUND,
        "not found: Database 'x' does not exist",
    )
    assert classify(RuntimeError("bug"))[0] is ExitCode.FAILURE
    corrupt = BackupFormatError(Path("db.jsonl"), 7, "not JSON")
    assert classify(corrupt) == (
        ExitCode.CORRUPT_BACKUP,
        "corrupt backup, nothing written: db.jsonl, line 7: not JSON",
    )
    assert classify(FileExistsError("db.jsonl exists"))[0] is ExitCode.INVALID_INPUT
    assert classify(PermissionError(13, "Permission denied", "db.jsonl")) == (
        ExitCode.FAILURE,
        "file error: [Errno 13] Permission denied: 'db.jsonl'",
    )


async def test_an_invalid_url_is_refused_without_showing_it(env: dict[str, str]) -> None:
    result = await run_cli({**env, "COUCHDB_URL": f"ftp://admin:{SECRET}@host"}, "info")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert SECRET not in result.stderr


# --- credentials ---


def assert_hidden(secret: str, user: str, text: str) -> None:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    assert secret not in text
    assert token not in text
    assert secret[:8] not in text


async def test_credentials_never_show_in_output_or_errors(
    server_url: str, couchdb: CouchDB, database: Database, scratch_names: Callable[[], str]
) -> None:
    scheme, _, rest = server_url.partition("://")
    wrong = f"{scheme}://{UNKNOWN_USER}:{SECRET}@{rest}"
    dead = f"http://{UNKNOWN_USER}:{SECRET}@127.0.0.1:{free_port()}"
    target = scratch_names()
    runs = [
        (wrong, ("info",)),
        (wrong, ("db", "info", database.id)),
        (wrong, ("replicate", database.id, target)),
        (dead, ("dbs",)),
        (wrong, ("get", database.id, "x")),
        (f"{wrong}/sub", ("changes", database.id)),
    ]
    for url, args in runs:
        code, out, err = await run_script({"COUCHDB_URL": url}, *args)
        assert code in (ExitCode.BAD_CREDENTIALS, ExitCode.UNREACHABLE, ExitCode.NOT_FOUND)
        assert err.startswith("aiocouch: ")
        assert_hidden(SECRET, UNKNOWN_USER, out + err)
    env_password = {"COUCHDB_URL": server_url, "COUCHDB_USER": UNKNOWN_USER}
    code, out, err = await run_script({**env_password, "COUCHDB_PASSWORD": SECRET}, "info")
    assert code == ExitCode.BAD_CREDENTIALS
    assert_hidden(SECRET, UNKNOWN_USER, out + err)


async def test_the_password_prompt_does_not_echo(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    env: dict[str, str | None] = {
        "COUCHDB_URL": server_url,
        "COUCHDB_USER": admin_user,
        "COUCHDB_PASSWORD": None,
    }
    result = await run_cli(env, "--password", "db", "info", database.id, input=admin_password)
    assert result.exit_code == 0, result.stderr
    assert lines_of(result)[0]["db_name"] == database.id
    assert f"Password for {admin_user}" in result.stderr
    assert admin_password not in result.stdout + result.stderr


async def test_a_user_without_password_off_a_terminal_is_told_how_to_give_one(
    server_url: str,
) -> None:
    env: dict[str, str | None] = {
        "COUCHDB_URL": server_url,
        "COUCHDB_USER": UNKNOWN_USER,
        "COUCHDB_PASSWORD": None,
    }
    result = await run_cli(env, "info")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "COUCHDB_PASSWORD" in result.stderr and "--password" in result.stderr


async def test_the_url_may_hold_the_credentials(
    server_url: str, admin_user: str, admin_password: str, database: Database
) -> None:
    from urllib.parse import quote

    scheme, _, rest = server_url.partition("://")
    url = f"{scheme}://{quote(admin_user, safe='')}:{quote(admin_password, safe='')}@{rest}"
    result = await run_cli({"COUCHDB_URL": None}, "--url", url, "db", "info", database.id)
    assert result.exit_code == 0, result.stderr
    assert lines_of(result)[0]["db_name"] == database.id


# --- the console script ---


async def test_the_console_script_is_installed_and_documents_its_exit_codes() -> None:
    code, out, _ = await run_script({}, "--help")
    assert code == 0
    commands = ("info", "dbs", "db", "get", "put", "find", "view", "changes", "replicate")
    for command in (*commands, "backup", "restore"):
        assert f"  {command} " in out
    assert "  3    database, document, view or replication not found\n" in out
    assert "  9    corrupt backup file (nothing restored)\n" in out
    assert "  130  interrupted" in out


# --- progress ---


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_writes_plain_lines_with_count_percent_rate_and_eta() -> None:
    stream = io.StringIO()
    with Progress(200, "copy", False, stream=stream, interval=0) as progress:
        for _ in range(4):
            progress.advance(50)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("copy: 50/200 (25%) ")
    assert "/s" in lines[0] and "ETA " in lines[0]
    assert lines[-1].startswith("copy: 200/200 (100%) ")
    assert "done after" in lines[-1]
    assert progress.completed == 200


def test_progress_without_total_counts_and_says_when_it_stopped() -> None:
    stream = io.StringIO()
    with pytest.raises(KeyError), Progress(None, "scan", False, stream=stream, interval=3600) as p:
        p.advance(7)
        raise KeyError("broken")
    assert stream.getvalue().startswith("scan: 7 ")
    assert "stopped after" in stream.getvalue()
    assert stream.getvalue().count("\n") == 1  # the interval kept it to the last line


def test_quiet_progress_writes_nothing() -> None:
    for stream in (io.StringIO(), _Terminal()):
        with Progress(10, "copy", True, stream=stream, interval=0) as progress:
            progress.advance(10)
        assert stream.getvalue() == ""
        assert progress.completed == 10


def test_progress_on_a_terminal_draws_a_bar_with_the_count() -> None:
    stream = _Terminal()
    with Progress(None, "copy", False, stream=stream) as progress:
        progress.set_total(40)
        progress.advance(30)
    shown = stream.getvalue()
    assert "copy" in shown and "30/40" in shown and "75%" in shown
