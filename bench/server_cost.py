"""The server's CPU per document GET, by the way the client authenticates.

    .venv/bin/python bench/server_cost.py [--count 2000] [--rounds 3]

Starts a local pouchdb-server (its process's CPU is read from ``/proc``, so no
``COUCHDB_URL``), seeds 50 documents, then sends ``--count`` GETs with 64 in flight from
this project's client with ``user=``/``password=`` (basic authentication on every
request, as aiocouch 4.0.1) and with ``auth=SessionAuth(...)`` (one login, then the
``AuthSession`` cookie), and the same with plain aiohttp (and without credentials, which
pouchdb-server allows for reads), each round starting with the next client. It prints
the server's CPU (user + system) per request and the documents per second of each.

On the shared benchmark machine the server, not the client, bounds ``get_throughput``:
whatever the server spends per request sets the documents per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "src")]

import aiohttp  # noqa: E402

from aiocouch import CouchDB, Database  # noqa: E402
from aiocouch.auth import SessionAuth  # noqa: E402
from testserver.pouchdb_server import LocalCouchServer  # noqa: E402

IN_FLIGHT = 64
DOCS = 50


def server_cpu(pid: int) -> float:
    """User + system seconds the process ``pid`` spent so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def in_flight(count: int, get: Callable[[str], Awaitable[object]]) -> None:
    """``count`` GETs, :data:`IN_FLIGHT` at a time."""
    todo = list(range(count))

    async def work() -> None:
        while todo:
            await get(f"d{todo.pop() % DOCS}")

    await asyncio.gather(*(work() for _ in range(IN_FLIGHT)))


async def measured(
    pid: int, count: int, get: Callable[[str], Awaitable[object]]
) -> tuple[float, float]:
    """Server CPU µs per request and documents per second of ``count`` GETs."""
    await get("d0")
    cpu, started = server_cpu(pid), time.perf_counter()
    await in_flight(count, get)
    return (server_cpu(pid) - cpu) / count * 1e6, count / (time.perf_counter() - started)


async def ours(url: str, pid: int, count: int, **options: object) -> tuple[float, float]:
    async with CouchDB(url, **options) as couchdb:  # type: ignore[arg-type]
        db = Database(couchdb, "server_cost")
        return await measured(pid, count, db.get)


async def plain(url: str, pid: int, count: int, headers: dict[str, str]) -> tuple[float, float]:
    async with aiohttp.ClientSession(headers={"Accept": "application/json", **headers}) as session:

        async def get(identifier: str) -> object:
            async with session.get(f"{url}/server_cost/{identifier}") as response:
                response.raise_for_status()
                return await response.read()

        return await measured(pid, count, get)


async def main(args: argparse.Namespace, url: str, user: str, password: str, pid: int) -> None:
    basic = {"Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession(headers=basic) as session:
        await session.put(f"{url}/server_cost")
        for index in range(DOCS):
            await session.put(f"{url}/server_cost/d{index}", json={"index": index})
        async with session.post(
            f"{url}/_session", json={"name": user, "password": password}
        ) as response:
            cookie = {"Cookie": f"AuthSession={response.cookies['AuthSession'].value}"}
    clients = {
        "this project, user= and password= (basic)": lambda: ours(
            url, pid, args.count, user=user, password=password
        ),
        "this project, auth=SessionAuth (cookie)": lambda: ours(
            url, pid, args.count, auth=SessionAuth(user, password)
        ),
        "plain aiohttp, basic": lambda: plain(url, pid, args.count, basic),
        "plain aiohttp, cookie": lambda: plain(url, pid, args.count, cookie),
        # What aiocouchdb3's with_login() sends to a server named by IP address: aiohttp's
        # cookie jar keeps no cookie of an IP address, so its requests carry no credentials.
        "plain aiohttp, no credentials": lambda: plain(url, pid, args.count, {}),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    names = list(clients)
    for round_number in range(args.rounds):
        # Each round starts with another client: none is always the first after a pause.
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(await clients[name]())
    print(f"| client ({args.count} GETs, {IN_FLIGHT} in flight) | server CPU µs per GET | docs/s |")
    print("|---|---:|---:|")
    for name, runs in samples.items():
        cpu = statistics.median(run[0] for run in runs)
        rate = statistics.median(run[1] for run in runs)
        print(f"| {name} | {cpu:.0f} | {rate:.0f} |")


def cli() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = LocalCouchServer("admin", "password", in_memory=True)
    server.start()
    try:
        asyncio.run(main(args, server.url, server.user, server.password, server.pid))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
