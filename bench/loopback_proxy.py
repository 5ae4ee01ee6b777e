"""A loopback TCP proxy run by its own event loop in a thread, for the benchmark harness.

Subclasses say what happens on each client connection (``_connection``); this class
starts the listening socket, gives its port, and stops it all again. Running in a thread
of the harness keeps the proxy's CPU out of the measured client's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from types import TracebackType
from typing import TypeVar

__all__ = ["LoopbackProxy"]

_Proxy = TypeVar("_Proxy", bound="LoopbackProxy")


class LoopbackProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``host:port`` as subclasses say."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def _server_context(self) -> ssl.SSLContext | None:
        """The TLS context of the listening socket (None: plain TCP)."""
        return None

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        raise NotImplementedError

    def __enter__(self: _Proxy) -> _Proxy:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0, ssl=self._server_context()),
            self._loop,
        )
        self._server = started.result(timeout=30)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._server.wait_closed(), 5)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
