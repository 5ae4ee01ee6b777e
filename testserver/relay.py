"""A TCP relay on loopback in front of a real server, whose connections a test can cut.

Every connection to :attr:`CuttableRelay.url` is piped byte for byte to the upstream
server; :meth:`CuttableRelay.cut` resets all of them at once (both sides), as a network
failure would, and :meth:`CuttableRelay.cut_next_after` resets the next connection once
it passed a number of response bytes on (a break in the middle of an answer)::

    async with CuttableRelay(server_url) as relay:
        client = CouchDB(relay.url, ...)
        ...
        relay.cut()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType

from yarl import URL

__all__ = ["CuttableRelay"]

_READ_SIZE = 1 << 16


class CuttableRelay:
    """Accepts connections on 127.0.0.1 and pipes each one to ``upstream`` (a URL)."""

    def __init__(self, upstream: str) -> None:
        url = URL(upstream)
        self._upstream = (url.host or "127.0.0.1", url.port or 80)
        self._scheme = url.scheme
        self.url = ""
        self.connections = 0
        """How many connections the relay accepted."""
        self.cuts = 0
        """How many connections :meth:`cut` and :meth:`cut_next_after` reset."""
        self._server: asyncio.AbstractServer | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut_after: int | None = None

    async def __aenter__(self) -> CuttableRelay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{self._scheme}://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        # Reset connections end their pipes; cancelling the tasks instead would make
        # asyncio log each one as an error.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        await self._server.wait_closed()

    def cut(self) -> int:
        """Resets every open connection, client side and server side; returns how many."""
        writers = list(self._open)
        self._open.clear()
        for writer in writers:
            _reset(writer)
        cut = len(writers) // 2
        self.cuts += cut
        return cut

    def cut_next_after(self, size: int) -> None:
        """Resets the next connection once ``size`` bytes came back through it."""
        self._cut_after = size

    @property
    def open_connections(self) -> int:
        """How many client connections are piped right now."""
        return len(self._open) // 2

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                _reset(writer)
                return
            self._open.update((writer, up_writer))
            limit, self._cut_after = self._cut_after, None
            _, back = await asyncio.gather(
                _pipe(reader, up_writer),
                _pipe(up_reader, writer, limit=limit, cut=(writer, up_writer)),
                return_exceptions=True,
            )
            if back is True:
                self.cuts += 1
            self._open.discard(writer)
            self._open.discard(up_writer)
            up_writer.close()
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    limit: int | None = None,
    cut: tuple[asyncio.StreamWriter, ...] = (),
) -> bool:
    """Copies until end of stream, then passes the end on; resets ``cut`` after ``limit``.

    Returns True if it reset them.
    """
    passed = 0
    while data := await reader.read(_READ_SIZE):
        if limit is not None and passed + len(data) >= limit:
            writer.write(data[: limit - passed])
            await writer.drain()
            for end in cut:
                _reset(end)
            return True
        passed += len(data)
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    return False


def _reset(writer: asyncio.StreamWriter) -> None:
    """Aborts the connection with a reset (RST), not a clean close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
