"""A small HTTP/1.1 client protocol: one connection, one request at a time, and a pool.

It exists for speed: for a plain-HTTP CouchDB it costs about a third of aiohttp's client
CPU per request (measured: 140 us against 430 us for a document GET on this project's
test machine). It hands the body out as it arrives (with back-pressure) and keeps
connections alive.

Responses are parsed by llhttp (``httptools``, the parser of uvicorn and, in its own
build, of aiohttp) in its strict mode, which refuses what RFC 9112 lets a client refuse:
a malformed status line, header names that are no tokens, control characters, obs-fold,
bare CR or LF, a ``Content-Length`` that is not plain digits, two of them, or one together
with ``Transfer-Encoding``, chunk data longer than its size. On top of it, this module
refuses a version other than HTTP/1.0 and 1.1 and a transfer coding other than one
``chunked``, and bounds what llhttp does not: a head (or trailer section, or run of chunk
size lines) of at most 64 KiB and 256 fields. Anything else raises
:class:`~aiocouch.exception.InvalidResponseError` and closes the connection. Against the
hand-written parser it replaced, llhttp parses a streamed answer in a seventh to a tenth
of the client CPU and a whole one in about as much (``bench/README.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from ._connect import Endpoint
from ._transport import COALESCE_BELOW, COALESCE_PAUSE
from .exception import (
    ConnectTimeoutError,
    IncompleteResponseError,
    InvalidResponseError,
    ReadTimeoutError,
)

__all__ = ["ConnectionPool", "HTTPConnection", "ResponseHead"]

_MAX_UNPARSED = 64 * 1024
"""The most bytes accepted without the parser getting anywhere: a head, a trailer section,
chunk size lines (llhttp itself would buffer a header, or skip a chunk extension, for ever)."""
_MAX_FIELDS = 256
_MAX_BUFFERED = 4 * 1024 * 1024
_FIRST_READ_BUFFER = 16 * 1024
"""The read buffer a connection starts with: a document's or a write's answer fits."""
_READ_BUFFER = 128 * 1024
"""The one it takes once a read filled the first: large answers (listings, bulk) arrive in
fewer reads, and a pool of connections that never see one holds an eighth as much."""
_WRITE_PIECE = 256 * 1024
"""Bodies are written in pieces of this size, each after the socket drained."""
# Node's http server closes keep-alive connections idle for 5 s; reconnecting after a
# pause costs little, writing into a connection the server is closing costs an error.
_KEEPALIVE_SECONDS = 4.0
_HTTP_VERSIONS = frozenset({"1.0", "1.1"})

_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class _EndOfHead(Exception):
    """Stops llhttp after the head of an answer that has no body (to a HEAD request)."""


class ResponseHead:
    """The status line and header fields of a response.

    The fields are kept as the bytes that arrived and decoded only when :attr:`headers`
    is first read: most answers are framed by four of them, found in the bytes.
    """

    __slots__ = ("_headers", "_lower", "_raw", "encoded", "status")

    def __init__(self, status: int, raw: bytes, lower: bytes) -> None:
        self.status = status
        self._raw = raw
        """The status line and the field lines, each ending in CRLF (llhttp checked them)."""
        self._lower = lower
        self._headers: CIMultiDict[str] | None = None
        self.encoded = b"\r\ncontent-encoding:" in lower
        """True if a ``Content-Encoding`` field is there (found without decoding the fields)."""

    @property
    def headers(self) -> CIMultiDict[str]:
        """The header fields (names in any case; a repeated field keeps each value)."""
        headers = self._headers
        if headers is None:
            lines = self._raw.decode("latin-1").split("\r\n")
            fields = []
            for line in lines[1:-1]:
                name, _, value = line.partition(":")
                fields.append((name, value.strip(" \t")))
            headers = self._headers = CIMultiDict(fields)
        return headers

    def header_proxy(self) -> CIMultiDictProxy[str]:
        """The header fields, read-only (see :class:`~._transport.RawResponse`)."""
        return CIMultiDictProxy(self.headers)

    @property
    def reason(self) -> str:
        """The reason phrase of the status line ("" if there is none)."""
        status_line = self._raw[: self._raw.find(b"\r\n")].decode("latin-1")
        parts = status_line.split(" ", 2)
        return parts[2] if len(parts) == 3 else ""


class HTTPConnection(asyncio.BufferedProtocol):
    """One keep-alive connection; :meth:`send` a request, then read its response.

    The socket reads into one buffer of the connection's own (no new bytes object, and
    no allocation of the system's, per read); llhttp copies out the body's pieces.

    The time limits of the exchange run here, on one timer: ``sock_read`` bounds each
    silence of the server (not while reading is paused for back-pressure), ``deadline``
    the whole exchange. Either raises :class:`~aiocouch.exception.ReadTimeoutError` in
    the reader and closes the connection.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        """The event loop the connection belongs to."""
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._parser_reusable = False
        # The head is taken from the bytes that arrived (see _take_head): the bytes of
        # earlier reads that hold its start, where it starts in those and the current
        # read, and the current read (a bytes-like object with find(), and its length).
        self._head_buffer = b""
        self._head_from = 0
        self._feeding: bytes | bytearray = b""
        self._feeding_size = 0
        self._unparsed = 0
        self._progress = False
        self._pieces: list[bytes] = []
        self._head: ResponseHead | None = None
        self._expect_body = True
        self._mode = _NO_BODY
        self._body: deque[bytes] = deque()
        self._body_size = 0
        self._paused = False
        self._writing_paused = False
        # While a streamed request body's source produces its next piece, the wait is
        # the source's, not the server's: no sock_read then.
        self._awaiting_source = False
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._sock_read: float | None = None
        self._deadline: float | None = None
        self._last_io = 0.0
        self.closed = False
        self.reusable = True
        self.received = False
        self.idle_since = 0.0
        self._read_array = bytearray()
        self._read_buffer: memoryview | None = None

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._read_buffer is None:
            self._read_array = bytearray(_FIRST_READ_BUFFER)
            self._read_buffer = memoryview(self._read_array)
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self._read_buffer is not None
        self._received(self._read_buffer[:nbytes], self._read_array, nbytes)
        if nbytes == _FIRST_READ_BUFFER and len(self._read_array) == _FIRST_READ_BUFFER:
            # (the first buffer was filled: a large answer; what it held is parsed by now)
            self._read_array = bytearray(_READ_BUFFER)
            self._read_buffer = memoryview(self._read_array)

    def data_received(self, data: bytes | memoryview) -> None:
        self._received(data, bytes(data) if type(data) is memoryview else data, len(data))

    def _received(self, data: bytes | memoryview, searchable: bytes | bytearray, size: int) -> None:
        """Parses ``data`` (``searchable``: the same bytes, or a buffer starting with them)."""
        self.received = True
        self._feeding = searchable
        self._feeding_size = size
        self._last_io = self.loop.time()
        parser = self._parser
        if parser is None or self._done:
            # Bytes after a complete response, or with no request: out of step.
            self.reusable = False
            return
        self._progress = False
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _EndOfHead):
                if self._head_from != len(self._head_buffer) + size:
                    self.reusable = False  # (something after the head: out of step)
            elif self._done:
                self.reusable = False  # a second answer began: out of step
            else:
                self._invalid(cause if isinstance(cause, InvalidResponseError) else exc)
        except httptools.HttpParserError as exc:
            if self._done:
                self.reusable = False
            else:
                self._invalid(exc)
        except httptools.HttpParserUpgrade:
            self._invalid(InvalidResponseError("The server switched to another protocol"))
        else:
            if self._progress:
                self._unparsed = 0
            else:
                self._unparsed += len(data)
                if self._unparsed > _MAX_UNPARSED:
                    self._invalid(
                        InvalidResponseError(
                            f"{_MAX_UNPARSED} bytes of the answer without a complete line"
                        )
                    )
        if self._pieces:
            self._deliver(self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces))
            self._pieces.clear()
        elif self._head is None and self._error is None:
            # The head goes on in the next read: keep what arrived of it (bounded by
            # _MAX_UNPARSED), from where it starts.
            self._head_buffer = (self._head_buffer + bytes(data))[self._head_from :]
            self._head_from = 0
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
        self._last_io = self.loop.time()
        self._wake()

    # --- llhttp's callbacks ---

    def on_message_begin(self) -> None:
        if self._done:
            raise InvalidResponseError("A second answer began")  # stops llhttp

    # (no on_status, no on_header: llhttp then makes no object and no call per field; the
    # head is taken from the bytes it checked, and decoded only if its fields are read)

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._progress = True
        raw = self._take_head()
        status = self._parser.get_status_code()
        if status < 200:
            return  # informational: the answer follows
        version = self._parser.get_http_version()
        if version not in _HTTP_VERSIONS:
            raise InvalidResponseError(f"Unsupported HTTP version {version!r}")
        if raw.count(b"\r\n") > _MAX_FIELDS + 1:
            raise InvalidResponseError(f"More than {_MAX_FIELDS} header fields")
        head = ResponseHead(status, raw, raw.lower())
        self._frame(version == "1.1", head)
        self._head = head
        if self._mode == _NO_BODY:
            self._finish()
            if not self._expect_body:
                raise _EndOfHead  # llhttp would wait for the body that Content-Length names

    def on_body(self, body: bytes) -> None:
        self._progress = True
        self._pieces.append(body)

    def on_chunk_header(self) -> None:
        self._progress = True

    def on_message_complete(self) -> None:
        self._progress = True
        if self._head is not None:
            self._parser_reusable = True
            self._done = True  # (_finish(), without the call)

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
        if not self._parser_reusable:
            # (llhttp starts the next message by itself after a complete one)
            self._parser = httptools.HttpResponseParser(self)
        self._parser_reusable = False
        self._head_buffer = b""
        self._head_from = 0
        self._unparsed = 0
        self._head = None
        self._expect_body = expect_body
        self._done = False
        self._error = None
        self.received = False
        # (the timer's start, without a call of its own)
        self._sock_read = sock_read or None
        self._deadline = deadline
        if self._sock_read is not None or deadline is not None:
            self._last_io = self.loop.time()
            self._schedule()
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
        await self._write_drained(memoryview(body))

    async def send_streamed(
        self,
        head: bytes,
        pieces: AsyncGenerator[bytes, None],
        *,
        chunked: bool,
        expect_body: bool,
        sock_read: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """Writes a request whose body comes piece by piece, each as the connection drains.

        With ``chunked``, each piece is framed as a chunk and the last chunk follows the
        body. Stops early, without an error, when the server closes the connection or
        answers before the body ended (the request is then incomplete: the connection is
        not used again). What ``pieces`` raises is raised as it is.
        """
        self.send(head, expect_body=expect_body, sock_read=sock_read, deadline=deadline)
        assert self._transport is not None
        try:
            while True:
                self._awaiting_source = True
                try:
                    piece = await pieces.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    self._awaiting_source = False
                    self._last_io = self.loop.time()
                    if not (self.closed or self._done):
                        self._stop_timer()
                        self._schedule()
                if chunked:
                    self._transport.write(b"%x\r\n" % len(piece))
                if not await self._write_drained(memoryview(piece)) or self._head is not None:
                    self.reusable = False
                    return
                if chunked:
                    self._transport.write(b"\r\n")
            if chunked and not self.closed:
                self._transport.write(b"0\r\n\r\n")
        except BaseException:
            # A reset, not a close: a server could take the FIN after a body cut short for
            # the body's end (measured: pouchdb-server stores what it got).
            self.abort()
            raise
        finally:
            await pieces.aclose()

    async def _write_drained(self, body: memoryview) -> bool:
        """Writes ``body`` in pieces, each after the socket drained; False if it closed."""
        assert self._transport is not None
        for start in range(0, len(body), _WRITE_PIECE):
            while self._writing_paused and not self.closed:
                self._drain_waiter = self.loop.create_future()
                try:
                    await self._drain_waiter
                finally:
                    self._drain_waiter = None
            if self._error is not None:
                raise self._error
            if self.closed:
                return False
            self._transport.write(body[start : start + _WRITE_PIECE])
            # Our own progress is no silence of the server (a slow source is not one).
            self._last_io = self.loop.time()
        return True

    async def read_head(self) -> ResponseHead:
        """Waits for the status line and headers."""
        if self._head is not None:
            return self._head
        head = self.head_or_arrival()
        while not isinstance(head, ResponseHead):
            await head
            head = self.head_or_arrival()
        return head

    def head_or_arrival(self) -> ResponseHead | asyncio.Future[None]:
        """The head if it arrived, else a future that is done when more arrived (or the
        exchange failed): a caller awaits that and asks again, with no coroutine of its
        own. Raises what ended the exchange."""
        if self._error is not None:
            raise self._error
        if self._head is not None:
            return self._head
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self.loop.create_future()
        return waiter

    async def read_chunk(self, *, coalesce: bool = False, limit: int | None = None) -> bytes:
        """The next piece of the body, ``b""`` at its end.

        With ``coalesce``, a small piece is followed by a millisecond's pause so that more
        arrives: fewer, larger pieces cost less CPU downstream. With ``limit``, what
        arrived is handed out in pieces of about that many bytes at most (a piece that
        arrived larger stays whole), so a consumer slower than the network holds little
        more than the buffer.
        """
        while not self._body:
            if self._done:
                return b""
            await self._wait()
        if coalesce and self._body_size < COALESCE_BELOW and not self._done:
            await asyncio.sleep(COALESCE_PAUSE)
        body = self._body
        if len(body) == 1:
            chunk = body.popleft()
        elif limit is None or self._body_size <= limit:
            chunk = b"".join(body)
            body.clear()
        else:
            taken = [body.popleft()]
            size = len(taken[0])
            while body and size + len(body[0]) <= limit:
                taken.append(body.popleft())
                size += len(taken[-1])
            chunk = taken[0] if len(taken) == 1 else b"".join(taken)
        self._body_size -= len(chunk)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
            if not self._done and not self.closed:
                self._last_io = self.loop.time()
                self._schedule()
        return chunk

    def take_body(self) -> bytes | None:
        """The whole body if it arrived completely in one piece (no wait), else None."""
        if self._done and not self._paused:
            body = self._body
            if not body:
                return b""
            if len(body) == 1:
                self._body_size = 0
                return body.popleft()
        return None

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

    def abort(self) -> None:
        """Resets the connection at once, dropping what is not sent yet."""
        self.close()
        if self._transport is not None:
            self._transport.abort()

    # --- time limits ---

    def _schedule(self) -> None:
        at = self._deadline
        if self._sock_read is not None and not (self._paused or self._awaiting_source):
            silent_until = self._last_io + self._sock_read
            if at is None or silent_until < at:
                at = silent_until
        if at is None:
            return
        if self._timer is not None:
            if self._timer_at <= at:
                return  # it fires first, and looks again
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._done or self.closed:
            return
        now = self.loop.time()
        if self._deadline is not None and now >= self._deadline:
            self.fail(ReadTimeoutError("The exchange took longer than its total time limit"))
        elif (
            self._sock_read is not None
            and not (self._paused or self._awaiting_source)
            and now >= self._last_io + self._sock_read
        ):
            silent = "took none of the request" if self._head is None else "sent nothing"
            self.fail(ReadTimeoutError(f"The server {silent} for {self._sock_read} s (sock_read)"))
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
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._done:
            self._error = error

    def _finish(self) -> None:
        # The timer stays: it finds nothing to do, or it serves the next exchange on this
        # connection (one timer per request, scheduled and cancelled, costs more CPU).
        self._done = True

    def _invalid(self, error: BaseException) -> None:
        if not isinstance(error, InvalidResponseError):
            error = InvalidResponseError(f"Invalid HTTP answer: {error}")
        self._fail(error)
        self.close()

    def _take_head(self) -> bytes:
        """The head llhttp has just completed, from the bytes that arrived: its status
        line and field lines, each ending in CRLF (llhttp checked them: strict, every
        line ends in CRLF, so the first empty line ends the head)."""
        data: bytes | bytearray = self._feeding
        size = self._feeding_size
        if self._head_buffer:
            data = self._head_buffer + bytes(memoryview(data)[:size])
            size = len(data)
        start = self._head_from
        while data[start] in b"\r\n":
            start += 1  # (llhttp skips empty lines before a status line)
        end = data.find(b"\r\n\r\n", start, size) + 2
        self._head_from = end + 2
        return bytes(memoryview(data)[start:end])

    def _frame(self, http11: bool, head: ResponseHead) -> None:
        """Reads how the body is delimited and whether the connection stays open.

        The common answer is read from the head's bytes: no ``Transfer-Encoding``, no
        ``Connection`` field or one saying ``keep-alive``, a ``Content-Length`` or none.
        Any other is read from the decoded fields (:meth:`_frame_by_fields`).
        """
        lower = head._lower
        connection = lower.find(b"\r\nconnection:")
        if b"\r\ntransfer-encoding:" in lower or (
            connection >= 0
            and (
                not lower.startswith(b"\r\nconnection: keep-alive\r\n", connection)
                or lower.find(b"\r\nconnection:", connection + 2) >= 0
            )
        ):
            self._frame_by_fields(http11, head.status, head.headers)
            return
        if not (http11 or connection >= 0):
            self.reusable = False
        if not self._expect_body or head.status in (204, 304):
            self._mode = _NO_BODY
        elif b"\r\ncontent-length:" in lower:
            self._mode = _LENGTH
        else:
            self._mode = _UNTIL_CLOSE
            self.reusable = False

    def _frame_by_fields(self, http11: bool, status: int, headers: CIMultiDict[str]) -> None:
        """Reads how the body is delimited and whether the connection stays open.

        llhttp checked ``Content-Length`` (and refused it together with
        ``Transfer-Encoding``); a transfer coding other than one ``chunked`` would be
        handed out undecoded, and is refused here.
        """
        keep_alive = http11
        connection = headers.getall("Connection", None)
        if connection == ["keep-alive"]:
            keep_alive = True  # (what Node and CouchDB send: no token parsing)
        elif connection is not None:
            tokens = {token.strip().lower() for token in ",".join(connection).split(",")}
            if "close" in tokens:
                keep_alive = False
            elif "keep-alive" in tokens:
                keep_alive = True
        if not keep_alive:
            self.reusable = False
        codings = headers.getall("Transfer-Encoding", None)
        if codings is not None and (len(codings) != 1 or codings[0].lower() != "chunked"):
            raise InvalidResponseError(
                f"Unsupported Transfer-Encoding {', '.join(codings)!r} (only chunked)"
            )
        if not self._expect_body or status in (204, 304):
            self._mode = _NO_BODY
        elif codings is not None:
            self._mode = _CHUNKED
        elif "Content-Length" in headers:
            self._mode = _LENGTH
        else:
            self._mode = _UNTIL_CLOSE
            self.reusable = False

    def _deliver(self, piece: bytes) -> None:
        self._body.append(piece)
        self._body_size += len(piece)
        if self._body_size > _MAX_BUFFERED and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()


class ConnectionPool:
    """Keep-alive connections to one endpoint, at most ``limit`` in use at once.

    A request takes a connection with :meth:`take_idle` (no wait, no coroutine: the
    common case of a kept-alive connection and a free slot) or else :meth:`acquire`.
    A slot freed while requests wait goes to the one that waited longest.
    """

    def __init__(self, endpoint: Endpoint, *, limit: int) -> None:
        self._endpoint = endpoint
        self._limit = limit
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: list[HTTPConnection] = []
        self._open: set[HTTPConnection] = set()
        self.closed = False

    def take_idle(self) -> HTTPConnection | None:
        """A kept-alive idle connection if one is fresh and a slot is free, else None."""
        if self._in_use >= self._limit or self._waiters or self.closed:
            return None
        connection = self._fresh_idle()
        if connection is not None:
            self._in_use += 1
        return connection

    def _fresh_idle(self) -> HTTPConnection | None:
        """The most recently kept idle connection still fit to reuse (those that are not
        are closed on the way), or None."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            # reusable: stray bytes may have arrived while it was idle
            fresh = now - connection.idle_since < _KEEPALIVE_SECONDS
            if connection.reusable and not connection.closed and fresh:
                return connection
            self._discard(connection)
        return None

    async def acquire(
        self, *, deadline: float | None, sock_connect: float | None
    ) -> tuple[HTTPConnection, bool]:
        """A connection and whether it was used before (an idle one, or a new one).

        Getting it (waiting for a free slot, connecting) ends by ``deadline`` (loop time),
        opening a connection (TLS handshake included) within ``sock_connect`` seconds;
        else ConnectTimeoutError. Raises ClientConnectorError when the server cannot be
        reached (its TLS subclasses for a failed handshake: see :mod:`._connect`).
        """
        if self.closed:
            raise RuntimeError("Session is closed")
        loop = asyncio.get_running_loop()
        if self._in_use >= self._limit or self._waiters:
            await self._wait_for_slot(loop, deadline)
        else:
            self._in_use += 1
        try:
            if self.closed:
                raise RuntimeError("Session is closed")
            idle = self._fresh_idle()
            if idle is not None:
                return idle, True
            timeout = _seconds_until(loop, deadline)
            if sock_connect and (timeout is None or sock_connect < timeout):
                timeout = sock_connect
            connection = await self._endpoint.connect(HTTPConnection, timeout)
            self._open.add(connection)
            return connection, False
        except BaseException:
            self._free_slot()
            raise

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        """Waits until a released slot is handed to this call (the slot is then its own)."""
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, _seconds_until(loop, deadline))
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._free_slot()  # handed over as this call ended: the next one gets it
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, asyncio.TimeoutError):
                where = f"{self._endpoint.host}:{self._endpoint.port}"
                raise ConnectTimeoutError(
                    f"No free connection to {where} within the connect limit"
                ) from None
            raise

    def _free_slot(self) -> None:
        """Hands the slot of a finished request to the longest waiting one, or frees it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_use -= 1

    def release(self, connection: HTTPConnection) -> None:
        """Returns ``connection``: kept if its response was read to the end, else closed."""
        if self._waiters:
            self._free_slot()
        else:
            self._in_use -= 1  # (nobody waits: _free_slot() without the call)
        if connection.reusable and connection.complete and not connection.closed:
            connection.idle_since = time.monotonic()
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


def _seconds_until(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - loop.time(), 0.0)


def header_block(headers: Any) -> str:
    """``Name: value\\r\\n`` lines (names and values checked by the transport)."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items())
