"""How this project scales: bulk creation and iteration at 100,000 and 1,000,000 documents.

``make bench-scale`` runs it against a local pouchdb-server (or ``COUCHDB_URL``). Each
step runs in a fresh process, so the peak RSS of one step does not hide another's; it
prints client CPU, wall time and (for iteration) the growth of the peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from typing import Any

from aiocouch import CouchDB
from testserver.pouchdb_server import server_from_environment

SIZES = (100_000, 1_000_000)


def cpu_seconds() -> float:
    """User + system CPU time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """The peak resident set of this process (VmHWM), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1e3
    return 0.0


def rss_mb() -> float:
    """The current resident set of this process, in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def document(index: int) -> dict[str, Any]:
    """A document of about 350 bytes."""
    return {
        "index": index,
        "name": f"document {index}",
        "tags": ["a", "b", "c"],
        "payload": "lorem ipsum dolor sit amet " * 9,
    }


async def create(url: str, user: str, password: str, name: str, count: int) -> None:
    """Creates ``count`` documents in database ``name`` with one bulk operation."""
    async with CouchDB(url, user, password) as client:
        database = await client.create(name, exists_ok=True)
        started, wall = cpu_seconds(), time.monotonic()
        async with database.create_docs() as bulk:
            for index in range(count):
                bulk.create(f"doc-{index:07}", data=document(index))
        assert bulk.ok is not None and bulk.error is not None
        print(
            f"bulk create {count:>9,}: client CPU {cpu_seconds() - started:6.2f} s, "
            f"wall {time.monotonic() - wall:6.1f} s, ok {len(bulk.ok):,}, "
            f"error {len(bulk.error):,}",
            flush=True,
        )


async def iterate(url: str, user: str, password: str, name: str) -> None:
    """Iterates every document of database ``name`` with ``docs()``."""
    async with CouchDB(url, user, password) as client:
        database = await client[name]
        baseline, started, wall = rss_mb(), cpu_seconds(), time.monotonic()
        count = 0
        async for _ in database.docs():
            count += 1
        print(
            f"iterate     {count:>9,}: client CPU {cpu_seconds() - started:6.2f} s, "
            f"wall {time.monotonic() - wall:6.1f} s, "
            f"peak RSS growth {peak_rss_mb() - baseline:6.1f} MB",
            flush=True,
        )


async def delete(url: str, user: str, password: str, names: list[str]) -> None:
    """Deletes the databases the run created."""
    async with CouchDB(url, user, password) as client:
        for name in names:
            await (await client[name]).delete()


def main() -> None:
    """Runs every step in a fresh process against one server."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", nargs="?", choices=("create", "iterate"))
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    if options.step == "create":
        url, user, password, name, count = options.args
        asyncio.run(create(url, user, password, name, int(count)))
        return
    if options.step == "iterate":
        asyncio.run(iterate(*options.args))
        return
    with server_from_environment() as server:
        credentials = [server.url, server.user, server.password]
        names = [f"aiocouch_scale_{size}" for size in SIZES]
        try:
            for name, size in zip(names, SIZES):
                step = [sys.executable, __file__, "create", *credentials, name, str(size)]
                subprocess.run(step, check=True)
            for name in names:
                step = [sys.executable, __file__, "iterate", *credentials, name]
                subprocess.run(step, check=True)
        finally:
            asyncio.run(delete(server.url, server.user, server.password, names))


if __name__ == "__main__":
    main()
