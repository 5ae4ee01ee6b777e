"""Where a workload's client CPU goes: one workload of ``bench/worker.py`` under cProfile.

Runs the workload with this project's client (or the plain aiohttp one) in this process,
profiles only the timed part, and prints the functions that spent the most CPU themselves
and the same time summed up by module::

    .venv/bin/python bench/cpu_profile.py iterate_all --n 100000
    .venv/bin/python bench/cpu_profile.py bulk_create --count 40000 --client aiohttp

It uses the server of ``COUCHDB_URL`` (with ``COUCHDB_USER`` / ``COUCHDB_PASSWORD``) or
starts a local pouchdb-server, and seeds the databases it reads (``bench_iter_<n>``, reused
when it already holds ``n`` documents). The profiler itself about doubles the CPU of
Python-level calls (it reads the process's CPU clock at every call), so the shares matter
here, not the totals (those are ``make bench``'s).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import worker  # noqa: E402

DEFAULT_COUNTS = {
    "create_save": 500,
    "get": 500,
    "get_concurrent": 2_000,
    "get_throughput": 10_000,
    "update": 500,
    "bulk_create": 40_000,
    "bulk_update": 5_000,
}


async def _database_size(session: Any, db_url: str) -> int | None:
    async with session.get(db_url) as resp:
        if resp.status != 200:
            return None
        return int((await resp.json())["doc_count"])


async def prepare(url: str, user: str, password: str, workload: str, n: int, count: int) -> str:
    """The database the workload works on: the seeded ``bench_iter_<n>``, or a new one."""
    async with worker.client_session(user, password) as session:
        if workload in ("get", "get_concurrent", "get_throughput", "iterate_all"):
            name = f"bench_iter_{n}"
            if await _database_size(session, f"{url}/{name}") != n:
                async with session.delete(f"{url}/{name}"):
                    pass
                await worker.seed(session, f"{url}/{quote(name)}", n)
            return name
        name = f"bench_profile_{uuid.uuid4().hex[:8]}"
        if workload in ("update", "bulk_update"):
            await worker.seed(session, f"{url}/{name}", count)
        else:
            async with session.put(f"{url}/{name}") as resp:
                resp.raise_for_status()
        return name


async def profiled(args: argparse.Namespace, url: str, user: str, password: str) -> pstats.Stats:
    """Runs the workload once untimed (warm-up), then once under the profiler."""
    db = await prepare(url, user, password, args.workload, args.n, args.count)
    # The process's CPU clock, not the wall clock: on a loaded machine a process waits
    # for a CPU inside any call (send() most of all), which is no CPU it spends.
    profile = cProfile.Profile(time.process_time)
    if args.client == "aiohttp":
        async with worker.client_session(user, password) as session:
            plain = worker.AiohttpWorkloads(session, f"{url}/{db}", args.count, args.n)
            body = getattr(plain, args.workload)()
            await plain._get_json(f"{url}/")
            profile.enable()
            await body()
            profile.disable()
    else:
        from aiocouch import CouchDB, Database

        async with CouchDB(url, user=user, password=password) as couchdb:
            client = worker.AiocouchWorkloads(Database(couchdb, db), args.count, args.n)
            body = getattr(client, args.workload)()
            await couchdb.info()
            profile.enable()
            await body()
            profile.disable()
    return pstats.Stats(profile)


def by_module(stats: pstats.Stats) -> list[tuple[str, float]]:
    """The functions' own time, summed up by file (C functions by their name)."""
    totals: defaultdict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if filename == "~":
            key = name
        elif "aiocouch" in filename:
            key = "aiocouch/" + os.path.basename(filename)
        else:
            parts = Path(filename).parts
            key = "/".join(parts[-2:])
        totals[key] += own
    return sorted(totals.items(), key=lambda item: -item[1])


def main(argv: Sequence[str] | None = None) -> int:
    """Profiles one workload and prints the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("workload", choices=worker.WORKLOADS)
    parser.add_argument("--client", choices=("ours", "aiohttp"), default="ours")
    parser.add_argument("--n", type=int, default=100_000, help="size of the read database")
    parser.add_argument("--count", type=int, help="documents or requests (as make bench)")
    parser.add_argument("--top", type=int, default=25, help="rows of each table")
    args = parser.parse_args(argv)
    if args.count is None:
        args.count = DEFAULT_COUNTS.get(args.workload, args.n)
    from testserver.pouchdb_server import server_from_environment

    with server_from_environment() as server:
        stats = asyncio.run(profiled(args, server.url, server.user, server.password))
    total = sum(own for _, _, own, _, _ in stats.stats.values())  # type: ignore[attr-defined]
    print(f"{args.workload} ({args.client}): {total:.3f} s of profiled own time\n")
    print("| module | own s | share |\n|---|---:|---:|")
    for key, own in by_module(stats)[: args.top]:
        print(f"| {key} | {own:.3f} | {own / total:.0%} |")
    print()
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
