"""A small HTTP/1.1 client protocol: one connection, one request at a time, and a pool.

It exists for speed: for a plain-HTTP CouchDB it costs about a third of aiohttp's client
CPU per request (measured: 140 us against 430 us for a document GET on this project's
test machine). It parses ``Content-Length``, chunked and close-delimited bodies, hands
the body out as it arrives (with back-pressure), and keeps connections alive.

The parser is at least as strict as llhttp (aiohttp's parser) and RFC 9112: a status
line ``HTTP/1.x NNN``, header names that are tokens, values without control characters,
no obs-fold, CRLF line ends, ``Content-Length`` as plain digits (never together with
``Transfer-Encoding``, never two different ones), ``chunked`` as the only transfer coding,
hexadecimal chunk sizes followed by CRLF exactly where the size says. Anything else raises
:class:`~aiocouch.exception.InvalidResponseError` and closes the connection. Memory and
CPU stay bounded whatever arrives: a head or trailer section of at most 64 KiB, chunk-size
lines of at most 4 KiB, each byte scanned once while a line is incomplete.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections import deque
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict

from ._transport import COALESCE_BELOW, COALESCE_PAUSE
from .exception import (
    ConnectTimeoutError,
    IncompleteResponseError,
    InvalidResponseError,
    ReadTimeoutError,
)

__all__ = ["ConnectionPool", "HTTPConnection", "ResponseHead"]

_MAX_HEAD = 64 * 1024
"""The longest status line and header section (and trailer section) accepted."""
_MAX_FIELDS = 256
_MAX_CHUNK_LINE = 4 * 1024
_MAX_BUFFERED = 4 * 1024 * 1024
_WRITE_PIECE = 256 * 1024
"""Bodies from this size on are written in pieces of this size, each after a drain."""
# Node's http server closes keep-alive connections idle for 5 s; reconnecting after a
# pause costs little, writing into a connection the server is closing costs an error.
_KEEPALIVE_SECONDS = 4.0

_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)
_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER = range(4)

# RFC 9110: token characters; field values are visible characters, obs-text, SP and HTAB.
_VALUE_CHARS = rb"[^\x00-\x08\x0a-\x1f\x7f]"
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: (" + _VALUE_CHARS + rb"*))?\r\n")
_FIELD_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:" + _VALUE_CHARS + rb"*\r\n)*")
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;" + _VALUE_CHARS + rb"*)?\r\n")
_DIGITS = re.compile(r"[0-9]{1,18}")
_BARE_LF = re.compile(rb"(?<!\r)\n")


class ResponseHead:
    """The status line and headers of a response."""

    __slots__ = ("headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: CIMultiDict[str]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers


class HTTPConnection(asyncio.Protocol):
    """One keep-alive connection; :meth:`send` a request, then read its response.

    The time limits of the exchange run here, on one timer: ``sock_read`` bounds each
    silence of the server (not while reading is paused for back-pressure), ``deadline``
    the whole exchange. Either raises :class:`~aiocouch.exception.ReadTimeoutError` in
    the reader and closes the connection.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._scanned = 0
        self._head: ResponseHead | None = None
        self._expect_body = True
        self._mode = _NO_BODY
        self._remaining = 0
        self._chunk_state = _CHUNK_SIZE
        self._body: deque[bytes] = deque()
        self._body_size = 0
        self._paused = False
        self._writing_paused = False
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sock_read: float | None = None
        self._deadline: float | None = None
        self._last_io = 0.0
        self.closed = False
        self.reusable = True
        self.received = False
        self.idle_since = 0.0

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.received = True
        self._last_io = self._loop.time()
        if (
            self._mode == _LENGTH
            and self._head is not None
            and not self._buffer
            and 0 < len(data) <= self._remaining
        ):
            # The common case of a body arriving: hand it out without copying it.
            self._remaining -= len(data)
            self._deliver(data)
            if self._remaining == 0:
                self._finish()
            self._wake()
            return
        self._buffer += data
        try:
            self._parse()
        except InvalidResponseError as exc:
            self._fail(exc)
            self.close()
        self._wake()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        self._stop_timer()
        # Only a clean close ends a close-delimited body: not a reset, not after a timeout.
        clean = exc is None and self._error is None
        if clean and self._head is not None and self._mode == _UNTIL_CLOSE and not self._done:
            self._done = True
        elif not self._done and self._error is None:
            if self._head is None:
                self._error = aiohttp.ServerDisconnectedError()
            else:
                self._error = IncompleteResponseError(
                    "The connection closed before the whole answer arrived",
                    status=self._head.status,
                    headers=self._head.headers,
                )
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        # The server took our bytes: that is no silence.
        self._last_io = self._loop.time()
        self._wake()

    # --- requests ---

    def send(
        self,
        request: bytes,
        *,
        expect_body: bool,
        sock_read: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """Writes one request; the previous response must have been read completely.

        ``deadline`` is a time of the event loop's clock (``loop.time()``).
        """
        assert self._transport is not None
        self._head = None
        self._expect_body = expect_body
        self._done = False
        self._error = None
        self.received = False
        self._start_timer(sock_read, deadline)
        self._transport.write(request)

    async def send_in_pieces(
        self,
        head: bytes,
        body: bytes,
        *,
        expect_body: bool,
        sock_read: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """Writes a request with a large body without copying it, as fast as it drains.

        Stops early, without an error, when the server closes the connection: its
        answer (if one came) then tells why.
        """
        self.send(head, expect_body=expect_body, sock_read=sock_read, deadline=deadline)
        assert self._transport is not None
        view = memoryview(body)
        for start in range(0, len(view), _WRITE_PIECE):
            while self._writing_paused and not self.closed:
                self._drain_waiter = self._loop.create_future()
                try:
                    await self._drain_waiter
                finally:
                    self._drain_waiter = None
            if self._error is not None:
                raise self._error
            if self.closed:
                return
            self._transport.write(view[start : start + _WRITE_PIECE])

    async def read_head(self) -> ResponseHead:
        """Waits for the status line and headers."""
        while self._head is None:
            await self._wait()
        return self._head

    async def read_chunk(self, *, coalesce: bool = False) -> bytes:
        """The next piece of the body, ``b""`` at its end.

        With ``coalesce``, a small piece is followed by a millisecond's pause so that more
        arrives: fewer, larger pieces cost less CPU downstream.
        """
        while not self._body:
            if self._done:
                return b""
            await self._wait()
        if coalesce and self._body_size < COALESCE_BELOW and not self._done:
            await asyncio.sleep(COALESCE_PAUSE)
        chunk = self._body.popleft() if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self._body_size = 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
            if not self._done and self._timer is None and not self.closed:
                self._last_io = self._loop.time()
                self._schedule()
        return chunk

    async def read_body(self) -> bytes:
        """The whole body."""
        # Piece by piece: each read resumes a connection paused above _MAX_BUFFERED.
        pieces: list[bytes] = []
        while piece := await self.read_chunk():
            pieces.append(piece)
        return b"".join(pieces)

    @property
    def head(self) -> ResponseHead | None:
        """The head of the response being read, once it arrived."""
        return self._head

    @property
    def complete(self) -> bool:
        """True when the response was read to its end."""
        return self._done and not self._body

    def fail(self, error: BaseException) -> None:
        """Ends the exchange with ``error`` (e.g. a timeout) and closes the connection."""
        self._fail(error)
        self.close()
        self._wake()

    def close(self) -> None:
        """Closes the connection."""
        self.reusable = False
        self.closed = True
        self._stop_timer()
        if self._transport is not None:
            self._transport.close()

    # --- time limits ---

    def _start_timer(self, sock_read: float | None, deadline: float | None) -> None:
        self._stop_timer()
        self._sock_read = sock_read or None
        self._deadline = deadline
        if self._sock_read is not None or deadline is not None:
            self._last_io = self._loop.time()
            self._schedule()

    def _schedule(self) -> None:
        at = self._deadline
        if self._sock_read is not None and not self._paused:
            silent_until = self._last_io + self._sock_read
            if at is None or silent_until < at:
                at = silent_until
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._done or self.closed:
            return
        now = self._loop.time()
        if self._deadline is not None and now >= self._deadline:
            self.fail(ReadTimeoutError("The exchange took longer than its total time limit"))
        elif (
            self._sock_read is not None
            and not self._paused
            and now >= self._last_io + self._sock_read
        ):
            self.fail(
                ReadTimeoutError(f"The server sent nothing for {self._sock_read} s (sock_read)")
            )
        else:
            self._schedule()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- internals ---

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        if self._done and self._head is not None:
            return
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        for waiter in (self._waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._done:
            self._error = error

    def _finish(self) -> None:
        self._done = True
        self._stop_timer()

    def _parse(self) -> None:
        while self._buffer:
            if self._head is None:
                if not self._parse_head():
                    return
            elif self._done:
                # Bytes after a complete response: the connection is out of step.
                self.reusable = False
                self._buffer.clear()
                return
            elif self._mode == _CHUNKED:
                if not self._parse_chunked():
                    return
            elif self._mode == _LENGTH:
                self._take_length()
            else:
                self._deliver(bytes(self._buffer))
                self._buffer.clear()

    def _section_end(self, what: str) -> int:
        """Where the head or trailer section in the buffer ends (its CRLF CRLF), or -1."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n", self._scanned)
        if end >= 0:
            if end + 4 > _MAX_HEAD:
                raise InvalidResponseError(f"The {what} is longer than {_MAX_HEAD} bytes")
            return end
        if len(buffer) > _MAX_HEAD:
            raise InvalidResponseError(f"The {what} is longer than {_MAX_HEAD} bytes")
        # A head whose lines end in a bare LF would never end: refuse it now.
        if _BARE_LF.search(buffer, self._scanned):
            raise InvalidResponseError(f"A line of the {what} ends without CR")
        self._scanned = max(len(buffer) - 3, 0)
        return -1

    def _consume(self, count: int) -> None:
        del self._buffer[:count]
        self._scanned = 0

    def _parse_head(self) -> bool:
        buffer = self._buffer
        end = self._section_end("response head")
        if end < 0:
            return False
        status_line = _STATUS_LINE.match(buffer)
        if status_line is None:
            first = bytes(buffer[: min(buffer.find(b"\r\n"), 100)])
            raise InvalidResponseError(f"Invalid status line {first!r}")
        fields_start = status_line.end()
        if _FIELD_LINES.fullmatch(buffer, fields_start, end + 2) is None:
            raise InvalidResponseError("Invalid header line in the response head")
        # (the groups before the buffer they point into changes)
        http11, status, reason = (
            status_line.group(1) == b"1",
            int(status_line.group(2)),
            (status_line.group(3) or b"").decode("latin-1"),
        )
        lines = buffer[fields_start:end].decode("latin-1").split("\r\n")
        self._consume(end + 4)
        if status < 200:
            return True  # informational: the answer follows
        if len(lines) > _MAX_FIELDS:
            raise InvalidResponseError(f"More than {_MAX_FIELDS} header fields")
        # (validated above: each line is a token, a colon and a value)
        headers: CIMultiDict[str] = CIMultiDict(
            [(name, value.strip(" \t")) for name, _, value in [ln.partition(":") for ln in lines]]
            if end > fields_start
            else ()
        )
        self._frame(http11, status, headers)
        self._head = ResponseHead(status, reason, headers)
        return True

    def _frame(self, http11: bool, status: int, headers: CIMultiDict[str]) -> None:
        """Reads how the body is delimited and whether the connection stays open."""
        keep_alive = http11
        connection = headers.getall("Connection", None)
        if connection is not None:
            tokens = {token.strip().lower() for token in ",".join(connection).split(",")}
            if "close" in tokens:
                keep_alive = False
            elif "keep-alive" in tokens:
                keep_alive = True
        if not keep_alive:
            self.reusable = False
        codings = headers.getall("Transfer-Encoding", None)
        lengths = headers.getall("Content-Length", None)
        if codings is not None:
            if lengths is not None:
                raise InvalidResponseError("Content-Length together with Transfer-Encoding")
            if len(codings) != 1 or codings[0].lower() != "chunked":
                raise InvalidResponseError(
                    f"Unsupported Transfer-Encoding {', '.join(codings)!r} (only chunked)"
                )
        length = -1
        if lengths is not None:
            if any(value != lengths[0] for value in lengths) or not _DIGITS.fullmatch(lengths[0]):
                raise InvalidResponseError(f"Invalid Content-Length {', '.join(lengths)!r}")
            length = int(lengths[0])
        if not self._expect_body or status in (204, 304):
            self._mode = _NO_BODY
        elif codings is not None:
            self._mode, self._chunk_state = _CHUNKED, _CHUNK_SIZE
        elif length >= 0:
            self._mode, self._remaining = _LENGTH, length
        else:
            self._mode = _UNTIL_CLOSE
            self.reusable = False
        if self._mode == _NO_BODY or (self._mode == _LENGTH and length == 0):
            self._finish()

    def _take_length(self) -> None:
        buffer = self._buffer
        if len(buffer) <= self._remaining:
            piece = bytes(buffer)
            buffer.clear()
        else:
            piece = bytes(buffer[: self._remaining])
            del buffer[: self._remaining]
        self._remaining -= len(piece)
        self._deliver(piece)
        if self._remaining == 0:
            self._finish()

    def _parse_chunked(self) -> bool:
        """Parses what the buffer holds of a chunked body; False when it needs more."""
        if self._chunk_state != _TRAILER:
            # CouchDB writes a chunk per row: the chunks of one read are parsed in one
            # loop, their data handed out as one piece, the buffer consumed once.
            pieces: list[Any] = []
            with memoryview(self._buffer) as view:
                try:
                    position, waiting = self._parse_chunks(view, pieces)
                    data = b"".join(pieces)
                finally:
                    pieces.clear()  # (releases the views into the buffer)
            self._consume(position)
            self._deliver(data)
            if waiting:
                if self._chunk_state == _CHUNK_SIZE:
                    # the incomplete size line: scanned once, not again with each arrival
                    self._scanned = max(len(self._buffer) - 1, 0)
                return False
        buffer = self._buffer
        if buffer.startswith(b"\r\n"):
            self._consume(2)
            self._finish()
            return True
        end = self._section_end("trailer section")
        if end < 0:
            return False
        if _FIELD_LINES.fullmatch(buffer, 0, end + 2) is None:
            raise InvalidResponseError("Invalid trailer line")
        self._consume(end + 4)
        self._finish()
        return True

    def _parse_chunks(self, view: memoryview, pieces: list[Any]) -> tuple[int, bool]:
        """Parses chunks from ``view`` up to the trailer; their data goes to ``pieces``.

        Returns how far it parsed, and whether it stopped for want of bytes.
        """
        buffer = self._buffer
        size = len(view)
        position = 0
        state = self._chunk_state
        try:
            while position < size:
                if state == _CHUNK_DATA:
                    take = min(self._remaining, size - position)
                    pieces.append(view[position : position + take])
                    position += take
                    self._remaining -= take
                    if not self._remaining:
                        state = _CHUNK_END
                elif state == _CHUNK_END:
                    if buffer[position] != 13 or (
                        size - position > 1 and buffer[position + 1] != 10
                    ):
                        raise InvalidResponseError("A chunk is longer than its size line says")
                    if size - position < 2:
                        return position, True
                    position += 2
                    state = _CHUNK_SIZE
                elif state == _CHUNK_SIZE:
                    end = buffer.find(b"\r\n", max(position, self._scanned))
                    if end < 0 or end + 2 - position > _MAX_CHUNK_LINE:
                        if size - position > _MAX_CHUNK_LINE:
                            raise InvalidResponseError(
                                f"A chunk size line is longer than {_MAX_CHUNK_LINE} bytes"
                            )
                        return position, True
                    line = _CHUNK_SIZE_LINE.fullmatch(buffer, position, end + 2)
                    if line is None:
                        text = bytes(view[position:end])
                        raise InvalidResponseError(f"Invalid chunk size line {text!r}")
                    self._remaining = int(line.group(1), 16)
                    self._scanned = 0
                    position = end + 2
                    state = _CHUNK_DATA if self._remaining else _TRAILER
                else:
                    return position, False
            return position, True
        finally:
            self._chunk_state = state

    def _deliver(self, piece: bytes) -> None:
        if not piece:
            return
        self._body.append(piece)
        self._body_size += len(piece)
        if self._body_size > _MAX_BUFFERED and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()


class ConnectionPool:
    """Keep-alive connections to one host, at most ``limit`` in use at once."""

    def __init__(self, host: str, port: int, *, limit: int) -> None:
        self._host = host
        self._port = port
        self._key = ConnectionKey(host, port, False, True, None, None, None)
        self._limit = limit
        self._idle: list[HTTPConnection] = []
        self._open: set[HTTPConnection] = set()
        self._slots: asyncio.Semaphore | None = None
        self.closed = False

    async def acquire(
        self, *, deadline: float | None, sock_connect: float | None
    ) -> tuple[HTTPConnection, bool]:
        """A connection and whether it was used before (an idle one, or a new one).

        Getting it (waiting for a free slot, connecting) ends by ``deadline`` (loop time),
        the TCP connect within ``sock_connect`` seconds; else ConnectTimeoutError.
        Raises ClientConnectorError when the server cannot be reached.
        """
        if self.closed:
            raise RuntimeError("Session is closed")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        loop = asyncio.get_running_loop()
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), _seconds_until(loop, deadline))
            except asyncio.TimeoutError:
                raise ConnectTimeoutError(
                    f"No free connection to {self._host}:{self._port} within the connect limit"
                ) from None
        else:
            await self._slots.acquire()
        try:
            if self.closed:
                raise RuntimeError("Session is closed")
            now = loop.time()
            while self._idle:
                connection = self._idle.pop()
                # reusable: stray bytes may have arrived while it was idle
                fresh = now - connection.idle_since < _KEEPALIVE_SECONDS
                if connection.reusable and not connection.closed and fresh:
                    return connection, True
                self._discard(connection)
            timeout = _seconds_until(loop, deadline)
            if sock_connect and (timeout is None or sock_connect < timeout):
                timeout = sock_connect
            return await self._connect(loop, timeout), False
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: HTTPConnection) -> None:
        """Returns ``connection``: kept if its response was read to the end, else closed."""
        assert self._slots is not None
        self._slots.release()
        if connection.reusable and connection.complete and not connection.closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            self._discard(connection)

    def _discard(self, connection: HTTPConnection) -> None:
        connection.close()
        self._open.discard(connection)

    def close(self) -> None:
        """Closes every connection; a response still being read then fails."""
        self.closed = True
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, timeout: float | None
    ) -> HTTPConnection:
        if timeout is not None and timeout <= 0:
            raise self._connect_timeout()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(HTTPConnection, self._host, self._port), timeout
            )
        # (asyncio.TimeoutError is an OSError from Python 3.11 on: this clause first.)
        except asyncio.TimeoutError:
            raise self._connect_timeout() from None
        except OSError as exc:
            raise aiohttp.ClientConnectorError(self._key, exc) from exc
        self._open.add(connection)
        return connection

    def _connect_timeout(self) -> ConnectTimeoutError:
        return ConnectTimeoutError(f"Connection timeout to host http://{self._host}:{self._port}")


def _seconds_until(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - loop.time(), 0.0)


def header_block(headers: Any) -> str:
    """``Name: value\\r\\n`` lines (names and values checked by the transport)."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items())
