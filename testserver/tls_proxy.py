"""A TLS-terminating proxy: clients speak TLS to it, it relays the plain bytes upstream.

Put in front of the test server (or a :class:`~testserver.scripted_server.ScriptedServer`)
it makes an ``https://`` server of it, with the certificate of the ``context`` given
(e.g. one made by ``trustme`` for the test)::

    async with TLSProxy(couch_server.url, server_context) as proxy:
        async with CouchDB(proxy.url, ssl=client_context) as couchdb:
            ...

Bytes are relayed as they come, both ways, without reading HTTP; a clean close (FIN)
upstream closes the client's connection (TLS close_notify, then FIN), a reset upstream
resets it (RST), and the other way round. A server context that requires a client
certificate (``verify_mode = ssl.CERT_REQUIRED``) refuses clients without one.

What the clients did is recorded: :attr:`TLSProxy.server_names` (the SNI of each
handshake, None without one), :attr:`TLSProxy.client_certificates` (the certificate of
each client that completed its handshake, as :meth:`ssl.SSLSocket.getpeercert` gives it:
an empty dict when none was asked for) and :attr:`TLSProxy.relayed` (bytes sent
upstream, so that a test can tell that nothing of a request got through).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from types import TracebackType
from typing import Any

from yarl import URL

from .loopback import shut_down

__all__ = ["TLSProxy"]

_PIECE = 64 * 1024


class TLSProxy:
    """Listens on 127.0.0.1 with TLS; :attr:`url` names it ``https://{host}:{port}``.

    ``host`` is the name clients use (sent as SNI, checked against the certificate);
    it must resolve to 127.0.0.1. The proxy sets the ``sni_callback`` of ``context``.
    """

    def __init__(self, upstream: str, context: ssl.SSLContext, *, host: str = "localhost") -> None:
        target = URL(upstream)
        self._upstream = (target.raw_host or "127.0.0.1", target.port or 80)
        self._context = context
        self._host = host
        self.url = ""
        self.server_names: list[str | None] = []
        self.client_certificates: list[dict[str, Any]] = []
        self.relayed = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        context.sni_callback = self._record_server_name

    async def __aenter__(self) -> TLSProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=self._context)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"https://{self._host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        await shut_down(self._server, self._tasks)

    def _record_server_name(
        self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        self.server_names.append(server_name)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            self.client_certificates.append(writer.get_extra_info("peercert") or {})
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
            await asyncio.gather(
                self._pipe(reader, upstream_writer, counted=True),
                self._pipe(upstream_reader, writer, counted=False),
            )
        except (ConnectionError, ssl.SSLError, OSError):
            _reset(writer)
            if upstream_writer is not None:
                _reset(upstream_writer)
        except asyncio.CancelledError:
            # Only __aexit__ cancels: ending normally keeps asyncio from logging it.
            pass
        finally:
            for each in (writer, upstream_writer):
                if each is not None:
                    with contextlib.suppress(Exception):
                        each.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, counted: bool
    ) -> None:
        """Copies until a clean end (then ends the other side too); a reset raises."""
        while piece := await reader.read(_PIECE):
            if counted:
                self.relayed += len(piece)
            writer.write(piece)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()  # a TLS connection cannot be half-closed


def _reset(writer: asyncio.StreamWriter) -> None:
    """Aborts the connection with a reset (RST), not a clean close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
