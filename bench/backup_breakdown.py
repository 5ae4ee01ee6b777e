"""Where a backup's wall time goes: each kind of read request a backup could send, timed alone.

Fills one database as ``make bench-backup`` does (bench/backup.py's ``fill``), then reads
all of it several ways with plain aiohttp (nothing parsed beyond what the way needs) and
prints, per way, the wall time, this process's CPU and the server's CPU (pouchdb-server's
process, if local)::

    .venv/bin/python bench/backup_breakdown.py --n 100000
    .venv/bin/python bench/backup_breakdown.py --n 20000 --only changes

The ways: ``_all_docs?include_docs=true&attachments=true`` (the floor) in one stream and in
pages; ``_changes?style=all_docs`` in pages of several sizes and as one stream, without and
with ``include_docs=true&attachments=true``; ``_bulk_get`` of every winner in batches of
500, without and with ``revs``/``attachments``, one and four batches at once;
``POST _all_docs`` with ``keys``; and ``open_revs=all`` of the conflicted and deleted
documents. With ``--profile``, also aiocouch's own backup under cProfile (its top
functions by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import backup as backup_bench  # noqa: E402


def server_cpu(pid: int | None) -> float:
    """User + sys seconds of process ``pid`` so far (0 if unknown)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(
    name: str, pid: int | None, work: Callable[[], Awaitable[int]], results: list[str]
) -> None:
    cpu, server, started = time.process_time(), server_cpu(pid), time.perf_counter()
    count = await work()
    wall = time.perf_counter() - started
    line = (
        f"| {name} | {wall:.1f} | {time.process_time() - cpu:.1f} | "
        f"{server_cpu(pid) - server:.1f} | {count} |"
    )
    results.append(line)
    print(line, flush=True)


async def breakdown(args: argparse.Namespace) -> None:
    import aiohttp

    from aiocouch import CouchDB
    from testserver.pouchdb_server import server_from_environment

    with server_from_environment() as server:
        pid = getattr(server, "pid", None)
        async with CouchDB(server.url, server.user, server.password) as client:
            db = f"bench_breakdown_{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            await backup_bench.fill(client, db, args.n)
            print(f"filled {args.n} in {time.perf_counter() - started:.0f} s", flush=True)
            auth = aiohttp.BasicAuth(server.user, server.password)
            timeout = aiohttp.ClientTimeout(total=None)
            base = f"{server.url}/{db}"
            results: list[str] = []
            async with aiohttp.ClientSession(auth=auth, timeout=timeout) as session:

                async def get_json(url: str, params: dict[str, str]) -> Any:
                    async with session.get(url, params=params) as response:
                        response.raise_for_status()
                        return json.loads(await response.read())

                async def post_json(url: str, body: Any, params: dict[str, str]) -> Any:
                    async with session.post(url, json=body, params=params) as response:
                        response.raise_for_status()
                        return json.loads(await response.read())

                async def stream(url: str, params: dict[str, str]) -> int:
                    size = 0
                    async with session.get(url, params=params) as response:
                        response.raise_for_status()
                        async for piece in response.content.iter_chunked(1 << 16):
                            size += len(piece)
                    return size

                docs_params = {"include_docs": "true", "attachments": "true"}

                def all_docs_stream() -> Awaitable[int]:
                    return stream(f"{base}/_all_docs", docs_params)

                def all_docs_pages(limit: int) -> Callable[[], Awaitable[int]]:
                    async def run() -> int:
                        count, start = 0, None
                        while True:
                            params = {**docs_params, "limit": str(limit + 1)}
                            if start is not None:
                                params["startkey"] = json.dumps(start)
                            rows = (await get_json(f"{base}/_all_docs", params))["rows"]
                            count += min(len(rows), limit)
                            if len(rows) <= limit:
                                return count
                            start = rows[-1]["id"]

                    return run

                def changes_pages(limit: int | None, extra: dict[str, str]) -> Any:
                    async def run() -> int:
                        count, since = 0, "0"
                        while True:
                            params = {"style": "all_docs", "since": since, **extra}
                            if limit is not None:
                                params["limit"] = str(limit)
                            page = await get_json(f"{base}/_changes", params)
                            count += len(page["results"])
                            if limit is None or not page["results"]:
                                return count
                            since = page["last_seq"]
                            since = since if isinstance(since, str) else json.dumps(since)

                    return run

                listed = (await get_json(f"{base}/_changes", {"style": "all_docs"}))["results"]
                winners = [
                    {"id": row["id"], "rev": row["changes"][0]["rev"]}
                    for row in listed
                    if len(row["changes"]) == 1 and not row.get("deleted")
                ]
                others = [
                    row["id"] for row in listed if len(row["changes"]) > 1 or row.get("deleted")
                ]

                def bulk_get(params: dict[str, str], in_flight: int) -> Any:
                    async def run() -> int:
                        slots = asyncio.Semaphore(in_flight)

                        async def one(chunk: list[dict[str, str]]) -> int:
                            async with slots:
                                body = {"docs": chunk}
                                answer = await post_json(f"{base}/_bulk_get", body, params)
                                return len(answer["results"])

                        chunks = [winners[i : i + 500] for i in range(0, len(winners), 500)]
                        return sum(await asyncio.gather(*(one(c) for c in chunks)))

                    return run

                def all_docs_keys(in_flight: int) -> Any:
                    async def run() -> int:
                        slots = asyncio.Semaphore(in_flight)

                        async def one(chunk: list[dict[str, str]]) -> int:
                            async with slots:
                                body = {"keys": [doc["id"] for doc in chunk]}
                                answer = await post_json(f"{base}/_all_docs", body, docs_params)
                                return len(answer["rows"])

                        chunks = [winners[i : i + 500] for i in range(0, len(winners), 500)]
                        return sum(await asyncio.gather(*(one(c) for c in chunks)))

                    return run

                async def open_revs() -> int:
                    slots = asyncio.Semaphore(8)
                    params = {"open_revs": "all", "revs": "true", "attachments": "true"}
                    headers = {"Accept": "application/json"}

                    async def one(id: str) -> None:
                        async with (
                            slots,
                            session.get(f"{base}/{id}", params=params, headers=headers) as response,
                        ):
                            response.raise_for_status()
                            await response.read()

                    await asyncio.gather(*(one(id) for id in others))
                    return len(others)

                async def bulk_get_leaves() -> int:
                    # what the backup sends for them now: each leaf by its revision, a
                    # document once a request (the i-th leaf of each in request i)
                    rounds: list[list[dict[str, str]]] = []
                    for row in listed:
                        if len(row["changes"]) > 1 or row.get("deleted"):
                            for i, leaf in enumerate(row["changes"]):
                                if i == len(rounds):
                                    rounds.append([])
                                rounds[i].append({"id": row["id"], "rev": leaf["rev"]})
                    params = {"revs": "true", "attachments": "true"}
                    answers = [
                        await post_json(f"{base}/_bulk_get", {"docs": docs}, params)
                        for docs in rounds
                    ]
                    return sum(len(answer["results"]) for answer in answers)

                def ours(batch_size: int | None) -> Callable[[], Awaitable[int]]:
                    async def run() -> int:
                        from aiocouch.backup import backup
                        from aiocouch.database import Database

                        options = {} if batch_size is None else {"batch_size": batch_size}
                        with tempfile.TemporaryDirectory() as work:
                            path = os.path.join(work, "backup.jsonl")
                            done = await backup(Database(client, db), path, **options)
                        return done.revisions

                    return run

                async def earlier() -> int:
                    # the _backing_up module of an earlier version, run by this version's
                    # client: what the changes to it bought
                    import importlib.util

                    from aiocouch.database import Database

                    spec = importlib.util.spec_from_file_location(
                        "aiocouch._backing_up_earlier", args.earlier
                    )
                    assert spec is not None and spec.loader is not None
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[spec.name] = module
                    spec.loader.exec_module(module)
                    with tempfile.TemporaryDirectory() as work:
                        done = await module.write_backup(
                            Database(client, db),
                            Path(work) / "backup.jsonl",
                            compress=False,
                            batch_size=500,
                            in_flight=4,
                            resume=False,
                            overwrite=True,
                            report=lambda done, total: None,
                        )
                    return int(done.revisions)

                ways: dict[str, tuple[str, Callable[[], Awaitable[int]]]] = {
                    "earlier": ("the --earlier _backing_up.py, batch_size=500", earlier),
                    "ours": ("aiocouch.backup.backup, default batch_size", ours(None)),
                    "ours-1000": ("aiocouch.backup.backup, batch_size=1000", ours(1000)),
                    "ours-2000": ("aiocouch.backup.backup, batch_size=2000", ours(2000)),
                    "floor": ("_all_docs include_docs attachments, one stream", all_docs_stream),
                    "floor-pages": (
                        "_all_docs include_docs attachments, pages of 2000",
                        all_docs_pages(2000),
                    ),
                    "changes-500": ("_changes style=all_docs, limit=500", changes_pages(500, {})),
                    "changes-5000": (
                        "_changes style=all_docs, limit=5000",
                        changes_pages(5000, {}),
                    ),
                    "changes-all": (
                        "_changes style=all_docs, one request",
                        changes_pages(None, {}),
                    ),
                    "changes-docs-500": (
                        "_changes style=all_docs include_docs attachments, limit=500",
                        changes_pages(500, docs_params),
                    ),
                    "changes-docs-2000": (
                        "_changes style=all_docs include_docs attachments, limit=2000",
                        changes_pages(2000, docs_params),
                    ),
                    "changes-docs-10000": (
                        "_changes style=all_docs include_docs attachments, limit=10000",
                        changes_pages(10000, docs_params),
                    ),
                    "changes-docs-all": (
                        "_changes style=all_docs include_docs attachments, one request",
                        changes_pages(None, docs_params),
                    ),
                    "bulk-get": ("_bulk_get 500 a batch, 1 at once", bulk_get({}, 1)),
                    "bulk-get-4": ("_bulk_get 500 a batch, 4 at once", bulk_get({}, 4)),
                    "bulk-get-revs": (
                        "_bulk_get?revs=true, 4 at once",
                        bulk_get({"revs": "true"}, 4),
                    ),
                    "bulk-get-att": (
                        "_bulk_get?attachments=true, 4 at once",
                        bulk_get({"attachments": "true"}, 4),
                    ),
                    "bulk-get-revs-att": (
                        "_bulk_get?revs=true&attachments=true, 4 at once",
                        bulk_get({"revs": "true", "attachments": "true"}, 4),
                    ),
                    "all-docs-keys": (
                        "POST _all_docs keys include_docs attachments, 500 a batch, 4 at once",
                        all_docs_keys(4),
                    ),
                    "bulk-get-leaves": (
                        "_bulk_get?revs=true&attachments=true of their leaves by revision "
                        "(conflicted, deleted), a document once a request",
                        bulk_get_leaves,
                    ),
                    "open-revs": (
                        "GET open_revs=all revs attachments, 8 at once (conflicted, deleted)",
                        open_revs,
                    ),
                }
                chosen = args.only or list(ways)
                print(f"uptime: {os.getloadavg()}", flush=True)
                print("| read | wall s | client CPU s | server CPU s | rows |", flush=True)
                for _ in range(args.rounds):
                    for key in chosen:
                        name, work = ways[key]
                        await timed(name, pid, work, results)
                if args.profile:
                    await profile_backup(client, db)
            await (await client[db]).delete()


async def profile_backup(client: Any, db: str) -> None:
    from aiocouch.backup import backup
    from aiocouch.database import Database

    with tempfile.TemporaryDirectory() as work:
        profiler = cProfile.Profile(time.process_time)
        started, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        await backup(Database(client, db), os.path.join(work, "b.jsonl"))
        profiler.disable()
        print(
            f"backup under cProfile: {time.perf_counter() - started:.1f} s wall, "
            f"{time.process_time() - cpu:.1f} s CPU"
        )
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="the ways to time (default: all)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--earlier", type=Path, help="an earlier version's src/aiocouch/_backing_up.py"
    )
    args = parser.parse_args(argv)
    asyncio.run(breakdown(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
