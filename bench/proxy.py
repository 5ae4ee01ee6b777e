"""A loopback proxy for the benchmark: counts requests, and optionally terminates TLS.

``bench/run.py`` puts one in front of the server for the clients that have no request hook
(the other libraries), and a TLS one for the https rows (every client), with certificates
made at run time by ``trustme``::

    with CountingProxy("127.0.0.1", 5984) as proxy:           # http://127.0.0.1:<port>
        ...; proxy.requests
    with TlsFiles() as tls, CountingProxy("127.0.0.1", 5984, tls=tls) as proxy:
        ...                                                   # https://localhost:<port>

The proxy runs its own event loop in a thread of the orchestrator, which waits idle for
the worker process meanwhile; it copies bytes both ways and feeds what clients send to
llhttp (``httptools``), which counts every complete request, so pipelined, chunked and
keep-alive requests count right. Its CPU is spent outside the measured client process.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from pathlib import Path
from types import TracebackType

import httptools
from loopback_proxy import LoopbackProxy

#: Bytes copied at once.
CHUNK = 256 * 1024


class TlsFiles:
    """A throw-away certificate authority and a ``localhost`` certificate (``trustme``).

    ``ca_file`` is the authority's PEM, for the clients to trust (``SSL_CERT_FILE``,
    ``REQUESTS_CA_BUNDLE`` or the library's own option); :meth:`server_context` is the
    proxy's side. The files live in a temporary directory removed on exit.
    """

    def __init__(self) -> None:
        import trustme

        self._directory = tempfile.TemporaryDirectory(prefix="aiocouch-bench-tls-")
        self._authority = trustme.CA()
        self._certificate = self._authority.issue_cert("localhost", "127.0.0.1")
        self.ca_file = Path(self._directory.name) / "ca.pem"
        self._authority.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        """The TLS context of the proxy's listening side."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._certificate.configure_cert(context)
        return context

    def __enter__(self) -> TlsFiles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._directory.cleanup()


class _RequestCounter:
    """httptools callbacks: counts the requests that were sent completely."""

    def __init__(self, proxy: CountingProxy) -> None:
        self._proxy = proxy

    def on_message_complete(self) -> None:
        self._proxy.requests += 1


class CountingProxy(LoopbackProxy):
    """Forwards loopback connections to ``host:port``, counting the requests that pass."""

    def __init__(self, host: str, port: int, *, tls: TlsFiles | None = None) -> None:
        super().__init__(host, port)
        self.requests = 0
        self._tls = tls

    @property
    def url(self) -> str:
        """The URL the clients use (``localhost``, the certificate's name, for TLS)."""
        if self._tls is None:
            return f"http://127.0.0.1:{self.port}"
        return f"https://localhost:{self.port}"

    def _server_context(self) -> ssl.SSLContext | None:
        return self._tls.server_context() if self._tls else None

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        """One client connection: its own upstream connection, bytes copied both ways."""
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        parser = httptools.HttpRequestParser(_RequestCounter(self))
        await asyncio.gather(
            self._copy(client_reader, upstream_writer, parser),
            self._copy(upstream_reader, client_writer, None),
        )

    @staticmethod
    async def _copy(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: httptools.HttpRequestParser | None,
    ) -> None:
        """Copies until end of stream, then closes ``writer`` (a reset ends both sides)."""
        try:
            while data := await reader.read(CHUNK):
                if parser is not None:
                    parser.feed_data(data)
                writer.write(data)
                await writer.drain()
        except (OSError, httptools.HttpParserError, ssl.SSLError):
            pass
        finally:
            writer.close()
