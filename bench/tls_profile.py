"""Where a document GET's client CPU goes over https: CPU per request, and a cProfile by layer.

    .venv/bin/python bench/tls_profile.py                    # against a stand-in server
    .venv/bin/python bench/tls_profile.py --server pouchdb   # pouchdb-server behind a TLS proxy

Four parts; the clients each in a fresh process of its own (the servers too, so that
the process's CPU clock counts the client alone):

* **OpenSSL alone**: the client side of a request and its answer with two
  :class:`ssl.SSLObject` over memory BIOs in this process, no socket and no event loop
  (encrypting the request, decrypting the answer into a buffer): the floor of any TLS
  client in Python, with and without asyncio's extra read that raises
  :class:`ssl.SSLWantReadError` (see :func:`tls_floor`).

* **CPU per request**: ``--count`` GETs of one document, one after the other, by this
  project (``CouchDB(url, ssl=context)``: the lean transport) and by plain aiohttp
  (``session.get`` + ``orjson.loads``), each over http and over https, and with
  ``--baseline COMMIT`` by that commit's aiocouch over https; the rounds take turns, and
  the table gives the median µs of client CPU per GET (user + system,
  ``time.process_time``) and the range.
* **Interleaved**: the same in this one process, for this project only, over http, over
  https through its own TLS layer and over https through asyncio's (its connections
  opened with ``loop.create_connection(ssl=...)``, as before ``_tls.py``), the three
  taking turns every ``--count / 4`` GETs: steadier than separate processes on a loaded
  machine (see :func:`interleaved`).
* **Profile**: the same GETs of this project over https and over http (and the baseline's
  over https) under cProfile with the process's CPU clock, the own time summed by layer:
  the TLS layer in Python (asyncio's ``asyncio/sslproto.py``, or this project's
  ``_tls.py``), the ``ssl`` module's Python wrappers (``SSLObject.read`` and so on), the C
  work of OpenSSL (``_ssl`` methods: decrypting, encrypting, the memory BIOs), the event
  loop and the socket calls, the rest of this project's code, and the rest.

The stand-in (``--server standin``, the default) answers every request at once with the
same CouchDB-like answer (9 header fields, a 130-byte document), serving http on one port
and https (TLS 1.3, a ``trustme`` certificate) on another, so that the figures are the
client's and not the server's. ``--server pouchdb`` measures what ``make bench`` measures:
pouchdb-server (or ``COUCHDB_URL``) over http, and over https through
``testserver.tls_proxy`` in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]

CLIENTS = ("ours-https", "ours-http", "aiohttp-https", "aiohttp-http")
DOC_ID = "doc-1"
_DOCUMENT = json.dumps(
    {
        "_id": DOC_ID,
        "_rev": "1-967a00dff5e02add41819138abb3284d",
        "index": 1,
        "name": "document number one",
        "tags": ["a", "b", "c"],
    },
    separators=(",", ":"),
).encode()
_ANSWER = (
    b"HTTP/1.1 200 OK\r\n"
    b"Cache-Control: must-revalidate\r\n"
    b"Content-Length: %d\r\n"
    b"Content-Type: application/json\r\n"
    b"Date: Sun, 29 Nov 2026 22:00:00 GMT\r\n"
    b'ETag: "1-967a00dff5e02add41819138abb3284d"\r\n'
    b"Server: CouchDB/3.4.3 (Erlang OTP/25)\r\n"
    b"X-Couch-Request-ID: 0123456789\r\n"
    b"X-CouchDB-Body-Time: 0\r\n"
    b"Connection: keep-alive\r\n\r\n" % len(_DOCUMENT)
) + _DOCUMENT

# --- the stand-in server (``--serve``) ---


class _StandIn(asyncio.Protocol):
    """Answers each complete request with :data:`_ANSWER`, in one write."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import httptools

        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        self._transport.write(_ANSWER)


async def serve(cert: str, key: str) -> None:
    """Serves http and https until killed; prints both URLs first."""
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    plain = await loop.create_server(_StandIn, "127.0.0.1", 0)
    secure = await loop.create_server(_StandIn, "127.0.0.1", 0, ssl=context)
    ports = [server.sockets[0].getsockname()[1] for server in (plain, secure)]
    print(f"http://127.0.0.1:{ports[0]} https://localhost:{ports[1]}", flush=True)
    await asyncio.Event().wait()


# --- one client's GETs (``--client``) ---


async def gets(args: argparse.Namespace) -> dict[str, Any]:
    """``--count`` GETs of one document by one client; their CPU, or their profile."""
    import aiohttp
    import orjson

    from aiocouch import CouchDB, Database

    context = ssl.create_default_context(cafile=args.ca)
    user = os.environ.get("COUCHDB_USER")
    password = os.environ.get("COUCHDB_PASSWORD")
    profile = cProfile.Profile(time.process_time) if args.profile else None
    if args.client.startswith("ours"):
        options: dict[str, Any] = {"ssl": context}
        if user:
            options.update(user=user, password=password)
        async with CouchDB(args.url, **options) as couchdb:
            db = Database(couchdb, args.db)

            async def get() -> None:
                await db[DOC_ID]

            cpu = await _timed(get, args.count, profile)
    else:
        auth = aiohttp.BasicAuth(user, password or "") if user else None
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(auth=auth, connector=connector) as session:
            url = f"{args.url}/{args.db}/{DOC_ID}"

            async def get() -> None:
                async with session.get(url) as response:
                    response.raise_for_status()
                    orjson.loads(await response.read())

            cpu = await _timed(get, args.count, profile)
    result: dict[str, Any] = {"us_per_get": cpu / args.count * 1e6}
    if profile is not None:
        result["layers"] = by_layer(pstats.Stats(profile))
    return result


async def _timed(get: Any, count: int, profile: cProfile.Profile | None) -> float:
    for _ in range(20):  # warm-up: the connection, the TLS handshake, first-use imports
        await get()
    start = time.process_time()
    if profile is not None:
        profile.enable()
    for _ in range(count):
        await get()
    if profile is not None:
        profile.disable()
    return time.process_time() - start


_C_SSL = ("_ssl._SSLSocket", "_ssl.MemoryBIO")
_EVENT_LOOP = ("base_events.py", "selector_events.py", "selectors.py", "events.py", "futures.py")


def layer_of(filename: str, name: str) -> str:
    """The layer a profiled function belongs to (see the module's docstring)."""
    if filename == "~":
        if any(kind in name for kind in _C_SSL):
            return "OpenSSL (C: _ssl read/write, MemoryBIO)"
        if "epoll" in name or "socket" in name:
            return "event loop and socket calls"
        return "other C functions (" + name + ")"
    if filename.endswith("asyncio/sslproto.py"):
        return "asyncio/sslproto.py (Python)"
    if filename.endswith("/ssl.py"):
        return "ssl.py wrappers (Python)"
    if filename.endswith("aiocouch/_tls.py"):
        return "aiocouch/_tls.py (Python)"
    if "aiocouch" in filename:
        return "aiocouch (Python)"
    if any(filename.endswith("asyncio/" + module) for module in _EVENT_LOOP):
        return "event loop and socket calls"
    if filename.endswith(("selectors.py",)):
        return "event loop and socket calls"
    return "other Python (" + "/".join(Path(filename).parts[-2:]) + ")"


def by_layer(stats: pstats.Stats) -> dict[str, dict[str, list[float]]]:
    """Per layer, and within it per function: [own seconds, calls]."""
    layers: defaultdict[str, dict[str, list[float]]] = defaultdict(dict)
    for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        key = name if filename == "~" else f"{Path(filename).name}:{line}({name})"
        counted = layers[layer_of(filename, name)].setdefault(key, [0.0, 0])
        counted[0] += row[2]
        counted[1] += row[1]
    return dict(layers)


# --- the TLS layers side by side in one process (``--interleaved``) ---


async def interleaved(args: argparse.Namespace) -> dict[str, list[float]]:
    """µs of CPU per GET of this project over http, over https with its own TLS layer, and
    over https with asyncio's (the connections of one client opened with
    ``loop.create_connection(ssl=...)``, as before), taking turns in this process: the
    machine's load falls on all three alike."""
    from aiocouch import CouchDB, Database
    from aiocouch._connect import Endpoint

    class AsyncioTLS(Endpoint):
        """Opens connections through asyncio's TLS layer (``asyncio.sslproto``)."""

        async def connect(self, protocol: Any, timeout: float | None) -> Any:
            loop = asyncio.get_running_loop()
            opening = loop.create_connection(
                protocol, self.host, self.port, ssl=self.tls, server_hostname=self.host
            )
            _, connection = await asyncio.wait_for(opening, timeout)
            return connection

    options: dict[str, Any] = {"ssl": ssl.create_default_context(cafile=args.ca)}
    if os.environ.get("COUCHDB_USER"):
        options.update(user=os.environ["COUCHDB_USER"], password=os.environ["COUCHDB_PASSWORD"])
    clients = {
        "ours-http": CouchDB(args.urls["http"], **options),
        "ours-https (_tls.py)": CouchDB(args.urls["https"], **options),
        "ours-https (asyncio sslproto)": CouchDB(args.urls["https"], **options),
    }
    pool = clients["ours-https (asyncio sslproto)"]._server._transport._pool  # type: ignore[attr-defined]
    endpoint = pool._endpoint
    pool._endpoint = AsyncioTLS(endpoint.scheme, endpoint.host, endpoint.port, endpoint.tls)
    samples: dict[str, list[float]] = {name: [] for name in clients}
    try:
        databases = {name: Database(client, args.db) for name, client in clients.items()}
        for db in databases.values():
            await db[DOC_ID]
        for _ in range(args.rounds * 4):
            for name, db in databases.items():
                start = time.process_time()
                for _ in range(args.count // 4):
                    await db[DOC_ID]
                samples[name].append((time.process_time() - start) / (args.count // 4) * 1e6)
    finally:
        for client in clients.values():
            await client.close()
    return samples


# --- the floor: OpenSSL's own work per request and answer ---


def tls_floor(ca: Any, count: int, rounds: int) -> dict[str, list[float]]:
    """µs of client CPU per request and answer spent in OpenSSL alone (no socket, no loop).

    A client and a server :class:`ssl.SSLObject` over memory BIOs in this process; the
    server's records are made before the timed loop, which does what the client does per
    request: encrypt the request, take the record, hand the answer's record to the BIO,
    decrypt it into a buffer; once as :mod:`aiocouch._tls` does (``one read``), once with
    the second read of asyncio's ``sslproto`` that raises ``SSLWantReadError``.
    """
    request = b"GET /db/doc-1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: aiocouch\r\n\r\n"
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    samples: dict[str, list[float]] = {"one read": [], "one read + SSLWantReadError": []}
    buffer = memoryview(bytearray(128 * 1024))
    for _ in range(rounds):
        for variant, failing_read in zip(samples, (False, True)):
            client, ci, co, records = connected_pair(client_context, server_context, count)
            start = time.process_time()
            for record in records:
                client.write(request)
                co.read()
                ci.write(record)
                client.read(len(buffer), buffer)
                if failing_read:
                    with contextlib.suppress(ssl.SSLWantReadError):
                        client.read(len(buffer), buffer)
            samples[variant].append((time.process_time() - start) / count * 1e6)
    return samples


def connected_pair(
    client_context: ssl.SSLContext, server_context: ssl.SSLContext, count: int
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO, list[bytes]]:
    """A client :class:`ssl.SSLObject` after its handshake with a server over memory BIOs,
    the client's incoming and outgoing BIO, and ``count`` records of the server's answer."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(client_in, client_out, server_hostname="localhost")
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(4):  # the handshake, and the session tickets read
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    with contextlib.suppress(ssl.SSLWantReadError):
        client.read(1024)
    records = []
    for _ in range(count):
        server.write(_ANSWER)
        records.append(server_out.read())
    return client, client_in, client_out, records


# --- the orchestration ---


def run_client(
    client: str, urls: dict[str, str], args: argparse.Namespace, *, profile: bool
) -> Any:
    scheme = client.rsplit("-", 1)[1]
    env = dict(os.environ)
    if client.startswith("baseline"):
        # The baseline's src/ first on the path: its aiocouch, not the installed one.
        env["PYTHONPATH"] = os.pathsep.join([f"{args.baseline_src}/src", str(REPO)])
        client = "ours-" + scheme
    command = [sys.executable, __file__, "--client", client, "--url", urls[scheme]]
    command += ["--db", args.db, "--ca", args.ca, "--count", str(args.count)]
    if profile:
        command.append("--profile")
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def report_floor(args: argparse.Namespace, ca: Any) -> None:
    samples = tls_floor(ca, args.count * 5, args.rounds)
    print(f"\nOpenSSL alone, {args.count * 5} requests and answers, median of {args.rounds}")
    print("(min-max), µs of client CPU each:\n")
    print("| client side of one exchange | µs |\n|---|---:|")
    for variant, values in samples.items():
        low, high = min(values), max(values)
        print(f"| {variant} | {statistics.median(values):.1f} ({low:.1f}-{high:.1f}) |")


def report_interleaved(args: argparse.Namespace, urls: dict[str, str]) -> None:
    args.urls = urls
    samples = asyncio.run(interleaved(args))
    runs = len(next(iter(samples.values())))
    print(f"\nIn one process, taking turns: {runs} runs of {args.count // 4} GETs each, median")
    print("(min-max), µs of client CPU per GET:\n")
    print("| client | µs per GET |\n|---|---:|")
    for name, values in samples.items():
        low, high = min(values), max(values)
        print(f"| {name} | {statistics.median(values):.0f} ({low:.0f}-{high:.0f}) |")


def report(args: argparse.Namespace, urls: dict[str, str]) -> None:
    clients = CLIENTS + (("baseline-https",) if args.baseline else ())
    samples: dict[str, list[float]] = {client: [] for client in clients}
    for round_number in range(args.rounds):
        order = clients[round_number % len(clients) :] + clients[: round_number % len(clients)]
        for client in order:
            samples[client].append(run_client(client, urls, args, profile=False)["us_per_get"])
    print(f"\n{args.count} GETs per run, median of {args.rounds} runs (min-max), µs of")
    print("client CPU per GET:\n")
    print("| client | µs per GET |\n|---|---:|")
    for client in clients:
        values = samples[client]
        print(
            f"| {client} | {statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f}) |"
        )
    for client in ("ours-https", "ours-http", *(("baseline-https",) if args.baseline else ())):
        layers = run_client(client, urls, args, profile=True)["layers"]
        own = {layer: sum(f[0] for f in functions.values()) for layer, functions in layers.items()}
        calls = {
            layer: sum(f[1] for f in functions.values()) for layer, functions in layers.items()
        }
        total = sum(own.values())
        print(f"\n{client}: {total / args.count * 1e6:.0f} µs profiled own time per GET\n")
        print("| layer | µs per GET | share | calls per GET |\n|---|---:|---:|---:|")
        ranked = sorted(layers, key=lambda layer: -own[layer])
        for layer in ranked[: args.top]:
            print(
                f"| {layer} | {own[layer] / args.count * 1e6:.1f} | {own[layer] / total:.0%} "
                f"| {calls[layer] / args.count:.1f} |"
            )
        if client != "ours-http":
            print("\nthe TLS layers' functions (µs per GET, calls per GET):\n")
            for layer in ranked:
                if "ssl" in layer.lower() or "tls" in layer:
                    functions = sorted(layers[layer].items(), key=lambda item: -item[1][0])
                    for key, (seconds, number) in functions[:10]:
                        each = seconds / args.count * 1e6
                        print(f"- {layer}: {key} {each:.1f} µs, {number / args.count:.1f}")
    print("\nload: " + os.popen("uptime").read().strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--server", choices=("standin", "pouchdb"), default="standin")
    parser.add_argument("--count", type=int, default=2000, help="GETs per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each client")
    parser.add_argument("--top", type=int, default=12, help="layers shown")
    parser.add_argument(
        "--baseline", metavar="COMMIT", help="also this commit's aiocouch over https"
    )
    parser.add_argument("--serve", nargs=2, metavar=("CERT", "KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--db", default="bench_tls_profile", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(*args.serve))
        return 0
    if args.client:
        print(json.dumps(asyncio.run(gets(args))), flush=True)
        return 0
    return orchestrate(args)


def orchestrate(args: argparse.Namespace) -> int:
    import tls  # (bench/tls.py; here only: it imports the benchmark's worker)

    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            args.baseline_src = f"{tmp}/baseline"
            os.mkdir(args.baseline_src)
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.baseline, "src"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", args.baseline_src], input=archive, check=True)
        ca, cert, key, args.ca = tls.write_certificate(tmp)
        report_floor(args, ca)
        if args.server == "standin":
            return _against(args, [sys.executable, __file__, "--serve", cert, key], None)
        from testserver.pouchdb_server import server_from_environment

        with server_from_environment() as server:
            os.environ["COUCHDB_USER"], os.environ["COUCHDB_PASSWORD"] = (
                server.user,
                server.password,
            )
            asyncio.run(_seed(server.url, server.user, server.password, args.db))
            proxy = [sys.executable, str(BENCH / "tls.py"), "--proxy", server.url, cert, key]
            return _against(args, proxy, server.url)


def _against(args: argparse.Namespace, command: list[str], http_url: str | None) -> int:
    with serving(command, http_url) as urls:
        report_interleaved(args, urls)
        report(args, urls)
    return 0


@contextlib.contextmanager
def serving(command: list[str], http_url: str | None) -> Iterator[dict[str, str]]:
    """The ``http`` and ``https`` URLs of the server that ``command`` starts, while the
    block runs. The stand-in prints both; a TLS proxy prints its https URL, and
    ``http_url`` is then that of the server behind it."""
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        printed = server.stdout.readline().split()
        if http_url is None:
            yield {"http": printed[0], "https": printed[1]}
        else:
            yield {"http": http_url, "https": printed[0]}
    finally:
        server.terminate()
        server.wait()


async def _seed(url: str, user: str, password: str, db: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession(auth=aiohttp.BasicAuth(user, password)) as session:
        async with session.put(f"{url}/{db}") as response:
            await response.read()
        document = json.loads(_DOCUMENT)
        del document["_rev"]
        async with session.put(f"{url}/{db}/{DOC_ID}", json=document) as response:
            await response.read()


if __name__ == "__main__":
    sys.exit(main())
