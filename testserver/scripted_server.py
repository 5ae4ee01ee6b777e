"""A real TCP server on loopback whose every answer is scripted byte for byte.

Tests use it to break HTTP on purpose: broken framing, stalls, resets, connections closed
after the request was read. Each request that arrives is parsed (head and a
``Content-Length`` or chunked body), recorded in :attr:`ScriptedServer.requests`, and handed to the
test's handler together with its connection, on which the handler writes exact bytes,
stalls, closes or resets::

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, b'{"ok":true}'))

    async with ScriptedServer(handler) as server:
        ...  # server.url, server.requests
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from .loopback import shut_down

__all__ = [
    "CHUNKED_HEAD",
    "ReceivedRequest",
    "ScriptedConnection",
    "ScriptedServer",
    "answering",
    "chunk",
    "chunked",
    "continuous_feed",
    "error_answer",
    "hold",
    "http_response",
    "in_turn",
    "json_line",
    "json_lines",
    "query",
    "routed",
    "scripted",
]

_MAX_REQUEST_HEAD = 1 << 20
_HANDED_OUT_WAIT = 10.0
"""Seconds a scripted answer waits for the client to hand out what it sent."""


@dataclass
class ReceivedRequest:
    """One request as it arrived: where, what, and its body."""

    connection: int
    """The number of its connection (0 for the first connection the server accepted)."""
    index: int
    """Its position on that connection (0 for the first request)."""
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


class ScriptedConnection:
    """The server side of one accepted connection, for the handler to misbehave on."""

    def __init__(self, number: int, writer: asyncio.StreamWriter) -> None:
        self.number = number
        self._writer = writer

    async def send(self, data: bytes, *, pause: float = 0.0) -> None:
        """Writes ``data`` (then waits ``pause`` seconds, e.g. to split it across reads)."""
        self._writer.write(data)
        await self._writer.drain()
        if pause:
            await asyncio.sleep(pause)

    async def send_pieces(self, pieces: Iterable[bytes], *, pause: float = 0.01) -> None:
        """Writes each piece separately, ``pause`` seconds apart."""
        for piece in pieces:
            await self.send(piece, pause=pause)

    def close(self) -> None:
        """Closes the connection cleanly (FIN)."""
        self._writer.close()

    def reset(self) -> None:
        """Aborts the connection (RST): the client sees a reset, not a clean close."""
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._writer.transport.abort()


Handler = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]


class ScriptedServer:
    """Accepts connections on 127.0.0.1 and hands each request to ``handler``.

    The handler decides what goes back. After it returns, the server reads the next request
    on the same connection, unless the handler closed or reset it.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        await shut_down(self._server, self._tasks)

    def count(self, method: str, target: str | None = None) -> int:
        """How many requests with ``method`` (and ``target``, if given) arrived."""
        return sum(
            1
            for request in self.requests
            if request.method == method and (target is None or request.target == target)
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = ScriptedConnection(self.connections, writer)
        self.connections += 1
        try:
            for index in range(1 << 30):
                request = await _read_request(reader, connection.number, index)
                if request is None:
                    return
                self.requests.append(request)
                await self.handler(request, connection)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # Only __aexit__ cancels these tasks. Ending normally keeps asyncio (3.11's
            # streams) from logging the cancellation as an unhandled exception.
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._tasks.discard(task)


async def _read_request(
    reader: asyncio.StreamReader, connection: int, index: int
) -> ReceivedRequest | None:
    """The next request on the connection, or None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    if len(head) > _MAX_REQUEST_HEAD:
        raise ConnectionError("request head too large")
    lines = head[:-4].decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    request = ReceivedRequest(connection, index, method, target, headers)
    length = request.header("Content-Length")
    if length:
        request.body = await reader.readexactly(int(length))
    elif (request.header("Transfer-Encoding") or "").lower() == "chunked":
        request.body = await _read_chunked(reader)
    return request


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked request body, decoded (its trailer section is read and dropped)."""
    pieces = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16):
        pieces.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ConnectionError("chunk data longer than its size")
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return b"".join(pieces)


def http_response(
    status: int = 200,
    body: bytes = b"",
    *,
    headers: Iterable[tuple[str, str]] = (),
    content_type: str | None = "application/json",
    reason: str = "",
    length: bool = True,
) -> bytes:
    """The bytes of an HTTP/1.1 response; ``length`` adds a correct ``Content-Length``."""
    lines = [f"HTTP/1.1 {status} {reason or 'Status'}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


CHUNKED_HEAD = http_response(200, headers=[("Transfer-Encoding", "chunked")], length=False)
"""The head of a 200 answer whose body follows in chunked transfer coding."""


def chunk(piece: bytes) -> bytes:
    """``piece`` as one chunk of chunked transfer coding (the body goes on after it)."""
    return b"%x\r\n%s\r\n" % (len(piece), piece)


def chunked(*pieces: bytes) -> bytes:
    """``pieces`` in chunked transfer coding, with the final empty chunk."""
    return b"".join(chunk(piece) for piece in pieces if piece) + b"0\r\n\r\n"


def json_line(value: Any) -> bytes:
    """``value`` as one line of a continuous feed: compact JSON, then a newline."""
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def json_lines(*values: Any) -> bytes:
    """``values`` as lines of a continuous feed, one after the other."""
    return b"".join(json_line(value) for value in values)


def query(request: ReceivedRequest) -> dict[str, str]:
    """The query parameters of ``request`` (for a repeated name, its last value)."""
    return dict(parse_qsl(urlsplit(request.target).query, keep_blank_values=True))


def answering(response: bytes) -> Handler:
    """A handler that sends ``response`` to every request."""

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(response)

    return handler


def error_answer(status: int) -> Handler:
    """A handler that answers every request with ``status`` and a CouchDB error body."""
    return answering(http_response(status, b'{"error":"x","reason":"y"}'))


async def hold(connection: ScriptedConnection, closed: asyncio.Event | None = None) -> None:
    """Keeps a chunked answer open with heartbeats (a newline) until the client goes away;
    then sets ``closed``, if given."""
    try:
        while True:
            await asyncio.sleep(0.05)
            await connection.send(chunk(b"\n"))
    except (ConnectionError, RuntimeError):
        if closed is not None:
            closed.set()


def continuous_feed(
    *values: Any,
    then: Literal["hold", "reset", "stall", "end"] = "hold",
    handed_out: asyncio.Event | None = None,
    closed: asyncio.Event | None = None,
) -> Handler:
    """A handler that answers with a continuous feed of ``values`` (one per line, as
    CouchDB sends them), waits for ``handed_out`` if given, then holds the answer open
    with heartbeats (setting ``closed`` once the client went away), resets the
    connection, stalls, or ends the body."""

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + (chunk(json_lines(*values)) if values else b""))
        if handed_out is not None:
            await asyncio.wait_for(handed_out.wait(), _HANDED_OUT_WAIT)
        if then == "reset":
            connection.reset()
        elif then == "stall":
            await asyncio.sleep(3600)
        elif then == "end":
            await connection.send(b"0\r\n\r\n")
        else:
            await hold(connection, closed)

    return handler


def in_turn(*handlers: Handler) -> Handler:
    """A handler that gives the n-th request to the n-th handler; the last one repeats."""
    arrived = 0

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        nonlocal arrived
        arrived += 1
        await handlers[min(arrived, len(handlers)) - 1](request, connection)

    return handler


def scripted(*handlers: Handler) -> ScriptedServer:
    """A server whose n-th request gets the n-th handler (the last one repeats)."""
    return ScriptedServer(in_turn(*handlers))


def routed(routes: Mapping[tuple[str, str], Sequence[bytes]]) -> Handler:
    """A handler that answers as CouchDB would, from ``{(method, target): responses}``.

    Each ``(method, target)`` gets its responses in turn, the last one repeating; any
    other request a 404. A POST not labelled ``Content-Type: application/json`` gets the
    415 of CouchDB's JSON endpoints (transcript 10.2).
    """
    answered: dict[tuple[str, str], int] = {}

    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        route = (request.method, request.target)
        if request.method == "POST" and request.header("Content-Type") != "application/json":
            reason = b'"Content-Type must be application/json"'
            response = http_response(415, b'{"error":"bad_content_type","reason":' + reason + b"}")
        elif route not in routes:
            response = http_response(404, b'{"error":"not_found","reason":"missing"}')
        else:
            responses = routes[route]
            turn = answered.get(route, 0)
            answered[route] = turn + 1
            response = responses[min(turn, len(responses) - 1)]
        await connection.send(response)

    return handler
