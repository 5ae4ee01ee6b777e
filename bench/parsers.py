"""Client CPU of parsing CouchDB responses: the lean transport's parser and the others.

``python bench/parsers.py`` times, in this process, HTTP/1.1 response parsers on the
responses that matter for the lean transport's speed:

- ``document GET``: a CouchDB 3.4 head (9 fields) and a 350-byte JSON body with
  ``Content-Length``, in one read, as a document GET arrives;
- ``_all_docs stream``: 2,000 rows of ~400 bytes, one chunk per row as CouchDB writes
  them, arriving in 64 KiB reads.

The parsers: ``aiocouch._http.HTTPConnection`` (the lean transport's connection, from
``send()`` to the body handed out), bare ``httptools.HttpResponseParser`` (llhttp, as
uvicorn uses it) with the least callbacks that yield the same result (headers into a
CIMultiDict, body pieces into a list), ``aiohttp.http_parser.HttpResponseParser``
(aiohttp's llhttp build, with its StreamReader payload), and any other version of
``aiocouch/_http.py`` named with ``--also NAME=PATH``, e.g. the hand-written parser this
project had before llhttp::

    git show 8363941:src/aiocouch/_http.py > /tmp/handwritten_http.py
    python bench/parsers.py --also hand-written=/tmp/handwritten_http.py

The best of 7 runs is printed, in microseconds per response.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from multidict import CIMultiDict

from aiocouch._http import HTTPConnection

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Cache-Control: must-revalidate\r\n"
    b"Content-Length: %d\r\n"
    b"Content-Type: application/json\r\n"
    b"Date: Sat, 01 Jun 2024 12:00:00 GMT\r\n"
    b'ETag: "1-967a00dff5e02add41819138abb3284d"\r\n'
    b"Server: CouchDB/3.4.3 (Erlang OTP/25)\r\n"
    b"X-Couch-Request-ID: 3a1f6b5e2d\r\n"
    b"X-CouchDB-Body-Time: 0\r\n"
    b"\r\n"
)
DOC = json.dumps(
    {"_id": "doc-00042", "_rev": "1-967a00dff5e02add41819138abb3284d", "text": "x" * 270}
).encode()
DOC_RESPONSE = HEAD % len(DOC) + DOC

ROW = json.dumps({"id": "doc-00042", "key": "doc-00042", "value": {"rev": "1-a"}, "doc": {}})
ROWS = 2000
STREAM_HEAD = (HEAD % 0).replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
STREAM_BODY = (
    b"".join(
        b"%x\r\n%s\r\n" % (len(row), row)
        for row in [b'{"total_rows":2000,"offset":0,"rows":[\r\n']
        + [ROW.encode() + b",\r\n"] * ROWS
        + [b"\r\n]}\n"]
    )
    + b"0\r\n\r\n"
)
STREAM_READS = [STREAM_HEAD] + [
    STREAM_BODY[i : i + 65536] for i in range(0, len(STREAM_BODY), 65536)
]


class _Transport(asyncio.Transport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: Any) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def lean(reads: list[bytes], module: ModuleType | None = None) -> Callable[[], Any]:
    """One kept-alive connection, as the transport uses it: a send() per response."""
    connection = (HTTPConnection if module is None else module.HTTPConnection)()
    connection.connection_made(_Transport())

    def parse() -> Any:
        connection.send(b"", expect_body=True)
        for data in reads:
            connection.data_received(data)
        assert connection._done
        head, body = connection._head, list(connection._body)
        connection._body.clear()
        connection._body_size = 0
        return head, body

    return parse


def httptools_parser(reads: list[bytes]) -> Callable[[], Any]:
    import httptools

    class Callbacks:
        def __init__(self) -> None:
            self.fields: list[tuple[str, str]] = []
            self.body: list[bytes] = []
            self.headers: CIMultiDict[str] | None = None
            self.done = False

        def on_header(self, name: bytes, value: bytes) -> None:
            self.fields.append((name.decode("latin-1"), value.decode("latin-1")))

        def on_headers_complete(self) -> None:
            self.headers = CIMultiDict(self.fields)

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            self.done = True

    def parse() -> Any:
        callbacks = Callbacks()
        parser = httptools.HttpResponseParser(callbacks)
        for data in reads:
            parser.feed_data(data)
        assert callbacks.done
        return parser.get_status_code(), callbacks.headers, callbacks.body

    return parse


def aiohttp_parser(reads: list[bytes]) -> Callable[[], Any]:
    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.http_parser import HttpResponseParser

    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)

    def parse() -> Any:
        parser = HttpResponseParser(protocol, loop, 2**16, auto_decompress=False)
        messages: list[Any] = []
        pieces = []
        for data in reads:
            messages += parser.feed_data(data)[0]
            # read as a consumer does, so that the payload never reaches its limit
            pieces.append(messages[0][1].read_nowait())
        message, payload = messages[0]
        assert payload.is_eof()
        return message.code, message.headers, pieces

    return parse


def best_of(parse: Callable[[], Any], repeat: int) -> float:
    """Microseconds per call, the best of 7 runs of ``repeat`` calls."""
    times = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(repeat):
            parse()
        times.append((time.perf_counter() - started) / repeat * 1e6)
    return min(times)


def load(name: str, path: str) -> ModuleType:
    """Another version of aiocouch/_http.py, imported beside the current one."""
    spec = importlib.util.spec_from_file_location(f"aiocouch._http_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    arguments.add_argument("--also", action="append", default=[], metavar="NAME=PATH")
    others = [entry.split("=", 1) for entry in arguments.parse_args().also]
    makers: list[tuple[str, Callable[[list[bytes]], Callable[[], Any]]]] = [
        ("aiocouch._http", lean)
    ]
    for name, path in others:
        module = load(name.replace("-", "_"), path)
        makers.append((name, lambda reads, module=module: lean(reads, module)))
    makers += [("bare httptools", httptools_parser), ("aiohttp parser", aiohttp_parser)]
    cases = [("document GET", [DOC_RESPONSE], 20_000), ("_all_docs stream", STREAM_READS, 100)]
    print("| response | " + " | ".join(name for name, _ in makers) + " |")
    print("|---|" + "---:|" * len(makers))
    for name, reads, repeat in cases:
        figures = [best_of(make(reads), repeat) for _, make in makers]
        print(f"| {name} | " + " | ".join(f"{us:.1f} us" for us in figures) + " |")


if __name__ == "__main__":
    asyncio.run(main())
