"""Benchmark over https: client CPU of the lean transport against aiohttp's, through TLS.

    .venv/bin/python bench/tls.py [--count 500] [--rounds 5]

It starts a local pouchdb-server (or uses ``COUCHDB_URL``), puts a TLS-terminating proxy
(``testserver.tls_proxy``, certificates made by ``trustme``) in front of it in a process
of its own, seeds a read database, then measures ``--count`` single-document GETs
(``get``) and ``Document(db, id, data).save()`` calls (``create_save``), each in a fresh
process through ``bench/worker.py``'s workload code, for these clients:

* ``lean``          - this project, ``CouchDB(https_url, ssl=context)``: the lean transport;
* ``aiohttp-transport`` - this project, ``CouchDB(https_url,
  connector=aiohttp.TCPConnector(ssl=context))``: aiohttp's transport, as before TLS
  reached the lean one (and as aiocouch 4.0.1 users pass a context);
* ``plain-aiohttp`` - the same calls made by hand with an aiohttp session;
* ``lean-http``     - this project over plain http, straight to the server: what TLS adds.

The rounds take turns between the clients; the table shows the median client CPU
(user + system seconds of the worker process during the workload) and the range.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

import worker  # noqa: E402  (bench/worker.py, found through the path set above)

CLIENTS = ("lean", "aiohttp-transport", "plain-aiohttp", "lean-http")
WORKLOADS = ("get", "create_save")


async def measure_one(args: argparse.Namespace) -> dict[str, Any]:
    """One workload of one client, measured in this process (the ``--worker`` mode)."""
    import aiohttp

    from aiocouch import CouchDB, Database

    user = os.environ["COUCHDB_USER"]
    password = os.environ["COUCHDB_PASSWORD"]
    context = ssl.create_default_context(cafile=args.ca)
    if args.client == "plain-aiohttp":
        connector = aiohttp.TCPConnector(ssl=context)
        async with worker.client_session(user, password, connector=connector) as session:
            db_url = f"{args.url}/{quote(args.db, safe='')}"
            plain = worker.AiohttpWorkloads(session, db_url, args.count, args.db_size)
            body = getattr(plain, args.workload)()
            await plain._get_json(f"{args.url}/")  # warm-up: connection, imports
            measured = await worker.measure(body)
        transport = "aiohttp session"
    else:
        options: dict[str, Any] = {"user": user, "password": password}
        if args.client == "lean":
            options["ssl"] = context
        elif args.client == "aiohttp-transport":
            options["connector"] = aiohttp.TCPConnector(ssl=context)
        async with CouchDB(args.url, **options) as couchdb:
            transport = type(couchdb._server._transport).__name__
            workloads = worker.AiocouchWorkloads(
                Database(couchdb, args.db), args.count, args.db_size
            )
            body = getattr(workloads, args.workload)()
            await couchdb.info()  # warm-up: connection, TLS handshake, imports
            measured = await worker.measure(body)
    return {
        "client": args.client,
        "workload": args.workload,
        "transport": transport,
        "cpu_s": measured.cpu_s,
        "wall_s": measured.wall_s,
        "items": measured.items,
        "error": measured.error,
    }


async def run_proxy(upstream: str, cert: str, key: str) -> None:
    """Serves the TLS proxy until killed (the ``--proxy`` mode); prints its URL first."""
    from testserver.tls_proxy import TLSProxy

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with TLSProxy(upstream, context) as proxy:
        print(proxy.url, flush=True)
        await asyncio.Event().wait()


def run_worker(
    client: str, workload: str, urls: dict[str, str], db: str, args: argparse.Namespace
) -> dict[str, Any]:
    url = urls["http" if client == "lean-http" else "https"]
    command = [sys.executable, __file__, "--worker", "--client", client]
    command += ["--workload", workload, "--url", url, "--db", db, "--ca", args.ca]
    command += ["--count", str(args.count), "--db-size", str(args.db_size)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    if result["error"]:
        raise RuntimeError(f"{client} {workload}: {result['error']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=500, help="calls per workload")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--db-size", type=int, default=2000, help="documents to read from")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--proxy", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS)
    parser.add_argument("--workload", choices=WORKLOADS)
    parser.add_argument("--url")
    parser.add_argument("--db")
    parser.add_argument("--ca")
    args = parser.parse_args()
    if args.proxy:
        asyncio.run(run_proxy(*args.proxy))
        return 0
    if args.worker:
        print(json.dumps(asyncio.run(measure_one(args))), flush=True)
        return 0
    return orchestrate(args)


def write_certificate(directory: str) -> tuple[Any, str, str, str]:
    """A new ``trustme`` CA and a certificate for ``localhost`` it signed, written into
    ``directory``: ``(the CA, certificate path, key path, the CA's certificate path)``."""
    import trustme

    ca = trustme.CA()
    certificate = ca.issue_cert("localhost")
    cert, key, ca_cert = (f"{directory}/{name}.pem" for name in ("cert", "key", "ca"))
    certificate.cert_chain_pems[0].write_to_path(cert)
    certificate.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(ca_cert)
    return ca, cert, key, ca_cert


def orchestrate(args: argparse.Namespace) -> int:
    from testserver.pouchdb_server import server_from_environment

    with server_from_environment() as server, tempfile.TemporaryDirectory() as tmp:
        _, cert, key, args.ca = write_certificate(tmp)
        os.environ["COUCHDB_USER"], os.environ["COUCHDB_PASSWORD"] = (
            server.user,
            server.password,
        )
        proxy = subprocess.Popen(
            [sys.executable, __file__, "--proxy", server.url, cert, key],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proxy.stdout is not None
            urls = {"http": server.url, "https": proxy.stdout.readline().strip()}
            return measure_all(args, server, urls)
        finally:
            proxy.terminate()
            proxy.wait()


def measure_all(args: argparse.Namespace, server: Any, urls: dict[str, str]) -> int:
    read_db = f"bench_tls_read_{uuid.uuid4().hex[:8]}"
    asyncio.run(seed(server, read_db, args.db_size))
    cpu: dict[tuple[str, str], list[float]] = {}
    transports: dict[str, str] = {}
    try:
        for round_number in range(args.rounds):
            for workload in WORKLOADS:
                for client in CLIENTS:
                    db = read_db
                    if workload == "create_save":
                        db = f"bench_tls_write_{uuid.uuid4().hex[:8]}"
                        asyncio.run(seed(server, db, 0))
                    try:
                        result = run_worker(client, workload, urls, db, args)
                    finally:
                        if db != read_db:
                            asyncio.run(delete(server, db))
                    cpu.setdefault((workload, client), []).append(result["cpu_s"])
                    transports[client] = result["transport"]
            print(f"round {round_number + 1}/{args.rounds} done", flush=True)
    finally:
        asyncio.run(delete(server, read_db))
    print(f"\n{args.count} calls per workload, median of {args.rounds} runs (min-max):\n")
    print("| workload | " + " | ".join(CLIENTS) + " | lean / aiohttp-transport |")
    print("|---|" + "---:|" * (len(CLIENTS) + 1))
    for workload in WORKLOADS:
        medians = {client: statistics.median(cpu[(workload, client)]) for client in CLIENTS}
        cells = [
            f"{medians[c]:.3f} ({min(cpu[(workload, c)]):.3f}-{max(cpu[(workload, c)]):.3f})"
            for c in CLIENTS
        ]
        ratio = medians["lean"] / medians["aiohttp-transport"]
        print(f"| {workload} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    print("\ntransports: " + ", ".join(f"{c}: {t}" for c, t in transports.items()))
    print("load: " + os.popen("uptime").read().strip())
    return 0


async def seed(server: Any, name: str, count: int) -> None:
    async with worker.client_session(server.user, server.password) as session:
        await worker.seed(session, f"{server.url}/{quote(name, safe='')}", count)


async def delete(server: Any, name: str) -> None:
    url = f"{server.url}/{quote(name, safe='')}"
    session = worker.client_session(server.user, server.password)
    async with session, session.delete(url) as response:
        await response.read()


if __name__ == "__main__":
    sys.exit(main())
