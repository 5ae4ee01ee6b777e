"""Where the client CPU of a bulk workload goes, timed by hand (no profiler).

Runs ``bulk_create`` or ``bulk_update`` of ``bench/worker.py`` once in this process, as the
worker does (data made and a collection run before the timed part), and prints one JSON
line: the CPU (``time.process_time``) of the whole block and of its parts, and the
collector's work inside it (a ``gc.callbacks`` hook: collections of each generation and
their CPU, also the share that fell inside each part)::

    .venv/bin/python bench/bulk_breakdown.py bulk_create
    .venv/bin/python bench/bulk_breakdown.py bulk_update --client aiohttp

The parts of this project's client are its synchronous steps (wrapped here, so that
awaiting requests, during which other batches run, is not counted in them): ``create``
(the caller's loop of ``bulk.create()`` calls, from the end of ``__aenter__`` to the start
of ``__aexit__``), ``load`` (making the Documents of ``update_docs``' read), ``encode``
(``Document._dirty_of``: finding and encoding the changed documents; ``Document._new_body``:
new ones encoded at once), ``decode`` (every ``_json.loads``: the answers), ``record``
(``BulkOperation._record``); ``rest`` is the block less those: requests, the event loop,
the batches' bodies. ``system`` is the kernel's share of the whole block (also in
``total``); ``page_faults`` the block's minor page faults (fresh memory touched for the
first time: each costs the kernel a few microseconds), also by part. Plain aiohttp's
parts are ``json.loads`` and ``json.dumps``. The server is
``COUCHDB_URL`` or a pouchdb-server started for the run; each run uses a new database.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import worker  # noqa: E402

COUNTS = {"bulk_create": 40_000, "bulk_update": 5_000}


def _minor_faults() -> int:
    """The page faults of this process so far that needed no disk (fresh memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Breakdown:
    """CPU per part and the collector's collections, filled in while the workload runs."""

    def __init__(self) -> None:
        self.parts: defaultdict[str, float] = defaultdict(float)
        self.faults: defaultdict[str, int] = defaultdict(int)
        self.gc_in_part: defaultdict[str, float] = defaultdict(float)
        self.collections: Counter[int] = Counter()
        self.gc_cpu: defaultdict[int, float] = defaultdict(float)
        self.current: list[str] = []
        self.active = False
        self._gc_started = 0.0

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if not self.active:
            return
        if phase == "start":
            self._gc_started = time.process_time()
            return
        spent = time.process_time() - self._gc_started
        self.collections[info["generation"]] += 1
        self.gc_cpu[info["generation"]] += spent
        self.gc_in_part[self.current[-1] if self.current else "rest"] += spent

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        self.current.append(name)
        started, faults = time.process_time(), _minor_faults()
        try:
            yield
        finally:
            self.parts[name] += time.process_time() - started
            self.faults[name] += _minor_faults() - faults
            self.current.pop()

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return function(*args, **kwargs)

        return wrapped


def instrument_ours(breakdown: Breakdown) -> None:
    """Wraps the synchronous steps of this project's bulk operations."""
    from aiocouch import _bulk_loading, _json, bulk
    from aiocouch.document import Document

    _json.loads = breakdown.wrap("decode", _json.loads)
    dirty_of, new_body = Document._dirty_of, Document._new_body
    Document._dirty_of = staticmethod(breakdown.wrap("encode", dirty_of))  # type: ignore[method-assign]
    Document._new_body = staticmethod(breakdown.wrap("encode", new_body))  # type: ignore[method-assign]
    from_server_each = Document._from_server_each.__func__  # type: ignore[attr-defined]
    _bulk_loading.Document = type(  # type: ignore[attr-defined]
        "Document",
        (Document,),
        {
            "_from_server_each": classmethod(
                breakdown.wrap("load", lambda cls, *a: from_server_each(Document, *a))
            )
        },
    )
    operation = bulk.BulkOperation
    operation._record = breakdown.wrap("record", operation._record)  # type: ignore[method-assign]
    for cls in (bulk.BulkCreateOperation, bulk.BulkUpdateOperation):
        enter = cls.__aenter__

        async def timed_enter(self: Any, _enter: Any = enter) -> Any:
            result = await _enter(self)
            breakdown.current.append("create")
            breakdown._create_started = time.process_time()  # type: ignore[attr-defined]
            return result

        cls.__aenter__ = timed_enter  # type: ignore[method-assign]
    exit_ = operation.__aexit__

    async def timed_exit(self: Any, *args: Any) -> Any:
        if breakdown.current and breakdown.current[-1] == "create":
            breakdown.current.pop()
            breakdown.parts["create"] += time.process_time() - breakdown._create_started  # type: ignore[attr-defined]
        return await exit_(self, *args)

    operation.__aexit__ = timed_exit  # type: ignore[method-assign]


def instrument_aiohttp(breakdown: Breakdown) -> None:
    """Wraps plain aiohttp's JSON calls (the worker calls ``json.loads``/``json.dumps``)."""
    worker.json.loads = breakdown.wrap("json.loads", json.loads)  # type: ignore[attr-defined]
    worker.json.dumps = breakdown.wrap("json.dumps", json.dumps)  # type: ignore[attr-defined]


async def prepare(url: str, user: str, password: str, workload: str, count: int) -> str:
    """A new database: seeded with ``count`` documents for ``bulk_update``, else empty."""
    name = f"bench_breakdown_{uuid.uuid4().hex[:8]}"
    async with worker.client_session(user, password) as session:
        if workload == "bulk_update":
            await worker.seed(session, f"{url}/{name}", count)
        else:
            async with session.put(f"{url}/{name}") as resp:
                resp.raise_for_status()
    return name


async def run(args: argparse.Namespace, url: str, user: str, password: str) -> dict[str, Any]:
    db = await prepare(url, user, password, args.workload, args.count)
    breakdown = Breakdown()
    gc.callbacks.append(breakdown.on_gc)
    if args.client == "aiohttp":
        instrument_aiohttp(breakdown)
        session_cm = worker.client_session(user, password)
        session = await session_cm.__aenter__()
        plain = worker.AiohttpWorkloads(session, f"{url}/{db}", args.count, 0)
        body = getattr(plain, args.workload)()
        await plain._get_json(f"{url}/")
        closing = session_cm.__aexit__(None, None, None)
    else:
        from aiocouch import CouchDB, Database

        instrument_ours(breakdown)
        couchdb_cm = CouchDB(url, user=user, password=password)
        couchdb = await couchdb_cm.__aenter__()
        client = worker.AiocouchWorkloads(Database(couchdb, db), args.count, 0)
        body = getattr(client, args.workload)()
        await couchdb.info()
        closing = couchdb_cm.__aexit__(None, None, None)
    gc.collect()  # (as bench/measure.py does before the timed part)
    breakdown.active = True
    started, usage = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    await body()
    total = time.process_time() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    system = usage_after.ru_stime - usage.ru_stime
    breakdown.active = False
    await closing
    measured = sum(breakdown.parts.values())
    return {
        "client": args.client,
        "workload": args.workload,
        "total": round(total, 4),
        "system": round(system, 4),
        "parts": {name: round(cpu, 4) for name, cpu in breakdown.parts.items()},
        "rest": round(total - measured, 4),
        "page_faults": usage_after.ru_minflt - usage.ru_minflt,
        "page_faults_in_part": dict(breakdown.faults),
        "gc_collections": dict(sorted(breakdown.collections.items())),
        "gc_cpu": {gen: round(cpu, 4) for gen, cpu in sorted(breakdown.gc_cpu.items())},
        "gc_in_part": {name: round(cpu, 4) for name, cpu in breakdown.gc_in_part.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("workload", choices=sorted(COUNTS))
    parser.add_argument("--client", choices=("ours", "aiohttp"), default="ours")
    parser.add_argument("--count", type=int, help="documents (as make bench)")
    args = parser.parse_args(argv)
    if args.count is None:
        args.count = COUNTS[args.workload]
    from testserver.pouchdb_server import server_from_environment

    with server_from_environment() as server:
        result = asyncio.run(run(args, server.url, server.user, server.password))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
