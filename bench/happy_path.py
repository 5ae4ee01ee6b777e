"""The cost of retries and cookie sessions on the happy path, measured in one process.

Three clients of one server take turns, round after round, in the same process: the
defaults (retries on, basic authentication), ``retry=False``, and ``auth=SessionAuth``.
Each round sends, per client, 400 document GETs 32 at a time and then 100 one after the
other, and records the process CPU time each part took. Taking turns within one process
spreads a shared machine's load over all three alike, which separate processes
(``bench/run.py --clients ours ours-no-retry ours-session``) cannot do as well::

    .venv/bin/python bench/happy_path.py --rounds 40

Against ``COUCHDB_URL`` if set, else a local pouchdb-server (``make test`` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from aiocouch import CouchDB, Database
from aiocouch.auth import SessionAuth
from testserver.pouchdb_server import server_from_environment

DOCS = 200
IN_FLIGHT = 32
DATABASE = "bench_happy_path"


async def concurrent_gets(database: Database) -> None:
    """400 GETs, 32 in flight."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def get(i: int) -> None:
        async with slots:
            await database[f"d{i}"]

    for _ in range(2):
        await asyncio.gather(*(get(i) for i in range(DOCS)))


async def sequential_gets(database: Database) -> None:
    """100 GETs, one after the other."""
    for i in range(100):
        await database[f"d{i}"]


PARTS = (("32 in flight", concurrent_gets), ("one by one", sequential_gets))


async def measure(url: str, user: str, password: str, rounds: int) -> None:
    """Seeds the database, runs the rounds, prints the median and least CPU per part."""
    async with CouchDB(url, user, password) as admin:
        database = await admin.create(DATABASE, exists_ok=True)
        for i in range(DOCS):
            doc = await database.create(f"d{i}", exists_ok=True)
            doc["value"] = i
            await doc.save()
    clients = {
        "defaults": CouchDB(url, user, password),
        "retry=False": CouchDB(url, user, password, retry=False),
        "SessionAuth": CouchDB(url, auth=SessionAuth(user, password)),
    }
    samples: dict[str, list[float]] = {}
    try:
        databases = {name: await client[DATABASE] for name, client in clients.items()}
        for round_number in range(rounds + 1):  # round 0 warms up
            order = list(databases.items())
            if round_number % 2:
                order.reverse()
            for name, database in order:
                for part, work in PARTS:
                    started = time.process_time()
                    await work(database)
                    if round_number:
                        samples.setdefault(f"{name}, {part}", []).append(
                            time.process_time() - started
                        )
    finally:
        for client in clients.values():
            await client.close()
        async with CouchDB(url, user, password) as admin:
            await (await admin[DATABASE]).delete()
    for key, values in samples.items():
        print(
            f"{key:28} median {statistics.median(values) * 1000:7.2f} ms"
            f"  least {min(values) * 1000:7.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with server_from_environment() as server:
        asyncio.run(measure(server.url, server.user, server.password, args.rounds))


if __name__ == "__main__":
    main()
