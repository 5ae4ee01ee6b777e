"""The floor: the benchmark's workloads with the least work a Python program can do.

Not a usable client. It sends the same HTTP requests as the plain aiohttp client of
``bench/worker.py`` (the same ids, the same ``_bulk_docs`` batches, the same checksums), and
spends on each only what no Python client can avoid:

* ``asyncio.Protocol`` on ``loop.create_connection`` (``ssl=`` the default context for
  ``https://``, which trusts ``SSL_CERT_FILE``), keep-alive connections, one per request in
  flight, opened when first needed (as aiohttp opens them) and reused;
* each request's bytes made with one %-format (the ``Authorization: Basic`` header made once);
* the answer framed by hand: the end of the head (``\\r\\n\\r\\n``), the status, and
  ``Content-Length`` or ``Transfer-Encoding: chunked``, nothing else;
* ``orjson.dumps`` / ``orjson.loads``; a status of 400 or more raises.

What it does not do, and every real client must: escape document ids in the path, read
any other header, check the framing beyond what it needs (a malformed answer may hang or
be misread), time limits, retries, handling a connection the server closed while in use,
error types, objects for the caller. Its figures are what the same HTTP calls cost at all.

``bench/worker.py`` runs it as the clients ``floor``, ``floor-bulk-get`` (only
``bulk_update``, reading the documents with POST ``_bulk_get`` as this project does instead
of POST ``_all_docs?include_docs=true`` with keys as plain aiohttp does) and ``floor-nogc``
(only ``bulk_create``, ``iterate_all`` and ``bulk_update``, the collector off)::

    .venv/bin/python bench/run.py --clients ours aiohttp floor floor-bulk-get floor-nogc --no-save

Run as a script, it answers which of the two reading answers costs less to decode: it
seeds a database of ``--count`` documents, saves the bodies of both requests for all of
them, and decodes each with ``orjson.loads`` in fresh processes, taking turns (CPU of the
first decoding, minor page faults, and CPU of a second decoding of the same bytes in the
same process, when the memory of the first is reused)::

    .venv/bin/python bench/raw_client.py decode --count 5000 --repeat 7

and it counts the instructions (valgrind) of one single-document operation of the floor,
plain aiohttp and this project, each with its workload code, against the stand-in of
``bench/single_cost.py`` (a server that answers at once, as CouchDB 3.4.3 would)::

    .venv/bin/python bench/raw_client.py instructions get create_save update

and what unframing CouchDB's one-row-per-chunk ``_all_docs`` costs the floor against the
same body sized::

    .venv/bin/python bench/raw_client.py framing --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from measure import (
    Body,
    Unsupported,
    bounded_gather,
    concurrency_of,
    doc_id,
    make_doc,
    new_docs,
    read_ids,
    seeded_ids,
)

__all__ = ["FloorWorkloads", "Pool"]

_HEAD_END = b"\r\n\r\n"
_LENGTH = b"\r\ncontent-length:"
_CHUNKED = b"\r\ntransfer-encoding: chunked"
_CLOSE = b"\r\nconnection: close"
#: A request without a body: method, path, the fixed headers.
_BARE = b"%s %s HTTP/1.1\r\n%s\r\n"
#: A request with a JSON body: method, path, the fixed headers, its length, the body.
_WITH_BODY = b"%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, its answer framed by hand."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reusable = False
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytearray]] | None = None
        self._status = 0
        #: Where the body starts in the buffer; -1 while the head is incomplete.
        self._body_start = -1
        #: A sized body's length; -1 for a chunked one.
        self._length = -1
        #: A chunked body: the data of its chunks so far, and where the next chunk starts.
        self._chunks = bytearray()
        self._next_chunk = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.reusable = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionError("the server closed the connection"))

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytearray]]:
        """Writes ``request``; the future gets the status and the body."""
        assert self.transport is not None
        self._answer = answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return answer

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._body_start < 0:
            end = buffer.find(_HEAD_END)
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            self._status = int(head[9:12])
            self._body_start = end + 4
            at = head.find(_LENGTH)
            if at >= 0:
                stop = head.find(b"\r\n", at + 17)
                self._length = int(head[at + 17 : stop if stop >= 0 else None])
            elif _CHUNKED in head:
                self._length = -1
                self._next_chunk = self._body_start
            else:
                raise ValueError("an answer neither sized nor chunked")
            if _CLOSE in head:
                self.reusable = False
        if self._length >= 0:
            self._sized()
        else:
            self._chunked()

    def _sized(self) -> None:
        buffer, start, length = self._buffer, self._body_start, self._length
        if len(buffer) < start + length:
            return
        del buffer[:start]  # (a bytearray drops its front without moving the rest)
        if len(buffer) == length:
            body, self._buffer = buffer, bytearray()
        else:
            body, self._buffer = buffer[:length], buffer[length:]
        self._done(body)

    def _chunked(self) -> None:
        buffer, at, chunks = self._buffer, self._next_chunk, self._chunks
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                break
            size = int(buffer[at:line_end], 16)
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                break
            if size == 0:
                self._buffer, self._chunks = buffer[data_end + 2 :], bytearray()
                self._done(chunks)
                return
            chunks += buffer[line_end + 2 : data_end]
            at = data_end + 2
        self._next_chunk = at

    def _done(self, body: bytearray) -> None:
        self._body_start = -1
        answer, self._answer = self._answer, None
        assert answer is not None
        answer.set_result((self._status, body))


class Pool:
    """Keep-alive connections to one server, each carrying one request at a time."""

    def __init__(self, url: str, user: str, password: str) -> None:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if https else 80)
        self._ssl = ssl.create_default_context() if https else None
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = (
            f"Host: {parts.netloc}\r\nAuthorization: Basic {token}\r\nAccept: application/json\r\n"
        ).encode()
        self._idle: list[Connection] = []
        self._all: list[Connection] = []
        #: Requests sent (the benchmark's request count).
        self.requests = 0

    async def _connection(self) -> Connection:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.reusable:
                return connection
        _, connection = await asyncio.get_running_loop().create_connection(
            Connection, self._host, self._port, ssl=self._ssl
        )
        self._all.append(connection)
        return connection

    async def request(self, method: bytes, path: str, body: bytes | None = None) -> Any:
        """Sends one request and returns its decoded JSON answer; raises for a status >= 400."""
        connection = await self._connection()
        if body is None:
            request = _BARE % (method, path.encode(), self._headers)
        else:
            request = _WITH_BODY % (method, path.encode(), self._headers, len(body), body)
        self.requests += 1
        status, answer = await connection.send(request)
        if status >= 400:
            raise RuntimeError(f"{method.decode()} {path} -> {status}: {bytes(answer[:200])!r}")
        if connection.reusable:
            self._idle.append(connection)
        return orjson.loads(answer)

    def close(self) -> None:
        """Closes every connection."""
        for connection in self._all:
            if connection.transport is not None:
                connection.transport.close()


class FloorWorkloads:
    """The workloads of plain aiohttp (``bench/worker.py``), the same requests, on a Pool."""

    def __init__(
        self,
        pool: Pool,
        db: str,
        count: int,
        db_size: int,
        *,
        batch: int,
        in_flight: int,
        bulk_get: bool = False,
    ) -> None:
        self.pool = pool
        self.db = db
        self.count = count
        self.db_size = db_size
        self.batch = batch
        self.in_flight = in_flight
        #: bulk_update reads its documents with POST _bulk_get.
        self.bulk_get = bulk_get

    def create_save(self) -> Body:
        """``count`` x PUT of a new document."""
        bodies = new_docs(self.count)
        request, db = self.pool.request, self.db

        async def run() -> tuple[int, int]:
            for identifier, data in bodies:
                answer = await request(b"PUT", f"/{db}/{identifier}", orjson.dumps(data))
                data["_rev"] = answer["rev"]
            return len(bodies), 0

        return run

    def db_create_save(self) -> Body:
        """Not an HTTP call: ``create_save`` is its one PUT."""
        raise Unsupported("no db.create() (an aiocouch call); its one-PUT create is create_save")

    def get(self) -> Body:
        """``count`` x GET of a document, one after the other."""
        ids = read_ids(self.count, self.db_size)
        request, db = self.pool.request, self.db

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                checksum += (await request(b"GET", f"/{db}/{identifier}"))["index"]
            return len(ids), checksum

        return run

    def get_concurrent(self, workload: str = "get_concurrent") -> Body:
        """``count`` x GET of a document, :func:`concurrency_of` the workload at a time."""
        ids = read_ids(self.count, self.db_size)
        request, db = self.pool.request, self.db

        async def fetch(identifier: str) -> int:
            index: int = (await request(b"GET", f"/{db}/{identifier}"))["index"]
            return index

        async def run() -> tuple[int, int]:
            return len(ids), sum(await bounded_gather(fetch, ids, concurrency_of(workload)))

        return run

    def get_throughput(self) -> Body:
        """``get_concurrent`` with 64 in flight."""
        return self.get_concurrent("get_throughput")

    def update(self) -> Body:
        """``count`` x GET, modify, PUT."""
        ids = seeded_ids(self.count)
        request, db = self.pool.request, self.db

        async def run() -> tuple[int, int]:
            checksum = 0
            for identifier in ids:
                path = f"/{db}/{identifier}"
                doc = await request(b"GET", path)
                doc["counter"] = doc["index"] * 2
                doc["_rev"] = (await request(b"PUT", path, orjson.dumps(doc)))["rev"]
                checksum += doc["counter"]
            return len(ids), checksum

        return run

    async def _bulk_docs(self, docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """POST ``docs`` to ``_bulk_docs`` in batches, ``in_flight`` batches at a time."""
        path, request = f"/{self.db}/_bulk_docs", self.pool.request
        batches = [docs[i : i + self.batch] for i in range(0, len(docs), self.batch)]

        async def send(batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
            answer: list[dict[str, Any]] = await request(
                b"POST", path, orjson.dumps({"docs": batch})
            )
            return answer

        answers = await bounded_gather(send, batches, limit=self.in_flight)
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
        """One GET ``_all_docs?include_docs=true``, decoded at once, its rows iterated."""
        path, request = f"/{self.db}/_all_docs?include_docs=true", self.pool.request

        async def run() -> tuple[int, int]:
            items = checksum = 0
            for row in (await request(b"GET", path))["rows"]:
                doc = row["doc"]
                if doc["_id"].startswith("_design/"):
                    continue
                items += 1
                checksum += doc["index"]
            return items, checksum

        return run

    def bulk_update(self) -> Body:
        """Read ``count`` documents (POST ``_all_docs?include_docs=true`` with the keys, or
        POST ``_bulk_get``), modify them, POST ``_bulk_docs``."""
        ids = seeded_ids(self.count)
        request, db = self.pool.request, self.db

        async def read() -> list[dict[str, Any]]:
            if self.bulk_get:
                body = orjson.dumps({"docs": [{"id": id} for id in ids]})
                answer = await request(b"POST", f"/{db}/_bulk_get", body)
                return [result["docs"][0]["ok"] for result in answer["results"]]
            body = orjson.dumps({"keys": ids})
            answer = await request(b"POST", f"/{db}/_all_docs?include_docs=true", body)
            return [row["doc"] for row in answer["rows"]]

        async def run() -> tuple[int, int]:
            docs = await read()
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


# -- which reading answer costs less to decode ---------------------------------------------

#: Decodes the body in the file argv[1] in a fresh process and prints what it cost as JSON.
_DECODE = """
import gc, json, resource, sys, time
import orjson
data = open(sys.argv[1], "rb").read()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
gc.collect()
faults_before, cpu_before = faults(), time.process_time()
answer = orjson.loads(data)
first, first_faults = time.process_time() - cpu_before, faults() - faults_before
cpu_before = time.process_time()
if "rows" in answer:
    docs = [row["doc"] for row in answer["rows"]]
else:
    docs = [result["docs"][0]["ok"] for result in answer["results"]]
extract = time.process_time() - cpu_before
del answer, docs
cpu_before = time.process_time()
again = orjson.loads(data)
second = time.process_time() - cpu_before
print(json.dumps({"first": first, "faults": first_faults, "extract": extract, "second": second}))
"""


def reading_bodies(count: int) -> dict[str, bytes]:
    """The raw answers of both ways to read the ``count`` documents of a seeded database."""
    import run  # (the benchmark's server and seeding)

    with run.bench_server() as server:
        name = f"bench_floor_decode_{count}"
        run.delete_database(server, name)
        run.seed_database(server, name, count)
        ids = seeded_ids(count)
        requests = {
            "_all_docs": ("_all_docs?include_docs=true", {"keys": ids}),
            "_bulk_get": ("_bulk_get", {"docs": [{"id": id} for id in ids]}),
        }

        async def fetch() -> dict[str, bytes]:
            import worker

            bodies = {}
            async with worker.client_session(server.user, server.password) as session:
                for label, (path, body) in requests.items():
                    async with session.post(
                        f"{server.url}/{name}/{path}",
                        data=orjson.dumps(body),
                        headers={"Content-Type": "application/json"},
                    ) as resp:
                        resp.raise_for_status()
                        bodies[label] = await resp.read()
            return bodies

        try:
            return asyncio.run(fetch())
        finally:
            run.delete_database(server, name)


# -- instructions per operation, the floor beside aiohttp and this project -----------------

#: The single-document workloads counted by ``instructions``.
SINGLE = ("get", "create_save", "update")
INSTRUCTION_CLIENTS = ("ours", "aiohttp", "floor")
#: Instructions counted: cachegrind without its cache simulation counts what callgrind
#: does, in less than half the time.
_VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


async def workload_loop(client: str, workload: str, count: int, url: str) -> None:
    """20 operations of ``workload`` (warm-up), then ``count`` more, with ``client``'s code
    of ``bench/worker.py`` (or this file's), against ``bench/single_cost.py``'s stand-in."""
    import worker

    size = 1_000_000  # (spread ids: the stand-in answers any)
    if client == "floor":
        pool = Pool(url, "admin", "secret")
        for n in (20, count):
            floor = FloorWorkloads(pool, "bench", n, size, batch=1, in_flight=1)
            await getattr(floor, workload)()()
        pool.close()
    elif client == "aiohttp":
        async with worker.client_session("admin", "secret") as session:
            for n in (20, count):
                plain = worker.AiohttpWorkloads(session, f"{url}/bench", n, size)
                await getattr(plain, workload)()()
    else:
        from aiocouch import CouchDB, Database

        async with CouchDB(url, user="admin", password="secret") as couchdb:
            for n in (20, count):
                ours = worker.AiocouchWorkloads(Database(couchdb, "bench"), n, size)
                await getattr(ours, workload)()()


def instructions(url: str, client: str, workload: str, counts: tuple[int, int]) -> float:
    """Instructions per operation (valgrind): the difference of a client process running
    ``counts[0]`` operations and one running ``counts[1]``, over the difference."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    processes = [
        subprocess.Popen(
            [*_VALGRIND, sys.executable, __file__, "loop", client, workload, str(count), url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for count in counts
    ]
    totals = []
    for process in processes:
        _, stderr = process.communicate()
        match = re.search(r"I\s+refs:\s+([\d,]+)", stderr)
        if process.returncode or match is None:
            raise RuntimeError(f"no count in valgrind's output:\n{stderr}")
        totals.append(int(match.group(1).replace(",", "")))
    return (totals[0] - totals[1]) / (counts[0] - counts[1])


def count_instructions(workloads: Sequence[str], counts: tuple[int, int]) -> None:
    """Prints instructions per operation of each client on each single-document workload."""
    from single_cost import stand_in

    span = counts[0] - counts[1]
    print(f"instructions per operation ({span} = {counts[0]} - {counts[1]}, valgrind)")
    print("| workload | " + " | ".join(INSTRUCTION_CLIENTS) + " | floor / aiohttp | ours / floor |")
    print("|---|" + "---:|" * (len(INSTRUCTION_CLIENTS) + 2))
    with stand_in() as url:
        for workload in workloads:
            cost = {c: instructions(url, c, workload, counts) for c in INSTRUCTION_CLIENTS}
            cells = [f"{cost[c]:,.0f}" for c in INSTRUCTION_CLIENTS]
            cells += [
                f"{cost['floor'] / cost['aiohttp']:.2f}x",
                f"{cost['ours'] / cost['floor']:.2f}x",
            ]
            print(f"| {workload} | " + " | ".join(cells) + " |", flush=True)


def decode(count: int, repeat: int) -> None:
    """Prints, for each reading answer, its size and the median cost of decoding it."""
    bodies = reading_bodies(count)
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in bodies}
    with tempfile.TemporaryDirectory() as folder:
        files = {label: Path(folder, label) for label in bodies}
        for label, body in bodies.items():
            files[label].write_bytes(body)
        for _ in range(repeat):
            for label, file in files.items():
                out = subprocess.run(
                    [sys.executable, "-I", "-c", _DECODE, str(file)],
                    capture_output=True,
                    check=True,
                    text=True,
                ).stdout
                samples[label].append(json.loads(out))
    print(f"{count:,} documents, median of {repeat} fresh processes each")
    print("| answer | bytes | orjson.loads ms | page faults | docs out ms | loads again ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, runs in samples.items():
        cells = [
            f"{statistics.median(run[key] for run in runs) * scale:,.1f}"
            for key, scale in (("first", 1e3), ("faults", 1), ("extract", 1e3), ("second", 1e3))
        ]
        print(f"| {label} | {len(bodies[label]):,} | " + " | ".join(cells) + " |")


def framing(count: int, repeat: int) -> None:
    """Prints the floor's CPU to unframe a CouchDB-style ``_all_docs`` answer of ``count``
    rows sent one row per chunk (as CouchDB 3.4.3 sends it), and the same bytes sized."""
    rows = [
        orjson.dumps(
            {"id": doc_id(i), "key": doc_id(i), "value": {"rev": "1-a"}, "doc": make_doc(i)}
        )
        for i in range(1, count + 1)
    ]
    pieces = [b'{"total_rows":%d,"offset":0,"rows":[\r\n' % count]
    pieces += [row + b",\r\n" for row in rows[:-1]] + [rows[-1] + b"\r\n]}\n"]
    body = b"".join(pieces)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    answers = {
        "one row per chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"0\r\n\r\n",
        "sized": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
    }

    async def unframe(answer: bytes) -> float:
        """CPU seconds of Connection.data_received over ``answer`` in 64 KiB reads."""
        connection = Connection()
        connection._answer = received = asyncio.get_running_loop().create_future()
        reads = [answer[i : i + 65_536] for i in range(0, len(answer), 65_536)]
        started = time.process_time()
        for data in reads:
            connection.data_received(data)
        spent = time.process_time() - started
        if received.result()[1] != body:
            raise RuntimeError("unframed body differs")
        return spent

    async def measure_all() -> dict[str, list[float]]:
        spent: dict[str, list[float]] = {label: [] for label in answers}
        for _ in range(repeat):
            for label, answer in answers.items():
                spent[label].append(await unframe(answer))
        return spent

    spent = asyncio.run(measure_all())
    print(f"{count:,} rows, {len(body):,} bytes, median of {repeat}, in turns")
    for label, values in spent.items():
        print(f"{label}: {statistics.median(values) * 1e3:.1f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    """``decode``: which reading answer costs less to decode; ``instructions``: counted work
    per single-document operation of the floor, plain aiohttp and this project."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    decoding = commands.add_parser("decode", help="decode both reading answers")
    decoding.add_argument("--count", type=int, default=5_000, help="documents read")
    decoding.add_argument("--repeat", type=int, default=7, help="fresh processes per body")
    unframing = commands.add_parser("framing", help="unframe a chunked and a sized answer")
    unframing.add_argument("--count", type=int, default=5_000, help="rows")
    unframing.add_argument("--repeat", type=int, default=30)
    counting = commands.add_parser("instructions", help="instructions per operation")
    counting.add_argument("workloads", nargs="*", help=f"of {', '.join(SINGLE)} (all)")
    counting.add_argument("--long", type=int, default=600)
    counting.add_argument("--short", type=int, default=100)
    loop = commands.add_parser("loop")  # (one client process under valgrind)
    loop.add_argument("client", choices=INSTRUCTION_CLIENTS)
    loop.add_argument("workload", choices=SINGLE)
    loop.add_argument("count", type=int)
    loop.add_argument("url")
    args = parser.parse_args(argv)
    if args.command == "decode":
        decode(args.count, args.repeat)
    elif args.command == "framing":
        framing(args.count, args.repeat)
    elif args.command == "instructions":
        unknown = set(args.workloads) - set(SINGLE)
        if unknown:
            parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
        count_instructions(args.workloads or SINGLE, (args.long, args.short))
    else:
        asyncio.run(workload_loop(args.client, args.workload, args.count, args.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
