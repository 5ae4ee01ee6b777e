"""One benchmark measurement: one workload, one client, one fresh process.

Run by ``bench/run.py``; prints a single JSON line on stdout::

    python -I bench/worker.py --client ours --workload get --url http://127.0.0.1:5984 \\
        --db bench_iter_100000 --count 500

Clients:

* ``ours``          - this project's ``aiocouch`` (the repository's ``.venv``), defaults;
* ``aiocouch401``   - ``aiocouch`` 4.0.1 from PyPI (``bench/.venv-aiocouch401``): same
  import name, so it only ever runs in a process and a virtual environment of its own;
* ``aiohttp``       - the same HTTP calls written by hand with aiohttp and the stdlib ``json``;
* ``ours-no-retry`` - this project with ``CouchDB(..., retry=False)``;
* ``ours-session``  - this project with ``CouchDB(..., auth=SessionAuth(user, password))``,
  a cookie session instead of basic auth (the login is part of the warm-up).

The two variants run the same workload code as ``ours``; only the ``CouchDB(...)`` options
differ (:func:`couchdb_options`).

The raw floor (``bench/raw_client.py``; ``floor`` and ``floor-docs`` run in a plain
``make bench``): ``floor`` makes the same HTTP calls as ``aiohttp`` with the least work a
Python program can do (what any client must spend); ``floor-bulk-get`` only
``bulk_update``, reading with ``_bulk_get``; ``floor-nogc`` only the big-answer workloads
(``bulk_create``, ``iterate_all``, ``bulk_update``), with the garbage collector off while
they run; ``floor-docs`` (``bench/document_floor.py``) only ``bulk_create`` and
``bulk_update``, the floor with the least document model of aiocouch 4.0.1's bulk calls (a
Document per document, only the changed ones written).

Credentials come from ``COUCHDB_USER`` / ``COUCHDB_PASSWORD``. Only the measured workload
is inside the timed region: the data to write is generated before it, one warm-up
``GET /`` opens the connection and runs the first-use imports, and the request counter and
the kernel's peak-RSS mark are reset right before it.

This file imports only the standard library, ``measure.py`` beside it, aiohttp and
(lazily, for the two aiocouch clients) aiocouch, so that it runs unchanged in either
virtual environment. ``run.py`` imports it too, for the seeding helpers. The other client
libraries have their workloads in ``bench/peers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp

# ``python -I`` leaves the script's directory out of sys.path; measure.py lives beside this.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import (
    WORKLOADS,
    Body,
    Result,
    Unsupported,
    bounded_gather,
    concurrency_of,
    doc_id,
    make_doc,
    measure,
    new_docs,
    read_ids,
    seeded_ids,
    worker_parser,
)

__all__ = ["WORKLOADS", "doc_id", "make_doc"]

#: The raw floor (bench/raw_client.py, bench/document_floor.py); ``floor`` and
#: ``floor-docs`` run in a plain ``make bench``.
FLOOR_CLIENTS = ("floor", "floor-bulk-get", "floor-nogc", "floor-docs")
#: The workloads of ``floor-nogc``: those that decode answers of thousands of documents.
FLOOR_NOGC_WORKLOADS = ("bulk_create", "iterate_all", "bulk_update")
CLIENTS = ("ours", "aiocouch401", "aiohttp", "ours-no-retry", "ours-session", *FLOOR_CLIENTS)
#: The clients of this file in a plain ``make bench`` (the other libraries: bench/peers.py).
DEFAULT_CLIENTS = ("ours", "aiocouch401", "aiohttp", "floor", "floor-docs")
#: Documents per ``_bulk_docs`` request of the aiohttp client; the same as the default
#: ``BulkOperation.batch_size`` of this project (src/aiocouch/bulk.py), which also keeps
#: up to :data:`BULK_IN_FLIGHT` batches in flight. aiocouch 4.0.1 sends one request.
BULK_BATCH = 10_000
BULK_IN_FLIGHT = 4


class RequestCounter:
    """Counts requests with an aiohttp ``on_request_start`` trace hook.

    With ``accept_json`` the same hook also adds ``Accept: application/json`` to every
    request. aiocouch 4.0.1 sends aiohttp's default ``Accept: */*``, and pouchdb-server
    (which follows CouchDB 1.x there) then answers ``Content-Type: text/plain``, on which
    4.0.1's ``resp.json()`` raises ``ContentTypeError``. The headers object handed to the
    hook is the one aiohttp sends, so the change takes effect (checked in
    :meth:`_on_request_end`, which fails the run when a response is not JSON). A real
    CouchDB answers ``application/json`` anyway and would not need this.
    """

    def __init__(self, *, accept_json: bool = False) -> None:
        self.count = 0
        self._accept_json = accept_json
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._on_request_start)
        if accept_json:
            config.on_request_end.append(self._on_request_end)
        self.trace_configs = [config]

    async def _on_request_start(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        self.count += 1
        if self._accept_json:
            params.headers["Accept"] = "application/json"

    async def _on_request_end(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        sent = params.response.request_info.headers.get("Accept")
        if sent != "application/json":
            raise RuntimeError(f"Accept header not applied: {sent!r}")


# -- the aiocouch clients (this project and 4.0.1 share the same API) ---------------------


class AiocouchWorkloads:
    """The workloads written against the aiocouch API."""

    def __init__(self, database: Any, count: int, db_size: int) -> None:
        self.db = database
        self.count = count
        self.db_size = db_size

    def create_save(self) -> Body:
        """``count`` x ``Document(db, id, data=...).save()``: one PUT each."""
        from aiocouch import Document

        bodies = new_docs(self.count)

        async def run() -> tuple[int, int]:
            for identifier, data in bodies:
                await Document(self.db, identifier, data=data).save()
            return len(bodies), 0

        return run

    def db_create_save(self) -> Body:
        """``count`` x ``await db.create(id, data=...)`` then ``await doc.save()``."""
        bodies = new_docs(self.count)

        async def run() -> tuple[int, int]:
            for identifier, data in bodies:
                doc = await self.db.create(identifier, data=data)
                await doc.save()
            return len(bodies), 0

        return run

    def get(self) -> Body:
        """``count`` x ``await db[id]``, one after the other: one GET each."""
        ids = read_ids(self.count, self.db_size)

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                checksum += (await self.db[identifier])["index"]
            return len(ids), checksum

        return run

    def get_concurrent(self, workload: str = "get_concurrent") -> Body:
        """``count`` x ``await db[id]``, :func:`concurrency_of` the workload at a time."""
        ids = read_ids(self.count, self.db_size)

        async def fetch(identifier: str) -> int:
            index: int = (await self.db[identifier])["index"]
            return index

        async def run() -> tuple[int, int]:
            return len(ids), sum(await bounded_gather(fetch, ids, concurrency_of(workload)))

        return run

    def get_throughput(self) -> Body:
        """``get_concurrent`` with 64 in flight (10,000 GETs: documents per second)."""
        return self.get_concurrent("get_throughput")

    def update(self) -> Body:
        """``count`` x fetch, modify, save: GET + PUT each."""
        ids = seeded_ids(self.count)

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                doc = await self.db[identifier]
                doc["counter"] = doc["index"] * 2
                await doc.save()
                checksum += doc["counter"]
            return len(ids), checksum

        return run

    def bulk_create(self) -> Body:
        """``count`` new documents in one ``db.create_docs()`` block."""
        bodies = new_docs(self.count)

        async def run() -> tuple[int, int]:
            async with self.db.create_docs() as bulk:
                for identifier, data in bodies:
                    bulk.create(identifier, data=data)
            if bulk.error:
                raise RuntimeError(f"{len(bulk.error)} documents were not created")
            return len(bulk.ok), 0

        return run

    def iterate_all(self) -> Body:
        """Every document of the database through ``db.docs()``."""

        async def run() -> tuple[int, int]:
            items = checksum = 0
            async for doc in self.db.docs():
                items += 1
                checksum += doc["index"]
            return items, checksum

        return run

    def bulk_update(self) -> Body:
        """``count`` documents modified in one ``db.update_docs(ids)`` block."""
        ids = seeded_ids(self.count)

        async def run() -> tuple[int, int]:
            checksum = 0
            async with self.db.update_docs(ids) as bulk:
                async for doc in bulk:
                    doc["counter"] = doc["index"] * 2
                    checksum += doc["counter"]
            if bulk.error:
                raise RuntimeError(f"{len(bulk.error)} documents were not updated")
            return len(bulk.ok), checksum

        return run


# -- the plain aiohttp client ------------------------------------------------------------


class AiohttpWorkloads:
    """The same HTTP calls made by hand: ``session.get(url)`` + ``json.loads`` and so on."""

    def __init__(
        self, session: aiohttp.ClientSession, db_url: str, count: int, db_size: int
    ) -> None:
        self.session = session
        self.db_url = db_url
        self.count = count
        self.db_size = db_size

    async def _get_json(self, url: str) -> Any:
        async with self.session.get(url) as resp:
            body = await resp.read()
            _check(resp, body)
            return json.loads(body)

    async def _send_json(self, method: str, url: str, data: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        async with self.session.request(
            method, url, data=json.dumps(data), headers=headers
        ) as resp:
            body = await resp.read()
            _check(resp, body)
            return json.loads(body)

    def _doc_url(self, identifier: str) -> str:
        return f"{self.db_url}/{quote(identifier, safe='')}"

    def create_save(self) -> Body:
        """``count`` x PUT of a new document."""
        bodies = new_docs(self.count)

        async def run() -> tuple[int, int]:
            for identifier, data in bodies:
                answer = await self._send_json("PUT", self._doc_url(identifier), data)
                data["_rev"] = answer["rev"]
            return len(bodies), 0

        return run

    def get(self) -> Body:
        """``count`` x GET of a document, one after the other."""
        ids = read_ids(self.count, self.db_size)

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                checksum += (await self._get_json(self._doc_url(identifier)))["index"]
            return len(ids), checksum

        return run

    def db_create_save(self) -> Body:
        """Not a call of aiohttp: ``create_save`` is its one PUT."""
        raise Unsupported("no db.create() (an aiocouch call); its one-PUT create is create_save")

    def get_concurrent(self, workload: str = "get_concurrent") -> Body:
        """``count`` x GET of a document, :func:`concurrency_of` the workload at a time."""
        ids = read_ids(self.count, self.db_size)

        async def fetch(identifier: str) -> int:
            index: int = (await self._get_json(self._doc_url(identifier)))["index"]
            return index

        async def run() -> tuple[int, int]:
            return len(ids), sum(await bounded_gather(fetch, ids, concurrency_of(workload)))

        return run

    def get_throughput(self) -> Body:
        """``get_concurrent`` with 64 in flight (10,000 GETs: documents per second)."""
        return self.get_concurrent("get_throughput")

    def update(self) -> Body:
        """``count`` x GET, modify, PUT."""
        ids = seeded_ids(self.count)

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                url = self._doc_url(identifier)
                doc = await self._get_json(url)
                doc["counter"] = doc["index"] * 2
                answer = await self._send_json("PUT", url, doc)
                doc["_rev"] = answer["rev"]
                checksum += doc["counter"]
            return len(ids), checksum

        return run

    async def _bulk_docs(self, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST ``docs`` to ``_bulk_docs`` in batches of :data:`BULK_BATCH`."""
        batches = [docs[i : i + BULK_BATCH] for i in range(0, len(docs), BULK_BATCH)]

        async def send(batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
            answer: list[dict[str, Any]] = await self._send_json(
                "POST", f"{self.db_url}/_bulk_docs", {"docs": list(batch)}
            )
            return answer

        answers = await bounded_gather(send, batches, limit=BULK_IN_FLIGHT)
        return [item for answer in answers for item in answer]

    def bulk_create(self) -> Body:
        """``count`` new documents with POST ``_bulk_docs``."""
        bodies = [{"_id": doc_id(i), **make_doc(i)} for i in range(1, self.count + 1)]

        async def run() -> tuple[int, int]:
            answer = await self._bulk_docs(bodies)
            failed = [item for item in answer if not item.get("ok")]
            if failed:
                raise RuntimeError(f"{len(failed)} documents were not created")
            return len(answer), 0

        return run

    def iterate_all(self) -> Body:
        """One GET ``_all_docs?include_docs=true``, ``json.loads``, iterate the rows."""

        async def run() -> tuple[int, int]:
            answer = await self._get_json(f"{self.db_url}/_all_docs?include_docs=true")
            items = checksum = 0
            for row in answer["rows"]:
                doc = row["doc"]
                if doc["_id"].startswith("_design/"):
                    continue
                items += 1
                checksum += doc["index"]
            return items, checksum

        return run

    def bulk_update(self) -> Body:
        """POST ``_all_docs?include_docs=true`` with the keys, modify, POST ``_bulk_docs``."""
        ids = seeded_ids(self.count)

        async def run() -> tuple[int, int]:
            answer = await self._send_json(
                "POST", f"{self.db_url}/_all_docs?include_docs=true", {"keys": ids}
            )
            docs = [row["doc"] for row in answer["rows"]]
            checksum = 0
            for doc in docs:
                doc["counter"] = doc["index"] * 2
                checksum += doc["counter"]
            saved = await self._bulk_docs(docs)
            failed = [item for item in saved if not item.get("ok")]
            if failed:
                raise RuntimeError(f"{len(failed)} documents were not updated")
            return len(saved), checksum

        return run


def _check(resp: aiohttp.ClientResponse, body: bytes) -> None:
    if resp.status >= 400:
        raise RuntimeError(f"{resp.method} {resp.url} -> {resp.status}: {body[:200]!r}")


# -- seeding (used by run.py, untimed) ----------------------------------------------------


async def seed(session: aiohttp.ClientSession, db_url: str, count: int, batch: int = 5_000) -> None:
    """PUT the database ``db_url`` and fill it with ``count`` documents (``make_doc``)."""
    async with session.put(db_url) as resp:
        _check(resp, await resp.read())
    for start in range(1, count + 1, batch):
        stop = min(count, start + batch - 1)
        docs = [{"_id": doc_id(i), **make_doc(i)} for i in range(start, stop + 1)]
        async with session.post(
            f"{db_url}/_bulk_docs",
            data=json.dumps({"docs": docs}),
            headers={"Content-Type": "application/json"},
        ) as resp:
            body = await resp.read()
            _check(resp, body)
        failed = [item for item in json.loads(body) if not item.get("ok")]
        if failed:
            raise RuntimeError(f"seeding {db_url}: {len(failed)} failed, e.g. {failed[0]}")


def client_session(user: str, password: str, **kwargs: Any) -> aiohttp.ClientSession:
    """A plain aiohttp session that speaks JSON to CouchDB with basic auth."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    headers = {"Accept": "application/json", "Authorization": f"Basic {token}"}
    return aiohttp.ClientSession(headers=headers, **kwargs)


# -- main ----------------------------------------------------------------------------------


async def run_worker(args: argparse.Namespace) -> Result:
    """Sets the client up, prepares the workload, then runs and measures only that."""
    user = os.environ.get("COUCHDB_USER", "admin")
    password = os.environ.get("COUCHDB_PASSWORD", "password")
    if args.client in FLOOR_CLIENTS:
        return await run_floor(args, user, password)
    counter = RequestCounter(accept_json=args.client == "aiocouch401")
    if args.client == "aiohttp":
        library, library_path = f"aiohttp {aiohttp.__version__}", aiohttp.__file__
        db_url = f"{args.url}/{quote(args.db, safe='')}"
        async with client_session(user, password, trace_configs=counter.trace_configs) as s:
            plain = AiohttpWorkloads(s, db_url, args.count, args.db_size)
            try:
                body = getattr(plain, args.workload)()
            except Unsupported as exc:
                return unsupported(args, library, library_path, str(exc))
            await plain._get_json(f"{args.url}/")  # warm-up: connection, lazy imports
            counter.count = 0
            measured = await measure(body)
            requests = counter.count
    else:
        import aiocouch
        from aiocouch import CouchDB, Database

        library, library_path = _library_version(), aiocouch.__file__ or ""
        options = couchdb_options(args.client, user, password)
        async with CouchDB(args.url, trace_configs=counter.trace_configs, **options) as couchdb:
            client = AiocouchWorkloads(Database(couchdb, args.db), args.count, args.db_size)
            try:
                body = getattr(client, args.workload)()
            except Unsupported as exc:
                return unsupported(args, library, library_path, str(exc))
            await couchdb.info()  # warm-up: connection, lazy imports, a login
            counter.count = 0
            measured = await measure(body)
            requests = counter.count
    return Result.of(
        args.client,
        args.workload,
        measured,
        requests=requests,
        library=library,
        library_path=library_path,
    )


# -- the raw floor (bench/raw_client.py) ---------------------------------------------------


async def run_floor(args: argparse.Namespace, user: str, password: str) -> Result:
    """One workload of the raw floor; it counts its requests itself."""
    import orjson
    import raw_client

    library, path = f"raw asyncio + orjson {orjson.__version__}", raw_client.__file__
    if args.client == "floor-bulk-get" and args.workload != "bulk_update":
        return unsupported(args, library, path, "floor's requests; only bulk_update differs")
    if args.client == "floor-nogc" and args.workload not in FLOOR_NOGC_WORKLOADS:
        return unsupported(args, library, path, "measured for the big answers only")
    workloads = raw_client.FloorWorkloads
    if args.client == "floor-docs":
        import document_floor

        if args.workload not in ("bulk_create", "bulk_update"):
            return unsupported(args, library, path, "the document model of the bulk calls only")
        workloads = document_floor.DocumentFloorWorkloads
        path = document_floor.__file__
    pool = raw_client.Pool(args.url, user, password)
    try:
        floor = workloads(
            pool,
            quote(args.db, safe=""),
            args.count,
            args.db_size,
            batch=BULK_BATCH,
            in_flight=BULK_IN_FLIGHT,
            bulk_get=args.client == "floor-bulk-get",
        )
        try:
            body = getattr(floor, args.workload)()
        except Unsupported as exc:
            return unsupported(args, library, path, str(exc))
        await pool.request(b"GET", "/")  # warm-up: connection, first use
        pool.requests = 0
        if args.client == "floor-nogc":
            gc.disable()
        measured = await measure(body)
        gc.enable()
    finally:
        pool.close()
    return Result.of(
        args.client,
        args.workload,
        measured,
        requests=pool.requests,
        library=library,
        library_path=path,
    )


def unsupported(args: argparse.Namespace, library: str, path: str, reason: str) -> Result:
    """The result of a workload the client has no public call for."""
    return Result(args.client, args.workload, 0.0, 0.0, 0.0, 0, 0, 0, None, library, path, reason)


def couchdb_options(client: str, user: str, password: str) -> dict[str, Any]:
    """The ``CouchDB(...)`` arguments of an aiocouch client: its credentials and options."""
    if client == "ours-session":
        from aiocouch.auth import SessionAuth

        return {"auth": SessionAuth(user, password)}
    if client == "ours-no-retry":
        return {"user": user, "password": password, "retry": False}
    return {"user": user, "password": password}


def _library_version() -> str:
    from importlib.metadata import version

    return f"aiocouch {version('aiocouch')}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line of one worker run."""
    parser = worker_parser(__doc__.split("\n", 1)[0], CLIENTS)
    parser.add_argument("--src", help="import aiocouch from this directory (another src/)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one measurement and prints it as one JSON line."""
    args = parse_args(argv)
    if args.src:
        sys.path.insert(0, args.src)
    result = asyncio.run(run_worker(args))
    print(json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
