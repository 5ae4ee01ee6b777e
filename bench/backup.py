"""Backup and restore: aiocouch against couchbackup/couchrestore, with the floor beside them.

``make bench-backup`` fills a database (``--n`` documents, default 100,000, with 550
attachments, 200 conflicts and 300 deletions), then, ``--rounds`` times with the tools in
a rotating order:

- backup: ``aiocouch.backup.backup``, ``couchbackup`` (npm ``@cloudant/couchbackup``, in
  bench/couchbackup/node_modules) with its default options and with ``--attachments``,
  and the floor: GET /{db}/_all_docs?include_docs=true&attachments=true streamed into a
  file by plain aiohttp, nothing parsed;
- restore into a new database: ``aiocouch.backup.restore`` of our file, ``couchrestore``
  of each couchbackup file (``--attachments`` for the second), and the floor: our file's
  lines POSTed as they are to /{db}/_bulk_docs with ``new_edits: false`` (500 a request,
  4 at once) by plain aiohttp.

couchbackup and couchrestore log in with the credentials in their URL (``POST
/_session``); against pouchdb-server they go through bench/compat_proxy.py, which fixes
the answers pouchdb-server gives unlike CouchDB that would stop them (see its docstring).

Each run is a process of its own: wall time, client CPU (user + sys) and peak RSS come
from ``wait4``. After each restore the target's documents and leaf revisions are compared
with the source's ("exact"). Medians go to bench/backup.md. Against $COUCHDB_URL if set,
else a local pouchdb-server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from compat_proxy import CompatProxy

HERE = Path(__file__).resolve().parent
TOOLS = HERE / "couchbackup" / "node_modules" / ".bin"
#: The npm tools' runs, by name: couchbackup with its default options (attachments left
#: out: stubs only) and with ``--attachments`` (experimental: their bytes too, base64).
TOOL_FILES = {"couchbackup": "couchbackup", "couchbackup -a": "couchbackup-a"}
#: couchrestore, by name, and the couchbackup run whose file it restores.
RESTORED_BY = {"couchrestore": "couchbackup", "couchrestore -a": "couchbackup -a"}


@dataclass
class Measure:
    """The runs of one tool doing one thing."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    peaks: list[float] = field(default_factory=list)
    exact: list[bool] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# --- the workers (each run as its own process) -------------------------------------------


async def ours_backup(url: str, db: str, path: str) -> None:
    from aiocouch import CouchDB
    from aiocouch.backup import backup
    from aiocouch.database import Database

    async with CouchDB(url, os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"]) as client:
        await backup(Database(client, db), path, overwrite=True)


async def ours_restore(url: str, db: str, path: str) -> None:
    from aiocouch import CouchDB
    from aiocouch.backup import restore
    from aiocouch.database import Database

    async with CouchDB(url, os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"]) as client:
        await restore(path, Database(client, db))


def _session() -> Any:
    import aiohttp

    auth = aiohttp.BasicAuth(os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"])
    return aiohttp.ClientSession(auth=auth, timeout=aiohttp.ClientTimeout(total=None))


async def floor_read(url: str, db: str, path: str) -> None:
    async with _session() as session:
        params = {"include_docs": "true", "attachments": "true"}
        async with session.get(f"{url}/{db}/_all_docs", params=params) as response:
            response.raise_for_status()
            with open(path, "wb") as file:
                async for piece in response.content.iter_chunked(1 << 16):
                    file.write(piece)


async def floor_write(url: str, db: str, path: str) -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)

    async def send(session: Any) -> None:
        while (body := await queue.get()) is not None:
            headers = {"Content-Type": "application/json"}
            async with session.post(f"{url}/{db}/_bulk_docs", data=body, headers=headers) as r:
                r.raise_for_status()
                await r.read()

    async with _session() as session:
        senders = [asyncio.ensure_future(send(session)) for _ in range(4)]
        with open(path, "rb") as file:
            lines: list[bytes] = []
            for line in file:
                if line.startswith(b'{"aiocouch_backup'):
                    continue
                lines.append(line)
                if len(lines) == 500:
                    await queue.put(b'{"new_edits":false,"docs":[' + b",".join(lines) + b"]}")
                    lines = []
            if lines:
                await queue.put(b'{"new_edits":false,"docs":[' + b",".join(lines) + b"]}")
        for _ in senders:
            await queue.put(None)
        await asyncio.gather(*senders)


WORKERS = {
    "ours-backup": ours_backup,
    "ours-restore": ours_restore,
    "floor-read": floor_read,
    "floor-write": floor_write,
}


# --- the harness ---------------------------------------------------------------------------


def run_measured(
    command: list[str], env: dict[str, str], stdin_path: str | None = None, limit: float = 3600
) -> tuple[float, float, float, str]:
    """Runs ``command`` (its stdin from ``stdin_path``), killed after ``limit`` seconds;
    wall seconds, CPU seconds (user + sys), peak RSS MB (sampled every 10 ms) and, if it
    failed, its exit code and last line on stderr."""
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(open(stdin_path, "rb")) if stdin_path else None
        errors = stack.enter_context(tempfile.TemporaryFile())
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        timed_out = False
        peak = 0.0
        while True:
            # VmHWM of the program itself: wait4's ru_maxrss would also count this
            # process's size, which a forked child takes along through exec
            peak = max(peak, high_water_mb(process.pid))
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > limit and not timed_out:
                process.kill()
                timed_out = True
            time.sleep(0.01)
        wall = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    failure = ""
    if timed_out:
        failure = f"no result after {limit:.0f} s (killed)"
    elif code != 0:
        failure = f"exit {code}: " + (text.strip().splitlines() or [""])[-1][:160]
    return wall, usage.ru_utime + usage.ru_stime, peak, failure


def high_water_mb(pid: int) -> float:
    """The peak resident set (VmHWM) of process ``pid`` so far, in MB (0 once it ended)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def fill(client: Any, name: str, n: int) -> None:
    """``n`` documents of about 200 bytes; 550 with an attachment, 200 with a conflicting
    branch, 300 deleted."""
    database = await client.create(name)
    blob = bytes(range(256)) * 8
    async with database.create_docs(batch_size=5000) as bulk:
        for i in range(n):
            data: dict[str, Any] = {
                "i": i,
                "name": f"document {i} — São Paulo",
                "tags": ["alpha", "beta", "gamma"],
                "payload": "lorem ipsum dolor sit amet " * 4,
            }
            if i % (n // 550) == 0 and i // (n // 550) < 550:
                attachment = {"content_type": "application/octet-stream"}
                attachment["data"] = base64.b64encode(blob + i.to_bytes(4, "big")).decode()
                data["_attachments"] = {"blob.bin": attachment}
            bulk.create(f"doc-{i:07d}", data=data)
    assert bulk.ok is not None
    revs = {doc.id: doc.rev for doc in bulk.ok}
    branches = []
    for k in range(500):
        id = f"doc-{(k * 97 + 13) % n:07d}"
        parent = str(revs[id]).split("-", 1)[1]
        # a deletion: one deleted child; a conflict: two children of the same parent,
        # so the document has two leaves
        bodies: list[dict[str, Any]] = (
            [{"_deleted": True}] if k < 300 else [{"branch": k}, {"branch": k, "side": 2}]
        )
        for body in bodies:
            child = uuid.uuid4().hex
            history = {"start": 2, "ids": [child, parent]}
            branches.append({**body, "_id": id, "_rev": f"2-{child}", "_revisions": history})
    assert await database.save_revisions(branches) == []


async def leaves(client: Any, name: str) -> dict[str, list[str]]:
    from aiocouch.database import Database

    found: dict[str, list[str]] = {}
    async for event in Database(client, name).changes(style="all_docs"):
        found[event.id] = sorted(c["rev"] for c in event.json["changes"])
    return found


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


async def bench(args: argparse.Namespace) -> str:
    from aiocouch import CouchDB
    from testserver.pouchdb_server import server_from_environment

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(server_from_environment())
        work = stack.enter_context(tempfile.TemporaryDirectory())
        env = {"BENCH_USER": server.user, "BENCH_PASSWORD": server.password}
        # couchbackup and couchrestore log in (POST /_session) with the credentials in their
        # URL (a throwaway server's). pouchdb-server answers four of their requests unlike
        # CouchDB, so there they go through bench/compat_proxy.py, which fixes exactly those.
        tool_server = server.url
        if server.is_pouchdb:
            address = urlsplit(server.url)
            proxy = stack.enter_context(CompatProxy(address.hostname or "", address.port or 80))
            tool_server = f"http://127.0.0.1:{proxy.port}"
        tool_url = with_credentials(tool_server, server.user, server.password)
        files = {name: os.path.join(work, name) for name in ("ours", *TOOL_FILES.values(), "floor")}
        async with CouchDB(server.url, server.user, server.password) as client:
            source = f"bench_backup_{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            await fill(client, source, args.n)
            print(f"filled {args.n} documents in {time.perf_counter() - started:.0f} s", flush=True)
            expected = await leaves(client, source)
            load_before = load()
            measures: dict[str, Measure] = {}

            def record(key: str, result: tuple[float, float, float, str]) -> None:
                wall, cpu, peak, failure = result
                measure = measures.setdefault(key, Measure())
                measure.walls.append(wall)
                measure.cpus.append(cpu)
                measure.peaks.append(peak)
                if failure:
                    measure.failures.append(failure)
                print(
                    f"  {key}: {wall:.1f} s wall, {cpu:.1f} s CPU, {peak:.0f} MB {failure}",
                    flush=True,
                )

            def python(kind: str, db: str, path: str) -> list[str]:
                return [sys.executable, __file__, "--worker", kind, server.url, db, path]

            def couchbackup(file: str, *options: str) -> list[str]:
                log = os.path.join(work, f"{file}.log")
                with contextlib.suppress(FileNotFoundError):
                    os.remove(log)  # else it refuses to start ("the log file already exists")
                return [
                    str(TOOLS / "couchbackup"),
                    *options,
                    "--url",
                    tool_url,
                    "--db",
                    source,
                    "--output",
                    files[file],
                    "--log",
                    log,
                    "--quiet",
                ]

            def couchrestore(db: str, file: str, *options: str) -> tuple[list[str], str]:
                command = [str(TOOLS / "couchrestore"), *options, "--url", tool_url]
                return [*command, "--db", db, "--quiet"], files[file]

            backups = {
                "aiocouch": lambda: python("ours-backup", source, files["ours"]),
                "couchbackup": lambda: couchbackup("couchbackup"),
                "couchbackup -a": lambda: couchbackup("couchbackup-a", "--attachments"),
                "floor": lambda: python("floor-read", source, files["floor"]),
            }
            restores = {
                "aiocouch": lambda db: (python("ours-restore", db, files["ours"]), None),
                "couchrestore": lambda db: couchrestore(db, "couchbackup"),
                "couchrestore -a": lambda db: couchrestore(db, "couchbackup-a", "--attachments"),
                "floor": lambda db: (python("floor-write", db, files["ours"]), None),
            }
            broken: set[str] = set()  # a tool that failed fails the same way every round
            for round in range(args.rounds):
                print(f"round {round + 1} (load {load()})", flush=True)
                for tool in order_of(list(backups), round):
                    if tool in broken:
                        continue
                    limit = args.tool_limit if tool in TOOL_FILES else 3600
                    record(f"backup/{tool}", run_measured(backups[tool](), env, None, limit))
                    if measures[f"backup/{tool}"].failures:
                        broken.add(tool)
                for tool in order_of(list(restores), round):
                    made_by = RESTORED_BY.get(tool)
                    file = TOOL_FILES.get(made_by or "")
                    if made_by in broken or (file and not has_data(files[file])):
                        continue
                    target = f"bench_restore_{uuid.uuid4().hex[:8]}"
                    await client.create(target)
                    command, stdin_path = restores[tool](target)
                    limit = args.tool_limit if made_by else 3600
                    result = run_measured(command, env, stdin_path, limit)
                    record(f"restore/{tool}", result)
                    measures[f"restore/{tool}"].exact.append(
                        await leaves(client, target) == expected
                    )
                    await (await client[target]).delete()
            await (await client[source]).delete()
            sizes = {
                name: os.path.getsize(path) if has_data(path) else 0 for name, path in files.items()
            }
        return report(args, measures, sizes, server, load_before)


def has_data(path: str) -> bool:
    return os.path.exists(path) and os.path.getsize(path) > 0


def order_of(tools: list[str], round: int) -> list[str]:
    turn = round % len(tools)
    return tools[turn:] + tools[:turn]


def report(
    args: argparse.Namespace,
    measures: dict[str, Measure],
    sizes: dict[str, int],
    server: Any,
    load_before: str,
) -> str:
    kind = "pouchdb-server 4.2.0 (local)" if server.is_pouchdb else "CouchDB ($COUCHDB_URL)"
    lines = [
        "# Backup and restore benchmark",
        "",
        f"`make bench-backup` (bench/backup.py): {args.n:,} documents (550 attachments, "
        f"200 conflicts, 300 deletions) on {kind}; {args.rounds} rounds, tools interleaved, "
        "medians (peak: the largest). Client CPU is user + sys of the tool's process; "
        "wall time includes the server's work. Load average (1/5/15 min) before the runs: "
        f"{load_before}, after: {load()} (2 cores shared).",
        "",
        "| step | tool | wall s | x floor | client CPU s | peak RSS MB | exact | file MB "
        "| failures |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    files = {
        "backup/aiocouch": "ours",
        **{f"backup/{tool}": file for tool, file in TOOL_FILES.items()},
        "backup/floor": "floor",
    }
    for key, measure in measures.items():
        step, tool = key.split("/")
        exact = "-"
        if measure.exact:
            exact = (
                "yes"
                if all(measure.exact)
                else f"no ({measure.exact.count(False)} of {len(measure.exact)})"
            )
        size = f"{sizes[files[key]] / 1e6:.1f}" if key in files else ""
        # the URL names each round's target: without it, one failure reads as one
        failures = "; ".join(sorted({re.sub(r"https?://\S+", "URL", f) for f in measure.failures}))
        floor = measures.get(f"{step}/floor")
        ratio = "-"
        if floor and floor.walls and measure.walls and not measure.failures:
            ratio = f"{statistics.median(measure.walls) / statistics.median(floor.walls):.2f}"
        lines.append(
            f"| {step} | {tool} | {median(measure.walls)} | {ratio} | {median(measure.cpus)} | "
            f"{max(measure.peaks):.0f} | {exact} | {size} | {failures} |"
        )
    lines += [
        "",
        "The floor reads only the winning revisions (no conflicts, no histories) and writes "
        "our file's lines without checking them: it is what the server costs, not a tool. "
        '"exact": the restored database has the source\'s documents with the same leaf '
        "revisions (winners, conflicts, deletions). Where a backup's time goes, read by "
        "read, and why it reads what it reads: bench/backup_breakdown.md.",
        "",
    ]
    lines += [
        'couchbackup/couchrestore 2.11.12 run twice: with their default options ("couchbackup",'
        ' "couchrestore": attachments are left out, their stubs kept, so the restore fails with'
        " `missing_stub` at the first batch holding one and leaves a partial database) and with"
        ' `--attachments` (experimental; the "-a" rows: attachment bytes in base64 too).',
        "",
    ]
    if server.is_pouchdb:
        lines += [
            "On pouchdb-server 4.2.0 they go through bench/compat_proxy.py, a loopback proxy in "
            "the harness's process (its CPU is not counted as the tool's; its copying is in the "
            "wall time), which fixes exactly the answers pouchdb-server gives unlike CouchDB "
            "3.4.3 that stop the tools or lose data: `POST /_session` naming the user "
            "`username` (CouchDB takes `name` or `username`; pouchdb-server 401): renamed; its "
            "AuthSession cookie without `Max-Age` (the tool logs in again before each request): "
            'CouchDB\'s `Max-Age=600` added; the `_bulk_get` probe `{"docs":[]}` (never '
            'answered): answered `{"results":[]}`; `_changes` without `pending` (couchbackup asks '
            "for the next page for ever): `pending` added; `GET /{db}` without `doc_del_count` "
            "(couchrestore refuses the new target as not empty): 0 added when nothing was ever "
            "written; `_bulk_get` of a document by id alone (CouchDB: every leaf revision, "
            "deleted ones too; pouchdb-server: the winner only, `{}` if deleted): the proxy reads "
            "the leaves beside each `_changes` page (the same page with `style=all_docs`: one "
            "more request per 10,000 documents) and asks for each. "
            "Reference on CouchDB 3.4.3 (from the issue that asked for this benchmark, 100,000 "
            "documents of the same shape): couchbackup ~12 s to back up and ~12 s to restore, "
            "at ~200-240 MB peak, the floor at ~0.68 of its time; `COUCHDB_URL=... make "
            "bench-backup` measures them there without the proxy.",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="documents (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "backup.md")
    parser.add_argument(
        "--tool-limit",
        type=float,
        default=600,
        help="seconds after which couchbackup/couchrestore are stopped (default 600)",
    )
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "URL", "DB", "FILE"))
    args = parser.parse_args(argv)
    if args.worker:
        kind, url, db, path = args.worker
        asyncio.run(WORKERS[kind](url, db, path))
        return 0
    if not (TOOLS / "couchbackup").exists():
        print(f"couchbackup is missing: cd {HERE / 'couchbackup'} && npm ci", file=sys.stderr)
        return 1
    text = asyncio.run(bench(args))
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
