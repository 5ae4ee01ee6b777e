"""Counted work of one single-document operation: instructions (valgrind) and Python calls.

    .venv/bin/python bench/single_cost.py                      # every operation, this tree
    .venv/bin/python bench/single_cost.py get update --baseline 0b6e3d6

The client CPU seconds of ``make bench`` move with the shared machine's load by more
than a cut removes; the work counted here does not. Each operation runs in a loop
against a local stand-in that answers at once, as CouchDB 3.4.3 would, with a fixed
head of 9 header fields (``bench/tls_profile.py``'s) and the documents of
``bench/measure.py`` (about 320 bytes), so that nothing of a real server's timing enters:

* **instructions per operation**: ``valgrind --tool=cachegrind --cache-sim=no`` (the
  instructions ``--tool=callgrind`` counts, in less than half its time) of a client
  process running ``--long`` operations and of one running ``--short``, side by side;
  their difference over ``long - short`` operations (start-up, imports and the first
  connection cancel out).
* **Python calls per operation**: cProfile's count (builtins included) of ``--long``
  operations, in this process, after a warm-up.

Operations (each on a new document id, as ``make bench``'s workloads):

* ``get``: ``await db[id]`` (one GET);
* ``create_save``: ``await Document(db, id, data).save()`` (one PUT);
* ``update``: ``doc = await db[id]``, one field changed, ``await doc.save()`` (GET + PUT);
* ``db_create_save``: ``doc = await db.create(id, data)``, ``await doc.save()`` (HEAD 404
  + PUT).

``--baseline COMMIT`` measures that commit's ``src/`` beside this tree's (exported with
``git archive`` into a temporary folder; the client process imports it first);
``--commits A B ...`` measures those commits only (so that the tree may change meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# (the same hash seed in every client process: the same dict layouts, the same work)
_ENV = {**os.environ, "PYTHONHASHSEED": "0"}
OPERATIONS = ("get", "create_save", "update", "db_create_save")

_HEAD = (
    b"Cache-Control: must-revalidate\r\n"
    b"Content-Type: application/json\r\n"
    b"Date: Sun, 29 Nov 2026 22:00:00 GMT\r\n"
    b'ETag: "%s"\r\n'
    b"Server: CouchDB/3.4.3 (Erlang OTP/25)\r\n"
    b"X-Couch-Request-ID: 0123456789\r\n"
    b"X-CouchDB-Body-Time: 0\r\n"
    b"Connection: keep-alive\r\n"
)
_REV_1 = b"1-967a00dff5e02add41819138abb3284d"
_REV_2 = b"2-0b4c2f3e5d6a7b8c9d0e1f2a3b4c5d6e"


def _answer(status: bytes, rev: bytes, body: bytes, *, head_only: bool = False) -> bytes:
    length = b"Content-Length: %d\r\n" % len(body)
    head = b"HTTP/1.1 " + status + b"\r\n" + length + _HEAD % rev + b"\r\n"
    return head if head_only else head + body


# --- the stand-in server (``--serve``) ---


class _StandIn(asyncio.Protocol):
    """Answers GET (the document), PUT (201, the new revision), HEAD (404), in one write."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import httptools

        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self._url = url

    def on_message_complete(self) -> None:
        from measure import make_doc

        method = self._parser.get_method()
        doc_id = self._url.rsplit(b"/", 1)[1].decode()
        if method == b"GET":
            index = int(doc_id.rsplit("-", 1)[1])
            doc = {"_id": doc_id, "_rev": _REV_1.decode(), **make_doc(index)}
            body = json.dumps(doc, separators=(",", ":")).encode()
            answer = _answer(b"200 OK", _REV_1, body)
        elif method == b"PUT":
            body = b'{"ok":true,"id":"%s","rev":"%s"}\n' % (doc_id.encode(), _REV_2)
            answer = _answer(b"201 Created", _REV_2, body)
        else:
            body = b'{"error":"not_found","reason":"missing"}\n'
            answer = _answer(b"404 Object Not Found", _REV_1, body, head_only=True)
        self._transport.write(answer)


async def serve() -> None:
    """Serves until killed; prints the URL first."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_StandIn, "127.0.0.1", 0)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


# --- the client's loop (``--client``) ---


async def operations(url: str, operation: str, count: int, profile: cProfile.Profile | None) -> str:
    """Runs 20 operations (warm-up), then ``count`` more; returns the module it used."""
    from measure import doc_id, make_doc

    import aiocouch
    from aiocouch import CouchDB, Database, Document

    async with CouchDB(url, user="admin", password="secret") as couchdb:
        db = Database(couchdb, "bench")

        async def one(index: int) -> None:
            identifier = doc_id(index)
            if operation == "get":
                await db[identifier]
            elif operation == "create_save":
                await Document(db, identifier, data=make_doc(index)).save()
            elif operation == "update":
                doc = await db[identifier]
                doc["counter"] = doc["index"] * 2
                await doc.save()
            else:
                doc = await db.create(identifier, data=make_doc(index))
                await doc.save()

        for index in range(1, 21):
            await one(index)
        if profile is not None:
            profile.enable()
        for index in range(21, 21 + count):
            await one(index)
        if profile is not None:
            profile.disable()
    return str(aiocouch.__file__)


# --- the driver ---


@contextlib.contextmanager
def stand_in() -> Iterator[str]:
    """A stand-in server in a process of its own; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def exported(commit: str | None) -> Iterator[str | None]:
    """The ``src/`` folder of ``commit`` (exported), or None for this tree."""
    if commit is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=f"single-cost-{commit[:8]}-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "src"],
            check=True,
            capture_output=True,
        ).stdout
        tar_path = Path(folder) / "src.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(folder)
        yield str(Path(folder) / "src")


def _valgrind(url: str, operation: str, count: int, src: str | None) -> subprocess.Popen[str]:
    """A client process running ``count`` operations under valgrind (instructions counted)."""
    # (cachegrind without its cache simulation counts the instructions that callgrind
    # does, in less than half the time)
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--client", operation, "--count", str(count)]
    command += ["--url", url] + (["--src", src] if src else [])
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_ENV
    )


def _counted(process: subprocess.Popen[str]) -> int:
    _, stderr = process.communicate()
    match = re.search(r"I\s+refs:\s+([\d,]+)", stderr)
    if process.returncode or match is None:
        raise RuntimeError(f"no count in valgrind's output:\n{stderr}")
    return int(match.group(1).replace(",", ""))


def instructions(url: str, operation: str, counts: tuple[int, int], src: str | None) -> float:
    """Instructions per operation: the difference of two client processes (run side by
    side) running ``counts`` operations, over the difference of the counts."""
    long_run, short_run = (_valgrind(url, operation, count, src) for count in counts)
    return (_counted(long_run) - _counted(short_run)) / (counts[0] - counts[1])


def calls(url: str, operation: str, count: int, src: str | None) -> float:
    """Python calls per operation (cProfile, in a client process of its own)."""
    command = [sys.executable, __file__, "--client", operation, "--count", str(count)]
    command += ["--url", url, "--profile"] + (["--src", src] if src else [])
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=_ENV)
    return float(json.loads(result.stdout)["calls"]) / count


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("operations", nargs="*", help=f"of {', '.join(OPERATIONS)} (all)")
    parser.add_argument("--baseline", help="a commit to measure beside this tree")
    parser.add_argument(
        "--commits", nargs="+", help="commits to measure instead (e.g. 0b6e3d6 HEAD)", default=[]
    )
    parser.add_argument("--long", type=int, default=600)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sys.path[:0] = [str(BENCH)]
    if args.serve:
        asyncio.run(serve())
        return
    if args.client:
        if args.src:
            sys.path.insert(0, args.src)
        profile = cProfile.Profile() if args.profile else None
        module = asyncio.run(operations(args.url, args.client, args.count, profile))
        if profile is not None:
            stats: Any = pstats.Stats(profile)
            print(json.dumps({"calls": stats.total_calls, "module": module}))
        return
    unknown = set(args.operations) - set(OPERATIONS)
    if unknown:
        raise SystemExit(f"unknown operations: {', '.join(sorted(unknown))}")
    span = args.long - args.short
    trees: list[tuple[str, str | None]] = [(commit, commit) for commit in args.commits]
    if not trees:
        trees = [("this tree", None)] + ([(args.baseline, args.baseline)] if args.baseline else [])
    print(f"per operation ({span} = {args.long} - {args.short} operations, valgrind)")
    print("| operation | tree | instructions | Python calls |")
    print("|---|---|---:|---:|")
    with stand_in() as url:
        for name, commit in trees:
            with exported(commit) as src:
                for operation in args.operations or OPERATIONS:
                    per_op = instructions(url, operation, (args.long, args.short), src)
                    per_call = calls(url, operation, args.long, src)
                    print(f"| {operation} | {name} | {per_op:,.0f} | {per_call:.0f} |", flush=True)


if __name__ == "__main__":
    main()
