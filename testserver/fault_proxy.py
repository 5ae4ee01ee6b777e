"""A TCP proxy that breaks HTTP exchanges on purpose, on a reproducible schedule.

:class:`FaultProxy` listens on 127.0.0.1 and forwards every request of its clients to
the upstream server (pouchdb-server, or the server of ``COUCHDB_URL``), over real
sockets. It reads HTTP/1.1 framing (request heads and bodies by ``Content-Length`` or
chunked coding; answers by ``Content-Length``, chunked coding or connection close; no
body for HEAD, 1xx, 204 and 304) so that a fault hits one chosen request and its answer
on a keep-alive connection, never an arbitrary byte::

    schedule = RandomFaults(seed=7, rates={
        FaultKind.RESET_BEFORE_REQUEST: 0.05,  # the server never sees the request
        FaultKind.RESET_AFTER_ANSWER: 0.05,    # applied, but the answer is lost
        FaultKind.CUT_ANSWER: 0.05,            # answer cut short
    })
    async with FaultProxy(couch_server.url, schedule=schedule) as proxy:
        async with CouchDB(proxy.url, user=..., password=...) as couchdb:
            ...  # 2,000 writes
        print(proxy.stats)  # requests, forwarded, answered, delivered, faults per kind

Recipes:

- one fault on the next matching request, on top of any schedule:
  ``proxy.force(FaultKind.RESET_AFTER_ANSWER, method="PUT", path=f"/{db}/")``
  (``times=N`` for the next N; ``path`` is the percent-encoded path without the query,
  a prefix or a compiled pattern; ``where=`` any predicate on the request);
- a stall at a byte offset of an answer, for some seconds or until
  :meth:`FaultProxy.release`: ``proxy.force(Fault(FaultKind.STALL_ANSWER, offset=0,
  seconds=30), path=f"/{db}/_changes")``; ``await proxy.wait_for_stall()`` returns once
  it is in effect;
- a silent network mid-stream: ``proxy.hold()`` ... ``proxy.resume()``;
- dropped connections: ``proxy.drop_connections()``; a server restart: ``async with
  proxy.outage(): ...`` (connection refused inside the block);
- a fault on one connection only: ``where=lambda request: request.connection == 3``.

The faults (:class:`FaultKind`):

``PASS``
    no fault: the exchange is relayed unchanged.
``RESET_BEFORE_REQUEST``
    the client's connection is reset (RST) once the request has arrived; nothing of it
    is sent upstream, so the server never sees it.
``RESET_AFTER_ANSWER`` / ``CLOSE_AFTER_ANSWER``
    the request is forwarded, the server's whole answer is read, and then the client's
    connection is reset (RST) / closed (FIN) without forwarding any of it: the write
    was applied, the client never learns the outcome.
``RESET_MID_ANSWER`` / ``CUT_ANSWER``
    part of the answer is forwarded, then the connection is reset (RST) / closed
    cleanly (FIN).
``STALL_ANSWER``
    part of the answer is forwarded, then nothing for ``seconds`` (None: until
    :meth:`FaultProxy.release`, or forever), then the rest.
``STALL_REQUEST``
    part of the request is forwarded upstream, then nothing for ``seconds`` (None:
    until released), then the rest.

Where a fault acts is a :class:`Fault`'s ``offset``: for the answer faults, the number of
body bytes (as on the wire, chunk framing included, after the head) forwarded first;
``None`` means half the body when ``Content-Length`` gives its size, else its first chunk
(or first read, for a body that ends with the connection). A mid-answer fault always
withholds at least the answer's last byte, so the client never holds a complete answer;
an answer without a body is cut inside its head. For ``STALL_REQUEST`` the offset counts
the request's bytes from its first (head included; ``None`` means 0).

Which request gets which fault: first the requests queued with :meth:`FaultProxy.force`
(the next N requests matching a method, a path prefix or pattern, or any predicate), then
the ``schedule``: any callable that takes the :class:`ProxiedRequest` and returns a
:class:`Fault`, a :class:`FaultKind` or None (pass), such as :class:`RandomFaults`, a
seeded random policy. Its decisions depend only on the seed and the order in which
requests arrive, so a sequential test replays exactly.

Whole-server faults: :meth:`FaultProxy.hold` stops all traffic, in progress or new,
until :meth:`FaultProxy.resume` (a network that goes silent, e.g. mid-way through a
continuous changes feed); :meth:`FaultProxy.drop_connections` resets every open
connection (a network cut; :attr:`FaultProxy.open_connections` counts them); ``async
with proxy.outage():`` also refuses new connections until the block ends (a server
restart); the proxy then listens again on the same port.

What happened is recorded: :attr:`FaultProxy.exchanges` (one :class:`Exchange` per
request, with its fault and how far it got) and :attr:`FaultProxy.stats`, a
:class:`ProxyStats` summary (a fault counts once it acted). Each request goes upstream on
a new connection of its own, so a keep-alive connection the server closed while idle
never turns into a fault that nobody scheduled; the client's connection to the proxy
stays alive as the client wants.

Limits: plain ``http://`` upstreams only; a request is read whole before it is forwarded
(so ``Expect: 100-continue`` is not supported; neither transport of aiocouch sends it);
an after-answer fault on an endless answer (a continuous feed) waits for an end that
never comes. aiohttp repeats an idempotent request (GET, HEAD, PUT, DELETE) once on its
own after a dropped connection: a test that counts attempts with a plain aiohttp session
turns that off (``session._retry_connection = False``, as aiohttp's test utilities do).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import re
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Callable, Union
from urllib.parse import urlsplit

__all__ = [
    "Exchange",
    "Fault",
    "FaultKind",
    "FaultProxy",
    "ProxiedRequest",
    "ProxyStats",
    "RandomFaults",
    "Schedule",
]

_MAX_HEAD = 1 << 20
_READ_SIZE = 1 << 16
_NO_BODY_STATUSES = frozenset({204, 304})


class FaultKind(enum.Enum):
    """What the proxy does to one exchange (see the module docstring)."""

    PASS = "pass"
    RESET_BEFORE_REQUEST = "reset_before_request"
    RESET_AFTER_ANSWER = "reset_after_answer"
    CLOSE_AFTER_ANSWER = "close_after_answer"
    RESET_MID_ANSWER = "reset_mid_answer"
    CUT_ANSWER = "cut_answer"
    STALL_ANSWER = "stall_answer"
    STALL_REQUEST = "stall_request"


_MID_ANSWER = frozenset({FaultKind.RESET_MID_ANSWER, FaultKind.CUT_ANSWER, FaultKind.STALL_ANSWER})
_AFTER_ANSWER = frozenset({FaultKind.RESET_AFTER_ANSWER, FaultKind.CLOSE_AFTER_ANSWER})


@dataclass(frozen=True)
class Fault:
    """A fault and where it acts: ``offset`` bytes in, for ``seconds`` (stalls only)."""

    kind: FaultKind
    offset: int | None = None
    """Body bytes of the answer forwarded first (request bytes for STALL_REQUEST)."""
    seconds: float | None = None
    """How long a stall lasts; None: until :meth:`FaultProxy.release` (or forever)."""

    def __post_init__(self) -> None:
        if self.offset is not None and self.offset < 0:
            raise ValueError(f"offset must be >= 0, not {self.offset}")
        if self.seconds is not None and self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {self.seconds}")


PASS = Fault(FaultKind.PASS)


@dataclass
class ProxiedRequest:
    """One request as it arrived at the proxy."""

    number: int
    """Its position among all requests the proxy received (0 for the first)."""
    connection: int
    """The number of its client connection (0 for the first one accepted)."""
    index: int
    """Its position on that connection (0 for the first request)."""
    method: str
    target: str
    """The request target as sent (path and query, percent-encoded)."""
    headers: list[tuple[str, str]]
    raw: bytes
    """The whole request as received: head and body."""

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


@dataclass
class Exchange:
    """What became of one request: its fault and how far the exchange got."""

    request: ProxiedRequest
    fault: Fault
    forwarded: bool = False
    """The whole request was written to the server."""
    answered: bool = False
    """The server's answer head arrived."""
    status: int | None = None
    """The status of the server's answer."""
    delivered: bool = False
    """The whole answer was written to the client."""
    applied: bool = False
    """The fault acted (a mid-answer fault on an answer that failed earlier did not)."""


@dataclass(frozen=True)
class ProxyStats:
    """Counts of what the proxy did, for tests to assert on and report."""

    connections: int
    """Client connections accepted."""
    requests: int
    """Requests received from clients."""
    forwarded: int
    """Requests written to the server in full (the server received them)."""
    answered: int
    """Requests the server answered (an answer head came back)."""
    delivered: int
    """Answers relayed to the client in full."""
    faults: Mapping[FaultKind, int]
    """Faults that acted, per kind (PASS not counted)."""

    @property
    def fault_total(self) -> int:
        """All faults that acted."""
        return sum(self.faults.values())


Schedule = Callable[[ProxiedRequest], Union[Fault, FaultKind, None]]
"""Decides the fault of each request that :meth:`FaultProxy.force` did not claim."""


class RandomFaults:
    """A seeded random schedule: each kind of fault with its own probability.

    ``rates`` maps fault kinds to probabilities (summing to at most 1); the rest of the
    requests pass. ``stall_seconds`` is the duration of the stalls it draws, ``offset``
    the offset of its mid-answer faults (None: the default of :class:`Fault`).
    ``where``, if given, limits faults to the requests it accepts (the others pass and
    draw nothing, so the sequence of decisions for the accepted ones stays the same).
    """

    def __init__(
        self,
        seed: int | str,
        rates: Mapping[FaultKind, float],
        *,
        stall_seconds: float | None = 1.0,
        offset: int | None = None,
        where: Callable[[ProxiedRequest], bool] | None = None,
    ) -> None:
        if any(rate < 0 for rate in rates.values()) or sum(rates.values()) > 1 + 1e-9:
            raise ValueError(f"rates must be >= 0 and sum to at most 1: {dict(rates)}")
        self.seed = seed
        self._random = random.Random(seed)
        self._rates = [(kind, rate) for kind, rate in rates.items() if kind is not FaultKind.PASS]
        self._stall_seconds = stall_seconds
        self._offset = offset
        self._where = where

    def __call__(self, request: ProxiedRequest) -> Fault | None:
        if self._where is not None and not self._where(request):
            return None
        draw = self._random.random()
        for kind, rate in self._rates:
            if draw < rate:
                stall = kind in (FaultKind.STALL_ANSWER, FaultKind.STALL_REQUEST)
                return Fault(kind, self._offset, self._stall_seconds if stall else None)
            draw -= rate
        return None

    def __repr__(self) -> str:
        rates = ", ".join(f"{kind.value}={rate:g}" for kind, rate in self._rates)
        return f"<RandomFaults seed={self.seed!r} {rates}>"


@dataclass
class _Forced:
    fault: Fault
    remaining: int
    method: str | None
    path: str | re.Pattern[str] | None
    where: Callable[[ProxiedRequest], bool] | None

    def matches(self, request: ProxiedRequest) -> bool:
        if self.method is not None and request.method != self.method.upper():
            return False
        if isinstance(self.path, str) and not request.path.startswith(self.path):
            return False
        if isinstance(self.path, re.Pattern) and not self.path.search(request.path):
            return False
        return self.where is None or self.where(request)


class _ConnectionGone(Exception):
    """The client or the server connection ended; the exchange stops here."""


@dataclass(eq=False)
class _Connection:
    """One client connection and the upstream connection of its current exchange."""

    number: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    task: asyncio.Task[None]
    upstream: asyncio.StreamWriter | None = None
    closed: bool = field(default=False)

    def reset(self) -> None:
        self.closed = True
        _abort(self.writer)
        self.close_upstream()

    async def close(self) -> None:
        self.closed = True
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
        self.close_upstream()

    def close_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


class FaultProxy:
    """A loopback TCP proxy to ``upstream_url`` that injects faults (module docstring).

    ``schedule`` decides the fault of each request (default: none). Use it as
    ``async with FaultProxy(url) as proxy`` and point clients at :attr:`url`.
    """

    def __init__(self, upstream_url: str, *, schedule: Schedule | None = None) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"FaultProxy forwards to http:// servers only, not {upstream_url!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self.schedule = schedule
        self.exchanges: list[Exchange] = []
        self.port = 0
        self._connections = 0
        self._forced: list[_Forced] = []
        self._server: asyncio.AbstractServer | None = None
        self._open: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Created on start: on Python 3.9 they bind to the event loop current at creation.
        self._release: asyncio.Event | None = None
        self._stall_started: asyncio.Condition | None = None
        self._flowing: asyncio.Event | None = None
        self._stalled: list[Exchange] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FaultProxy:
        self._release = asyncio.Event()
        self._stall_started = asyncio.Condition()
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stops listening, resets every connection and ends every exchange."""
        self._stop_listening()
        self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        """The URL to give clients instead of the upstream one (same path prefix)."""
        if not self.port:
            raise RuntimeError("the proxy is not running")
        return f"http://127.0.0.1:{self.port}{self._prefix}"

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self.port}" if self.port else "not running"
        upstream = f"{self.upstream_host}:{self.upstream_port}"
        return f"<FaultProxy {where} -> {upstream} {self.stats}>"

    # -- control ---------------------------------------------------------------------------

    def force(
        self,
        fault: Fault | FaultKind,
        times: int = 1,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        where: Callable[[ProxiedRequest], bool] | None = None,
    ) -> None:
        """Gives ``fault`` to the next ``times`` requests that match, before the schedule.

        A request matches if it has ``method`` (if given), its path (percent-encoded,
        without the query) starts with ``path`` (a str) or contains a match of ``path``
        (a compiled pattern), and ``where(request)`` is true (if given). Forced faults
        are used in the order they were queued.
        """
        if times < 1:
            raise ValueError(f"times must be >= 1, not {times}")
        self._forced.append(_Forced(_as_fault(fault), times, method, path, where))

    def clear_forced(self) -> None:
        """Forgets the forced faults not used yet."""
        self._forced.clear()

    def release(self) -> None:
        """Ends every stall in progress (also those with ``seconds``)."""
        if self._release is not None:
            self._release.set()
        self._release = asyncio.Event()

    async def wait_for_stall(self, timeout: float = 10.0) -> Exchange:
        """Waits until an exchange is stalled and returns it (the oldest one stalled).

        Raises asyncio.TimeoutError if none stalls within ``timeout`` seconds.
        """

        condition = self._stall_started
        if condition is None:
            raise RuntimeError("the proxy is not running")

        async def stalled() -> Exchange:
            async with condition:
                await condition.wait_for(lambda: bool(self._stalled))
                return self._stalled[0]

        return await asyncio.wait_for(stalled(), timeout)

    def hold(self) -> None:
        """Stops forwarding bytes in both directions on every connection, open or new
        (a network that goes silent), until :meth:`resume`; nothing is closed."""
        if self._flowing is None:
            raise RuntimeError("the proxy is not running")
        self._flowing.clear()

    def resume(self) -> None:
        """Forwards again what :meth:`hold` held back."""
        if self._flowing is not None:
            self._flowing.set()

    def drop_connections(self) -> int:
        """Resets (RST) every open client connection and its upstream connection; the
        exchanges on them end, stalled ones included. Returns how many it reset."""
        connections = list(self._open)
        for connection in connections:
            connection.reset()
            connection.task.cancel()
        return len(connections)

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """Inside the block the server looks down: open connections are reset, new ones
        refused (connection refused); afterwards the proxy listens again on its port."""
        self._stop_listening()
        self.drop_connections()
        try:
            yield
        finally:
            await self._listen()

    @property
    def open_connections(self) -> int:
        """How many client connections are open now, idle keep-alive ones included (a
        connection counts until the proxy noticed its end)."""
        return len(self._open)

    @property
    def stats(self) -> ProxyStats:
        """The counts so far."""
        faults: Counter[FaultKind] = Counter(
            exchange.fault.kind
            for exchange in self.exchanges
            if exchange.applied and exchange.fault.kind is not FaultKind.PASS
        )
        return ProxyStats(
            connections=self._connections,
            requests=len(self.exchanges),
            forwarded=sum(exchange.forwarded for exchange in self.exchanges),
            answered=sum(exchange.answered for exchange in self.exchanges),
            delivered=sum(exchange.delivered for exchange in self.exchanges),
            faults=dict(faults),
        )

    # -- serving ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, limit=_MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = _Connection(self._connections, reader, writer, task)
        self._connections += 1
        self._open.add(connection)
        try:
            for index in range(1 << 30):
                request = await self._read_request(connection, index)
                if request is None or connection.closed:
                    break
                exchange = Exchange(request, self._fault_for(request))
                self.exchanges.append(exchange)
                keep_alive = await self._exchange(connection, exchange)
                if not keep_alive or connection.closed:
                    break
        except (
            _ConnectionGone,
            ConnectionError,
            OSError,
            ValueError,  # a head the proxy cannot parse
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            # close() cancels the exchanges; ending quietly keeps asyncio from logging it.
            asyncio.CancelledError,
        ):
            pass
        finally:
            self._open.discard(connection)
            connection.close_upstream()
            if not connection.closed:
                writer.close()
            self._tasks.discard(task)

    def _fault_for(self, request: ProxiedRequest) -> Fault:
        for forced in self._forced:
            if forced.matches(request):
                forced.remaining -= 1
                if not forced.remaining:
                    self._forced.remove(forced)
                return forced.fault
        if self.schedule is None:
            return PASS
        decision = self.schedule(request)
        return PASS if decision is None else _as_fault(decision)

    async def _read_request(self, connection: _Connection, index: int) -> ProxiedRequest | None:
        """The next request of the client, or None when it closed the connection."""
        try:
            head = await connection.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        except asyncio.LimitOverrunError as exc:
            raise _ConnectionGone("request head too large") from exc
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [_split_header(line) for line in lines[1:]]
        body = b"".join(
            [piece async for piece, _ in _body_pieces(connection.reader, headers, until_eof=False)]
        )
        return ProxiedRequest(
            number=len(self.exchanges),
            connection=connection.number,
            index=index,
            method=method,
            target=target,
            headers=headers,
            raw=head + body,
        )

    async def _exchange(self, connection: _Connection, exchange: Exchange) -> bool:
        """Relays one request and its answer with its fault; True to keep the connection."""
        fault = exchange.fault
        request = exchange.request
        if fault.kind is FaultKind.RESET_BEFORE_REQUEST:
            exchange.applied = True
            connection.reset()
            return False
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port, limit=_MAX_HEAD
            )
        except OSError:
            connection.reset()
            return False
        connection.upstream = up_writer
        try:
            await self._send_request(exchange, up_writer)
            exchange.forwarded = True
            keep_alive = await self._relay_answer(connection, exchange, up_reader)
        finally:
            connection.close_upstream()
        return keep_alive and not _wants_close(request.headers)

    async def _send_request(self, exchange: Exchange, upstream: asyncio.StreamWriter) -> None:
        raw = exchange.request.raw
        fault = exchange.fault
        if fault.kind is FaultKind.STALL_REQUEST:
            split = min(fault.offset or 0, len(raw))
            await self._send(upstream, raw[:split])
            exchange.applied = True
            await self._stall(exchange)
            raw = raw[split:]
        await self._send(upstream, raw)

    async def _relay_answer(
        self, connection: _Connection, exchange: Exchange, upstream: asyncio.StreamReader
    ) -> bool:
        """Relays the server's answer (or withholds it); True to keep the connection."""
        head, status, headers = await self._read_answer_head(upstream, connection, exchange)
        exchange.answered = True
        exchange.status = status
        fault = exchange.fault
        has_body = exchange.request.method != "HEAD" and status not in _NO_BODY_STATUSES
        length = _content_length(headers) if has_body else 0
        body = _body_pieces(upstream, headers, until_eof=True) if has_body else _no_body()
        if fault.kind in _AFTER_ANSWER:
            async for _ in body:
                pass
            exchange.applied = True
            if fault.kind is FaultKind.RESET_AFTER_ANSWER:
                connection.reset()
            else:
                await connection.close()
            return False
        if fault.kind in _MID_ANSWER:
            relayed = await self._relay_with_fault(connection, exchange, head, length, body)
        else:
            await self._send(connection.writer, head)
            async for piece, _ in body:
                await self._send(connection.writer, piece)
            relayed = True
        if not relayed:
            return False
        exchange.delivered = True
        framed = length is not None or _is_chunked(headers) or not has_body
        return framed and not _wants_close(headers)

    async def _relay_with_fault(
        self,
        connection: _Connection,
        exchange: Exchange,
        head: bytes,
        length: int | None,
        body: AsyncIterator[tuple[bytes, bool]],
    ) -> bool:
        """Relays the answer up to the fault's offset, then acts; True if it resumed."""
        fault = exchange.fault
        target: int | None = None
        if fault.offset is not None:
            target = len(head) + fault.offset
        elif length is not None:
            target = len(head) + length // 2
        sent = 0
        acted = False

        async def pieces() -> AsyncIterator[tuple[bytes, bool]]:
            yield head, length == 0
            async for piece, last in body:
                yield piece, last

        async for piece, last in pieces():
            if acted:
                await self._send(connection.writer, piece)
                continue
            if target is None and sent:
                target = sent + len(piece)  # the first chunk (or read) of a body of unknown size
            limit = sent + len(piece) if target is None else target
            if last:
                limit = min(limit, sent + len(piece) - 1)
            if limit >= sent + len(piece):
                await self._send(connection.writer, piece)
                sent += len(piece)
                if sent != target:
                    continue
                piece = b""
            else:
                split = max(0, limit - sent)
                await self._send(connection.writer, piece[:split])
                sent += split
                piece = piece[split:]
            exchange.applied = True
            if fault.kind is FaultKind.RESET_MID_ANSWER:
                connection.reset()
                return False
            if fault.kind is FaultKind.CUT_ANSWER:
                await connection.close()
                return False
            await self._stall(exchange)
            acted = True
            if piece:
                await self._send(connection.writer, piece)
        return True

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Writes ``data`` to one side, once traffic is not held (:meth:`hold`)."""
        assert self._flowing is not None
        await self._flowing.wait()
        await _write(writer, data)

    async def _stall(self, exchange: Exchange) -> None:
        release, condition = self._release, self._stall_started
        assert release is not None and condition is not None
        async with condition:
            self._stalled.append(exchange)
            condition.notify_all()
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(release.wait(), exchange.fault.seconds)
        finally:
            self._stalled.remove(exchange)

    async def _read_answer_head(
        self, upstream: asyncio.StreamReader, connection: _Connection, exchange: Exchange
    ) -> tuple[bytes, int, list[tuple[str, str]]]:
        """The final answer head; 1xx heads before it are relayed unless the fault hides them."""
        while True:
            try:
                head = await upstream.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                # The server closed without an answer: the client's connection is closed too.
                raise _ConnectionGone("no answer from the server") from exc
            lines = head[:-4].decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            if not 100 <= status < 200:
                return head, status, [_split_header(line) for line in lines[1:]]
            if exchange.fault.kind not in _AFTER_ANSWER:
                await self._send(connection.writer, head)


# -- HTTP framing ----------------------------------------------------------------------------


def _as_fault(fault: Fault | FaultKind) -> Fault:
    return fault if isinstance(fault, Fault) else Fault(fault)


def _split_header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


def _header_values(headers: list[tuple[str, str]], name: str) -> Iterator[str]:
    lowered = name.lower()
    return (value for key, value in headers if key.lower() == lowered)


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    if _is_chunked(headers):
        return None
    value = next(_header_values(headers, "Content-Length"), None)
    return int(value) if value is not None else None


def _is_chunked(headers: list[tuple[str, str]]) -> bool:
    return any("chunked" in value.lower() for value in _header_values(headers, "Transfer-Encoding"))


def _wants_close(headers: list[tuple[str, str]]) -> bool:
    return any("close" in value.lower() for value in _header_values(headers, "Connection"))


async def _no_body() -> AsyncIterator[tuple[bytes, bool]]:
    nothing: tuple[tuple[bytes, bool], ...] = ()
    for piece in nothing:
        yield piece


async def _body_pieces(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], *, until_eof: bool
) -> AsyncIterator[tuple[bytes, bool]]:
    """The raw bytes of a message body as they arrive, each with "is it the last piece".

    Chunked bodies come one whole chunk (size line, data, CRLF) per piece, the last chunk
    with its trailers. Without length or chunking the body runs to the end of the
    connection when ``until_eof`` (answers), else it is empty (requests).
    """
    if _is_chunked(headers):
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                trailers = bytearray(size_line)
                while True:
                    line = await reader.readuntil(b"\r\n")
                    trailers += line
                    if line == b"\r\n":
                        yield bytes(trailers), True
                        return
            yield size_line + await reader.readexactly(size + 2), False
    length = _content_length(headers)
    if length is not None:
        remaining = length
        while remaining:
            piece = await reader.read(min(remaining, _READ_SIZE))
            if not piece:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(piece)
            yield piece, not remaining
        return
    if until_eof:
        while True:
            piece = await reader.read(_READ_SIZE)
            if not piece:
                return
            yield piece, False


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not data:
        return
    if writer.is_closing():
        raise _ConnectionGone("connection closed")
    writer.write(data)
    await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Closes the connection with a reset (RST) instead of a clean close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
