"""Benchmark: a 1 GiB attachment uploaded and downloaded through this project, streamed.

``make bench-attachments`` runs this with the repository's ``.venv`` Python. Against
``COUCHDB_URL`` (with ``COUCHDB_USER`` / ``COUCHDB_PASSWORD``) if set; else against
``testserver.attachment_server``, a stand-in for CouchDB's attachment endpoints that keeps
attachments on disk (pouchdb-server holds an attachment in memory as base64 and cannot
take 1 GiB). Each measurement runs in a fresh process, for each transport:

- ``upload-file``: ``Attachment.save_from(path)`` of a 1 GiB file;
- ``upload-iterable``: ``save_from`` of an async generator of 1 MiB pieces (chunked);
- ``download-file``: ``Attachment.fetch_to(path)``;
- ``download-stream``: ``async for`` over ``Attachment.stream()``, hashing the pieces.

It prints a Markdown table: wall time, throughput, client CPU, and the growth of the
process's peak resident set over its size just before the transfer. Options: ``--size``
in MiB (1024), ``--transports``, ``--cases``. Figures of a run: ``bench/attachments.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CASES = ("upload-file", "upload-iterable", "download-file", "download-stream")
TRANSPORTS = ("lean", "aiohttp")
MIB = 1 << 20


@contextmanager
def server() -> Iterator[tuple[str, str | None, str | None]]:
    """``(url, user, password)`` of COUCHDB_URL, or of a stand-in server started here."""
    url = os.environ.get("COUCHDB_URL", "").strip()
    if url:
        yield url, os.environ.get("COUCHDB_USER"), os.environ.get("COUCHDB_PASSWORD")
        return
    process = subprocess.Popen(
        [sys.executable, "-m", "testserver.attachment_server"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip(), None, None
    finally:
        process.kill()
        process.wait()


def rss_bytes() -> int:
    """The resident set of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def pieces(size: int) -> AsyncIterator[bytes]:
    block = os.urandom(MIB)
    for index in range(size // MIB):
        yield block[index % 251 :] + block[: index % 251]


async def measure(
    case: str, transport: str, url: str, auth: dict[str, Any], work: str
) -> dict[str, Any]:
    """One case in this process: the figures as a dict."""
    import aiohttp

    from aiocouch import CouchDB, Database, Document

    size = int(os.environ["BENCH_SIZE"])
    options: dict[str, Any] = dict(auth)
    if transport == "aiohttp":
        options["connector"] = aiohttp.TCPConnector()
    source, target = Path(work) / "source.bin", Path(work) / "target.bin"
    async with CouchDB(url, **options) as client:
        database = Database(client, os.environ["BENCH_DB"])
        document = Document(database, f"{case}-{transport}")
        await document.save()
        attachment = document.attachment("large.bin")
        if case.startswith("download"):
            await attachment.save_from(source, "application/octet-stream")
        before_rss = rss_bytes()
        before_cpu = time.process_time()
        started = time.perf_counter()
        if case == "upload-file":
            await attachment.save_from(source, "application/octet-stream")
        elif case == "upload-iterable":
            await attachment.save_from(pieces(size), "application/octet-stream")
        elif case == "download-file":
            assert await attachment.fetch_to(target) == size
        else:
            md5 = hashlib.md5()
            async for piece in attachment.stream():
                md5.update(piece)
        wall = time.perf_counter() - started
        cpu = time.process_time() - before_cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        stored = (await attachment.info()).length
    return {
        "case": case,
        "transport": transport,
        "size": size,
        "stored": stored,
        "wall": wall,
        "cpu": cpu,
        "rss_growth": max(peak - before_rss, 0),
    }


def run_case(
    case: str,
    transport: str,
    url: str,
    user: str | None,
    password: str | None,
    work: str,
    size: int,
    db: str,
) -> dict[str, Any]:
    """Runs one case in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_SIZE": str(size), "BENCH_DB": db}
    auth = {"user": user, "password": password} if user else {}
    command = [sys.executable, __file__, "--worker", case, transport, url, json.dumps(auth), work]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB (default 1024)")
    parser.add_argument("--transports", nargs="+", choices=TRANSPORTS, default=TRANSPORTS)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        case, transport, url, auth, work = args.worker
        print(json.dumps(asyncio.run(measure(case, transport, url, json.loads(auth), work))))
        return 0
    size = args.size * MIB
    with (
        tempfile.TemporaryDirectory(prefix="aiocouch-bench-") as work,
        server() as (url, user, password),
    ):
        with open(Path(work) / "source.bin", "wb") as file:
            for _ in range(args.size):
                file.write(os.urandom(MIB))
        db = f"bench_attachments_{uuid.uuid4().hex[:8]}"
        create_database(url, user, password, db)
        try:
            rows = [
                run_case(case, transport, url, user, password, work, size, db)
                for case in args.cases
                for transport in args.transports
            ]
        finally:
            delete_database(url, user, password, db)
    where = url if user else "stand-in (testserver.attachment_server)"
    print(f"# Streamed attachments: {args.size} MiB, server {where}\n")
    print("| case | transport | wall s | MiB/s | client CPU s | peak RSS growth MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        assert row["stored"] == size, row
        print(
            f"| {row['case']} | {row['transport']} | {row['wall']:.2f} | "
            f"{size / MIB / row['wall']:.0f} | {row['cpu']:.2f} | {row['rss_growth'] / MIB:.1f} |"
        )
    return 0


def create_database(url: str, user: str | None, password: str | None, name: str) -> None:
    """PUT /{db} on a real server (the stand-in needs none)."""
    if user:
        asyncio.run(_database_call(url, user, password, name, create=True))


def delete_database(url: str, user: str | None, password: str | None, name: str) -> None:
    if user:
        asyncio.run(_database_call(url, user, password, name, create=False))


async def _database_call(
    url: str, user: str, password: str | None, name: str, *, create: bool
) -> None:
    from aiocouch import CouchDB

    async with CouchDB(url, user=user, password=password) as client:
        if create:
            await client.create(name)
        else:
            await (await client[name]).delete()


if __name__ == "__main__":
    sys.exit(main())
