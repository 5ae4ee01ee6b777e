"""TLS beneath the lean transport's HTTP protocol: an :class:`ssl.SSLObject` over memory BIOs.

:func:`open_tls_connection` opens a TCP connection, runs the TLS handshake (SNI and the
host name check with the caller's :class:`ssl.SSLContext`, whose verification and client
certificates apply as set) and hands the protocol a transport that encrypts what it
writes and decrypts what arrives into the protocol's own buffer.

It does what asyncio's TLS layer (``loop.create_connection(ssl=...)``) does for this
client, for less CPU per request: asyncio's layer, written in Python, runs about fifteen
calls of its own per request and answer, and after each answer one more
``SSLObject.read`` whose only result is an :class:`ssl.SSLWantReadError` (the way it
learns that nothing more is there: building that exception costs about as much as
decrypting the answer). Here a read that took everything the socket brought is the
last one (the BIO and OpenSSL's buffer are empty), and the rest is one call each way.

The peer's end of the connection is told apart as TLS tells it: its ``close_notify``
alert is a clean close, a TCP close without it is not (a body that only the close
delimits then counts as cut short, not as complete, as an attacker could cut it). Records
the server sends after the handshake (session tickets, key updates, a TLS 1.2
renegotiation) are answered as they come: whatever OpenSSL wants to send goes out after
each step. A write that OpenSSL cannot take in the middle of a renegotiation waits for
the peer's next bytes. (OpenSSL never wants to write first: the outgoing BIO takes all it
writes, and the socket's transport buffers it, with its flow control passed on to the
protocol.)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["TLSTransport", "open_tls_connection"]

_Protocol = TypeVar("_Protocol", bound=asyncio.BufferedProtocol)

_FIRST_READ_SIZE = 32 * 1024
"""The most encrypted bytes taken from the socket at once, until a read fills that (a
record of 16 KiB, the largest, fits with room): a pool of connections that only see small
answers holds an eighth as much."""
_READ_SIZE = 256 * 1024
"""The most encrypted bytes taken from the socket at once after that."""
_HANDSHAKE_SECONDS = 60.0
"""The limit of a handshake when the caller sets none (asyncio's own, and nginx's)."""


class TLSTransport(asyncio.BufferedProtocol, asyncio.Transport):
    """One TLS connection: a protocol to the socket's transport, a transport to ``protocol``.

    ``protocol`` must be an :class:`asyncio.BufferedProtocol`: the answers are decrypted
    straight into its buffer.
    """

    def __init__(
        self,
        protocol: asyncio.BufferedProtocol,
        context: ssl.SSLContext,
        server_hostname: str,
        handshake: asyncio.Future[None],
    ) -> None:
        super().__init__()
        self._app = protocol
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._handshake: asyncio.Future[None] | None = handshake
        self._raw: asyncio.Transport | None = None
        self._buffer = memoryview(bytearray(_FIRST_READ_SIZE))
        # Application data OpenSSL could not take yet (during a renegotiation).
        self._backlog: deque[bytes | bytearray | memoryview] = deque()
        self._reading_paused = False
        self._closing = False
        self._ended_here = False
        self._close_notified = False
        self._app_connected = False

    # --- the protocol of the socket's transport ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        self._shake()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._incoming.write(self._buffer[:nbytes])
        if nbytes == _FIRST_READ_SIZE and len(self._buffer) == _FIRST_READ_SIZE:
            self._buffer = memoryview(bytearray(_READ_SIZE))  # (a large answer is arriving)
        if self._handshake is not None:
            self._shake()
        else:
            self._decrypt()

    def eof_received(self) -> bool:
        return False  # (the socket closes: connection_lost tells how it ended)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._handshake is not None:
            reason = "The connection closed during the TLS handshake"
            self._end_handshake(exc or ConnectionResetError(errno.ECONNRESET, reason))
            return
        if exc is None and not (self._close_notified or self._ended_here):
            exc = ssl.SSLEOFError("The server closed the connection without a TLS close_notify")
        if self._app_connected:
            self._app_connected = False
            self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._app_connected:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app_connected:
            self._app.resume_writing()

    # --- the transport of the protocol above ---

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        if self._backlog:
            self._backlog.append(data)
            return
        try:
            self._tls.write(data)
        except ssl.SSLWantReadError:
            self._backlog.append(data)
        except ssl.SSLError as exc:
            self._fail(exc)
            return
        assert self._raw is not None
        self._raw.write(self._outgoing.read())

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("A TLS connection is closed whole (close())")

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Sends TLS's close_notify, then closes the socket (not waiting for the peer's)."""
        if self._closing:
            return
        self._closing = self._ended_here = True
        if self._handshake is None:
            with contextlib.suppress(ssl.SSLError):  # (the peer's is not awaited)
                self._tls.unwrap()
            self._send()
        if self._raw is not None:
            self._raw.close()

    def abort(self) -> None:
        self._closing = self._ended_here = True
        if self._raw is not None:
            self._raw.abort()

    def pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            if self._raw is not None:
                self._raw.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if self._raw is not None:
                self._raw.resume_reading()
            if self._incoming.pending or self._tls.pending():
                asyncio.get_running_loop().call_soon(self._decrypt)

    def is_reading(self) -> bool:
        return not self._reading_paused and not self._closing

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size() if self._raw is not None else 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls
        if name == "sslcontext":
            return self._tls.context
        if name == "peercert":
            return self._tls.getpeercert()
        if name == "cipher":
            return self._tls.cipher()
        if name == "compression":
            return self._tls.compression()
        if self._raw is None:
            return default
        return self._raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        raise NotImplementedError("The protocol of a TLS connection is fixed")

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._app

    # --- internals ---

    def _shake(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._send()
            return
        except ssl.SSLError as exc:  # (certificate errors included)
            self._send()  # the alert that tells the server why
            self._end_handshake(exc)
            return
        self._send()
        self._end_handshake(None)
        self._app_connected = True
        self._app.connection_made(self)
        if self._incoming.pending:
            self._decrypt()

    def _end_handshake(self, exc: BaseException | None) -> None:
        handshake, self._handshake = self._handshake, None
        if exc is not None:
            self._closing = True
            if self._raw is not None:
                self._raw.abort()
        if handshake is not None and not handshake.done():
            if exc is None:
                handshake.set_result(None)
            else:
                handshake.set_exception(exc)

    def _decrypt(self) -> None:
        """Hands what arrived, decrypted, to the protocol (until it pauses reading)."""
        app = self._app
        tls = self._tls
        incoming = self._incoming
        while not (self._reading_paused or self._closing):
            buffer: memoryview = app.get_buffer(-1)  # type: ignore[assignment]
            try:
                count: int = tls.read(len(buffer), buffer)  # type: ignore[assignment]
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as exc:
                self._fail(exc)
                return
            if not count:
                # The peer's close_notify, a clean end: ours answers it, then the socket
                # closes (the peer may wait for ours before it does).
                self._close_notified = True
                self.close()
                return
            app.buffer_updated(count)
            # Everything that came is decrypted (a read returns one record at most, so one
            # that did not fill the buffer ended its record): no read just to learn that.
            if not incoming.pending and (count < len(buffer) or not tls.pending()):
                break
        if self._backlog:
            self._write_backlog()
        elif self._outgoing.pending:
            self._send()

    def _write_backlog(self) -> None:
        while self._backlog:
            try:
                self._tls.write(self._backlog[0])
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as exc:
                self._fail(exc)
                return
            self._backlog.popleft()
        self._send()

    def _send(self) -> None:
        if self._outgoing.pending and self._raw is not None and not self._raw.is_closing():
            self._raw.write(self._outgoing.read())

    def _fail(self, exc: Exception) -> None:
        """A TLS error: the connection ends, the protocol learns why."""
        self._closing = True
        if self._raw is not None:
            self._raw.abort()
        if self._app_connected:
            self._app_connected = False
            self._app.connection_lost(exc)


async def open_tls_connection(
    protocol: Callable[[], _Protocol],
    host: str,
    port: int,
    context: ssl.SSLContext,
    *,
    timeout: float | None,
) -> tuple[TLSTransport, _Protocol]:
    """A TCP connection to ``host:port``, TLS handshake done: its transport and ``protocol``.

    ``host`` is sent as SNI and checked against the certificate (as the context says).
    The handshake ends within ``timeout`` seconds (60 if None), else
    :class:`ConnectionAbortedError`: the caller's own limit (a cancellation) should come
    first. Raises what the handshake raises (:class:`ssl.SSLCertVerificationError`,
    :class:`ssl.SSLError`), :class:`ConnectionResetError` when the peer ends the
    connection during the handshake, :class:`OSError` when it cannot be reached. A
    cancelled call closes the connection.
    """
    loop = asyncio.get_running_loop()
    handshake: asyncio.Future[None] = loop.create_future()
    application = protocol()
    layer = TLSTransport(application, context, host, handshake)
    await loop.create_connection(lambda: layer, host, port)
    limit = _HANDSHAKE_SECONDS if timeout is None else timeout
    try:
        await asyncio.wait_for(handshake, limit)
    except asyncio.TimeoutError:
        layer.abort()
        raise ConnectionAbortedError(
            errno.ECONNABORTED, f"The TLS handshake took longer than {limit} s"
        ) from None
    except BaseException:
        layer.abort()
        raise
    return layer, application
