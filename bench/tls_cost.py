"""What a document GET costs over https beyond http, in counted work: instructions and system calls.

    .venv/bin/python bench/tls_cost.py --small 200 --large 1200   # against a stand-in
    .venv/bin/python bench/tls_cost.py --server pouchdb --only strace records

CPU seconds on a shared machine move with its load; the work a GET does does not. For
each of http and https this script runs this project's client (``CouchDB(url,
ssl=context)``, the lean transport; ``await db[doc_id]`` in a loop) in fresh processes of
its own, ``--small`` and then ``--large`` GETs after the same warm-up, and takes the
difference of the two runs divided by the difference of their GETs: start-up, imports
and the TLS handshake fall out, what is left is the work of one GET.

* ``callgrind`` (valgrind): user-space instructions per GET, split by where they run:
  OpenSSL (``libssl``, ``libcrypto``), Python's ``_ssl`` module, the interpreter (whatever
  Python code runs: the event loop, this project's HTTP and TLS layers), the C library
  (``memcpy``, ``malloc``...), and the rest; then the functions whose own count grows
  most, and the inclusive count of the ``_ssl`` calls (each with the OpenSSL work under it).
* ``strace -c``: system calls per GET, by name (the kernel's own work is not counted by
  callgrind: more calls, or another kind, would show here).
* The server's side (``records``): how many TLS records and TCP reads one answer comes
  in, seen from a client reading the socket by hand (a record split over several reads
  costs the client an event-loop turn each).
* OpenSSL's work per exchange (``exchange``): the CPU of the client side of one request
  and answer over memory BIOs, back to back and after an interlude (Python work, a
  loopback send and recv, a 0.2 ms sleep): what the same instructions cost when the
  caches were emptied meanwhile, as while a client waits for its answer.

The stand-in (``tls_profile.py --serve``) answers each request at once with a fixed,
CouchDB-like answer over http and over https (TLS 1.3, a ``trustme`` certificate), in a
process of its own so that only the client is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

import tls_profile  # noqa: E402  (bench/tls_profile.py: the stand-in and the seeding)

_OBJECTS = (
    ("OpenSSL (libssl, libcrypto)", ("libssl", "libcrypto")),
    ("Python's _ssl module", ("_ssl.cpython",)),
    ("C library (libc, ld.so)", ("libc.so", "libc-", "ld-linux")),
    ("interpreter (python)", ("python3", "libpython")),
)
_SSL_CALLS = (
    "_ssl__SSLSocket_read",
    "_ssl__SSLSocket_write",
    "_ssl__SSLSocket_pending",
    "_ssl_MemoryBIO_write",
    "_ssl_MemoryBIO_read",
    "SSL_read_ex",
    "SSL_write_ex",
)


# --- the client (``--client``): GETs, nothing else ---


async def gets(url: str, db_name: str, ca: str, count: int) -> None:
    """20 GETs to warm up (connection, handshake, imports), then ``count`` more."""
    from aiocouch import CouchDB, Database

    options: dict[str, Any] = {"ssl": ssl.create_default_context(cafile=ca)}
    if os.environ.get("COUCHDB_USER"):
        options.update(user=os.environ["COUCHDB_USER"], password=os.environ["COUCHDB_PASSWORD"])
    async with CouchDB(url, **options) as couchdb:
        db = Database(couchdb, db_name)
        for _ in range(20 + count):
            await db[tls_profile.DOC_ID]


# --- the measurements ---


def client_command(url: str, args: argparse.Namespace, count: int) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--client",
        "--url",
        url,
        "--db",
        args.db,
        "--ca",
        args.ca,
        "--count",
        str(count),
    ]


def _run(command: list[str]) -> None:
    """Runs a client with a fixed hash seed (the same dict layouts in every run) and no
    byte-code written (a module compiled in one run is compiled in the other too): two
    runs differ by their GETs only."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)


def callgrind(url: str, args: argparse.Namespace, count: int, out: str) -> dict[str, Any]:
    """One client run under callgrind: own instructions by function and object, and the
    inclusive instructions of the ``_ssl`` calls."""
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    _run(command + client_command(url, args, count))
    own = annotate(out, inclusive=False)
    inclusive = annotate(out, inclusive=True)
    return {"own": own, "inclusive": {k: v for k, v in inclusive.items() if _is_ssl_call(k)}}


def _is_ssl_call(key: str) -> bool:
    name = key.split(" [", 1)[0].rsplit(":", 1)[-1]
    return name in _SSL_CALLS


_ROW = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$")


def annotate(out: str, *, inclusive: bool) -> dict[str, int]:
    """Instructions by ``file:function [object]``, as callgrind_annotate lists them."""
    command = [
        "callgrind_annotate",
        "--threshold=100",
        f"--inclusive={'yes' if inclusive else 'no'}",
    ]
    text = subprocess.run([*command, out], check=True, capture_output=True, text=True).stdout
    rows: dict[str, int] = {}
    started = False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            continue
        match = _ROW.match(line) if started else None
        if match:
            rows[match.group(2).strip()] = int(match.group(1).replace(",", ""))
    return rows


def object_of(key: str) -> str:
    for name, patterns in _OBJECTS:
        if any(pattern in key for pattern in patterns):
            return name
    return "other"


def strace(url: str, args: argparse.Namespace, count: int, out: str) -> dict[str, int]:
    """System calls of one client run, by name (``strace -c``, all threads)."""
    _run(["strace", "-f", "-c", "-o", out, *client_command(url, args, count)])
    calls: dict[str, int] = {}
    for line in Path(out).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].replace(".", "").isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return calls


def per_get(large: dict[str, int], small: dict[str, int], gets: int) -> dict[str, float]:
    return {key: (large.get(key, 0) - small.get(key, 0)) / gets for key in large.keys() | small}


# --- the server's side: records and reads of one answer ---


def records(url: str, args: argparse.Namespace, count: int = 50) -> dict[str, float]:
    """Reads per answer and TLS records per answer, by a blocking client reading by hand.

    The client sends a GET, then reads the socket until the answer is complete: each
    ``recv`` is what one wakeup of an event loop would get (the answer's bytes all arrive
    before the client, which is waiting, is given the CPU again only if the server wrote
    them at once). The records are counted from their 5-byte headers.
    """
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    request = (
        f"GET /{args.db}/{tls_profile.DOC_ID} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + _authorization()
        + "\r\n"
    ).encode()
    context = ssl.create_default_context(cafile=args.ca)
    raw_reads = record_count = 0
    with socket.create_connection((host, int(port))) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                incoming.write(raw.recv(65536))
        raw.sendall(outgoing.read())
        time.sleep(0.2)  # the session tickets, read and counted before the GETs
        raw.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            incoming.write(raw.recv(65536))
        raw.setblocking(True)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.read(65536)
        for _ in range(count):
            tls.write(request)
            raw.sendall(outgoing.read())
            answer = b""
            while not _complete(answer):
                data = raw.recv(65536)
                raw_reads += 1
                record_count += _records_in(data)
                incoming.write(data)
                with contextlib.suppress(ssl.SSLWantReadError):
                    while True:
                        answer += tls.read(65536)
    return {"reads per answer": raw_reads / count, "TLS records per answer": record_count / count}


_pending_record = bytearray()


def _records_in(data: bytes) -> int:
    """TLS records that end in ``data`` (a record's 5-byte header gives its length)."""
    _pending_record.extend(data)
    count = 0
    while len(_pending_record) >= 5:
        length = 5 + int.from_bytes(_pending_record[3:5], "big")
        if len(_pending_record) < length:
            break
        del _pending_record[:length]
        count += 1
    return count


def _complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))


def _authorization() -> str:
    import base64

    user = os.environ.get("COUCHDB_USER")
    if not user:
        return ""
    secret = base64.b64encode(f"{user}:{os.environ['COUCHDB_PASSWORD']}".encode()).decode()
    return f"Authorization: Basic {secret}\r\n"


# --- OpenSSL's work per exchange, hot and after the process slept ---


def exchange_costs(ca: Any, count: int, rounds: int) -> dict[str, float]:
    """µs of CPU of the client side of one exchange (encrypt a request, decrypt a
    130-byte document's answer: one ``SSLObject.write`` and one ``read`` over memory BIOs,
    as ``_tls.py`` does per GET), back to back and after each of three interludes: the
    exchange's CPU is that of the interlude with it less that of the interlude alone."""
    request = b"GET /db/doc-1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: aiocouch\r\n\r\n"
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    buffer = memoryview(bytearray(128 * 1024))
    left, right = socket.socketpair()
    answer = bytes(len(tls_profile._ANSWER))
    documents = [{"_id": str(n), "value": str(n)} for n in range(400)]

    def python_work() -> None:  # interpreted work, as the HTTP layer does between two
        for document in documents:
            document["value"].encode()

    def loopback() -> None:  # a request and its answer through the kernel, not waiting
        left.send(request)
        right.recv(4096)
        right.send(answer)
        left.recv(4096)

    def sleep() -> None:  # the CPU given up, as while the client waits for the answer
        time.sleep(0.0002)

    interludes = {"back to back": None, "after Python work": python_work}
    interludes.update({"after loopback send/recv": loopback, "after a 0.2 ms sleep": sleep})
    samples: dict[str, list[float]] = {name: [] for name in interludes}
    for _ in range(rounds):
        for name, interlude in interludes.items():
            client, incoming, outgoing, records = tls_profile.connected_pair(
                client_context, server_context, 5000
            )
            start = time.process_time()
            for record in records[:count]:
                if interlude is not None:
                    interlude()
                client.write(request)
                outgoing.read()
                incoming.write(record)
                client.read(len(buffer), buffer)
            spent = time.process_time() - start
            if interlude is not None:
                start = time.process_time()
                for _ in range(count):
                    interlude()
                spent -= time.process_time() - start
            samples[name].append(spent / count * 1e6)
    left.close()
    right.close()
    return {name: statistics.median(values) for name, values in samples.items()}


# --- the report ---


def report(args: argparse.Namespace, urls: dict[str, str], tmp: str) -> None:
    gets_measured = args.large - args.small
    print(f"\nper GET: ({args.large} GETs) - ({args.small} GETs), divided by {gets_measured}")
    own: dict[str, dict[str, float]] = {}
    inclusive: dict[str, dict[str, float]] = {}
    if "callgrind" in args.only and shutil.which("valgrind"):
        for scheme, url in urls.items():
            small = callgrind(url, args, args.small, f"{tmp}/cg.{scheme}.small")
            large = callgrind(url, args, args.large, f"{tmp}/cg.{scheme}.large")
            own[scheme] = per_get(large["own"], small["own"], gets_measured)
            inclusive[scheme] = per_get(large["inclusive"], small["inclusive"], gets_measured)
        print("\n| instructions per GET (callgrind) | http | https | https - http |")
        print("|---|---:|---:|---:|")
        by_object: dict[str, dict[str, float]] = {}
        for scheme, rows in own.items():
            grouped: defaultdict[str, float] = defaultdict(float)
            for key, value in rows.items():
                grouped[object_of(key)] += value
            by_object[scheme] = dict(grouped)
        names = [name for name, _ in _OBJECTS] + ["other"]
        for name in names:
            http, https = by_object["http"].get(name, 0), by_object["https"].get(name, 0)
            print(f"| {name} | {http:,.0f} | {https:,.0f} | {https - http:+,.0f} |")
        http_total, https_total = sum(by_object["http"].values()), sum(by_object["https"].values())
        added = https_total - http_total
        print(f"| **all** | {http_total:,.0f} | {https_total:,.0f} | {added:+,.0f} |")
        print("\nfunctions whose own instructions per GET grow most from http to https:\n")
        print("| function [object] | http | https | https - http |\n|---|---:|---:|---:|")
        keys = own["http"].keys() | own["https"].keys()
        growth = {key: own["https"].get(key, 0) - own["http"].get(key, 0) for key in keys}
        for key in sorted(growth, key=lambda key: -abs(growth[key]))[: args.top]:
            print(
                f"| {_short(key)} | {own['http'].get(key, 0):,.0f} | "
                f"{own['https'].get(key, 0):,.0f} | {growth[key]:+,.0f} |"
            )
        print("\n_ssl and OpenSSL calls over https, inclusive instructions per GET:\n")
        for key, value in sorted(inclusive["https"].items(), key=lambda item: -item[1]):
            print(f"- {_short(key)}: {value:,.0f}")
    if "strace" in args.only and shutil.which("strace"):
        print("\n| system calls per GET (strace -c) | http | https |\n|---|---:|---:|")
        calls = {}
        for scheme, url in urls.items():
            small = strace(url, args, args.small, f"{tmp}/st.{scheme}.small")
            large = strace(url, args, args.large, f"{tmp}/st.{scheme}.large")
            calls[scheme] = per_get(large, small, gets_measured)
        for name in sorted(calls["http"].keys() | calls["https"].keys()):
            http, https = calls["http"].get(name, 0), calls["https"].get(name, 0)
            if abs(http) >= 0.05 or abs(https) >= 0.05:
                print(f"| {name} | {http:.2f} | {https:.2f} |")
    if "records" in args.only:
        seen = records(urls["https"], args)
        print("\n| one answer over https, as the server sends it | per answer |\n|---|---:|")
        print(f"| TLS records | {seen['TLS records per answer']:.2f} |")
        print(f"| reads of the socket (recv) | {seen['reads per answer']:.2f} |")
    if "exchange" in args.only:
        costs = exchange_costs(args.trustme_ca, 2000, 5)
        print("\n| OpenSSL, client side of one exchange (median of 5 runs of 2,000) | µs |")
        print("|---|---:|")
        for name, cost in costs.items():
            print(f"| {name} | {cost:.1f} |")
    print("\nload: " + os.popen("uptime").read().strip())


def _short(key: str) -> str:
    name, _, obj = key.partition(" [")
    return f"{name.rsplit(':', 1)[-1]} [{Path(obj.rstrip(']')).name}]" if obj else name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--server", choices=("standin", "pouchdb"), default="standin")
    parser.add_argument("--small", type=int, default=100, help="GETs of the smaller run")
    parser.add_argument("--large", type=int, default=600, help="GETs of the larger run")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("callgrind", "strace", "records", "exchange"),
        default=("callgrind", "strace", "records", "exchange"),
        help="the measurements made (all by default)",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep callgrind's and strace's files here")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", default="bench_tls_profile", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(gets(args.url, args.db, args.ca, args.count))
        return 0
    import tls  # (bench/tls.py; here only: it imports the benchmark's worker)

    with tempfile.TemporaryDirectory() as tmp:
        args.trustme_ca, cert, key, args.ca = tls.write_certificate(tmp)
        if args.server == "standin":
            command = [sys.executable, tls_profile.__file__, "--serve", cert, key]
            return _against(args, command, None, tmp)
        from testserver.pouchdb_server import server_from_environment

        with server_from_environment() as server:
            os.environ["COUCHDB_USER"] = server.user
            os.environ["COUCHDB_PASSWORD"] = server.password
            asyncio.run(tls_profile._seed(server.url, server.user, server.password, args.db))
            proxy = [sys.executable, str(BENCH / "tls.py"), "--proxy", server.url, cert, key]
            return _against(args, proxy, server.url, tmp)


def _against(args: argparse.Namespace, command: list[str], http_url: str | None, tmp: str) -> int:
    with tls_profile.serving(command, http_url) as urls:
        report(args, urls, args.keep or tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
