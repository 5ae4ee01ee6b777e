"""The floor of iteration: ``db.docs()`` against ``orjson.loads`` of the same response.

A client must at least decode the JSON it receives. This script saves the exact bytes of
``GET /{db}/_all_docs?include_docs=true`` for a database of N documents, then measures,
each in a fresh process:

* ``orjson.loads`` of those bytes, once as Python runs it by default and once with the
  garbage collector off (decoding a whole large answer at once also pays for the
  collector walking the growing result; ``docs()`` holds one row at a time);
* ``async for doc in db.docs()`` over the same database with this project's client.

It prints client CPU (user + system) and peak RSS growth of each, and the ratio of
``docs()`` to each decoding figure::

    .venv/bin/python bench/floor.py --n 100000
    .venv/bin/python bench/floor.py --n 1000000 --repeat 1
    .venv/bin/python bench/floor.py --n 100000 --baseline 63f53f1   # also docs() at a commit

With ``--baseline COMMIT``, ``docs()`` of this project's ``src/`` as of that commit runs too,
in the same rounds, so that a change is measured before and after under the same load.

It uses the server of ``COUCHDB_URL`` (``COUCHDB_USER`` / ``COUCHDB_PASSWORD``) or starts a
local pouchdb-server, and seeds ``bench_iter_<n>`` (the documents of ``bench/run.py``)
unless it already holds N documents.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import worker  # noqa: E402

_SILENCE = 1800.0
"""Seconds the server may take before the first byte of the answer (and between bytes)."""


def cpu_seconds() -> float:
    """User + system CPU time of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """The current resident set size of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The peak resident set size of this process (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# -- the steps, each run in a fresh process ---------------------------------------------------


def decode_step(path: str, collect: bool) -> dict[str, Any]:
    """``orjson.loads`` of the saved body (read into memory first, not timed)."""
    import orjson

    body = Path(path).read_bytes()
    if not collect:
        gc.disable()
    gc.collect()
    before = rss_bytes()
    started = cpu_seconds()
    rows = len(orjson.loads(body)["rows"])
    cpu = cpu_seconds() - started
    return {"cpu_s": cpu, "rss_mb": (peak_rss_bytes() - before) / 1e6, "items": rows}


async def iterate_step(url: str, user: str, password: str, db: str) -> dict[str, Any]:
    """Every document of ``db`` through this project's ``db.docs()`` (the ``aiocouch`` on
    ``sys.path``)."""
    from aiocouch import CouchDB, Database

    # pouchdb-server builds the whole answer before its first byte: minutes for 1,000,000
    # documents on a loaded machine, longer than the default sock_read
    timeout = aiohttp.ClientTimeout(total=None, sock_read=_SILENCE)
    async with CouchDB(url, user=user, password=password, timeout=timeout) as couchdb:
        await couchdb.info()  # the connection and the first-use imports, not timed
        database = Database(couchdb, db)
        gc.collect()
        before = rss_bytes()
        started = cpu_seconds()
        items = 0
        async for _ in database.docs():
            items += 1
        cpu = cpu_seconds() - started
    return {"cpu_s": cpu, "rss_mb": (peak_rss_bytes() - before) / 1e6, "items": items}


# -- the orchestration ------------------------------------------------------------------------


async def prepare(url: str, user: str, password: str, n: int, path: Path) -> str:
    """Seeds ``bench_iter_<n>`` if needed and saves its ``_all_docs`` body to ``path``."""
    name = f"bench_iter_{n}"
    async with worker.client_session(user, password) as session:
        async with session.get(f"{url}/{name}") as resp:
            count = (await resp.json())["doc_count"] if resp.status == 200 else None
        if count != n:
            async with session.delete(f"{url}/{name}"):
                pass
            print(f"seeding {name} with {n:,} documents ...", flush=True)
            await worker.seed(session, f"{url}/{name}", n)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=_SILENCE)
        all_docs = f"{url}/{name}/_all_docs?include_docs=true"
        async with session.get(all_docs, timeout=timeout) as resp:
            resp.raise_for_status()
            with path.open("wb") as file:
                async for piece in resp.content.iter_chunked(1 << 20):
                    file.write(piece)
    return name


def run_step(arguments: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One step in a fresh process; its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--step", *arguments]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Measures the floor and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=100_000, help="documents in the database")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each step (median)")
    parser.add_argument("--baseline", help="also measure docs() of src/ as of this commit")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        kind, *rest = args.step
        if kind == "decode":
            result = decode_step(rest[0], rest[1] == "gc")
        else:
            if len(rest) > 2:
                sys.path.insert(0, rest[2])  # a baseline's src/
            user, password = os.environ["COUCHDB_USER"], os.environ["COUCHDB_PASSWORD"]
            result = asyncio.run(iterate_step(rest[0], user, password, rest[1]))
        print(json.dumps(result))
        return 0

    import run

    from testserver.pouchdb_server import server_from_environment

    with contextlib.ExitStack() as stack:
        baseline = (
            stack.enter_context(run.exported_baseline(args.baseline)) if args.baseline else None
        )
        server = stack.enter_context(server_from_environment())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        body = Path(tmp) / "all_docs.json"
        started = time.perf_counter()
        db = asyncio.run(prepare(server.url, server.user, server.password, args.n, body))
        took = time.perf_counter() - started
        print(f"{body.stat().st_size / 1e6:.0f} MB body saved ({took:.0f} s)")
        env = {**os.environ, "COUCHDB_USER": server.user, "COUCHDB_PASSWORD": server.password}
        samples: dict[str, list[dict[str, Any]]] = {"gc": [], "nogc": [], "docs": []}
        if baseline:
            samples["baseline"] = []
        for _ in range(args.repeat):  # interleaved, so that a slow spell falls on all steps
            samples["gc"].append(run_step(["decode", str(body), "gc"], env))
            samples["nogc"].append(run_step(["decode", str(body), "nogc"], env))
            samples["docs"].append(run_step(["iterate", server.url, db], env))
            if baseline:
                src = str(run.baseline_src(baseline.partition("@")[2]))
                samples["baseline"].append(run_step(["iterate", server.url, db, src], env))
    for kind, runs in samples.items():
        counts = {run["items"] for run in runs}
        if counts != {args.n}:
            raise SystemExit(f"{kind}: {counts} items, expected {args.n}")
    median = {kind: statistics.median(r["cpu_s"] for r in runs) for kind, runs in samples.items()}
    peak = {kind: statistics.median(r["rss_mb"] for r in runs) for kind, runs in samples.items()}
    labels = {
        "gc": "orjson.loads of the body",
        "nogc": "orjson.loads of the body, gc off",
        "docs": "db.docs()",
        "baseline": f"db.docs() at {args.baseline}",
    }
    print(f"\n{args.n:,} documents, median of {args.repeat} (load: {os.getloadavg()[0]:.1f})\n")
    print("| step | client CPU s | min-max | peak RSS growth MB |\n|---|---:|---:|---:|")
    for kind, runs in samples.items():
        low, high = min(r["cpu_s"] for r in runs), max(r["cpu_s"] for r in runs)
        print(f"| {labels[kind]} | {median[kind]:.3f} | {low:.3f}-{high:.3f} | {peak[kind]:.1f} |")
    for kind in ("docs", "baseline") if baseline else ("docs",):
        print(
            f"\n{labels[kind]} / orjson.loads: {median[kind] / median['gc']:.2f}x; "
            f"with the collector off for orjson.loads: {median[kind] / median['nogc']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
