"""Opens the lean transport's connections: plain TCP, or TLS for ``https://`` servers.

TLS goes through :mod:`._tls` (OpenSSL over memory BIOs), with the context the caller chose
through the ``ssl=`` option (the values aiohttp takes for it): an :class:`ssl.SSLContext` as given
(client certificates, private CAs, pinned protocol versions: all set on the context),
``True`` or ``None`` for the default context (certificates verified against the system's
CAs, host name checked), ``False`` for no verification at all. The host name of the URL
is sent as SNI and checked against the certificate. An :class:`aiohttp.Fingerprint` is
left to the aiohttp transport.

Failures raise what aiohttp raises for them, so that code written for aiocouch 4.0.1
catches them: a certificate that fails verification (untrusted, expired, another host
name) :class:`aiohttp.ClientConnectorCertificateError`, any other TLS failure
:class:`aiohttp.ClientConnectorSSLError` (both :class:`aiohttp.ClientSSLError` and
:class:`aiohttp.ClientConnectorError`), a refused or reset connection
:class:`aiohttp.ClientConnectorError`. Opening, TLS handshake included, must end within
the time given, else :class:`~aiocouch.exception.ConnectTimeoutError`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from typing import TypeVar, Union

import aiohttp
from aiohttp.client_reqrep import ConnectionKey

from ._tls import open_tls_connection
from .exception import ConnectTimeoutError

__all__ = ["Endpoint", "TLSOption", "is_lean_tls_option"]

TLSOption = Union[ssl.SSLContext, bool, None]
"""The ``ssl=`` values the lean transport serves itself."""

_Protocol = TypeVar("_Protocol", bound=asyncio.BufferedProtocol)


def is_lean_tls_option(option: object) -> bool:
    """True if the lean transport can honour ``ssl=option`` exactly."""
    return option is None or isinstance(option, (bool, ssl.SSLContext))


class Endpoint:
    """Where the connections of one server go: host and port, and for TLS, its context."""

    __slots__ = ("host", "key", "port", "scheme", "tls")

    def __init__(self, scheme: str, host: str, port: int, option: TLSOption = None) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.tls = _context_for(option) if scheme == "https" else None
        """The TLS context of the connections (None for plain HTTP)."""
        # What aiohttp's connection errors carry: the ssl= choice as given.
        self.key = ConnectionKey(
            host, port, self.tls is not None, True if option is None else option, None, None, None
        )

    async def connect(self, protocol: Callable[[], _Protocol], timeout: float | None) -> _Protocol:
        """A new connection speaking ``protocol``, TLS handshake done, within ``timeout``.

        Raises ConnectTimeoutError, or aiohttp's connection errors (see the module).
        """
        if timeout is not None and timeout <= 0:
            raise self._timeout()
        loop = asyncio.get_running_loop()
        if self.tls is None:
            opening = loop.create_connection(protocol, self.host, self.port)
        else:
            opening = open_tls_connection(protocol, self.host, self.port, self.tls, timeout=timeout)
        try:
            _, connection = await asyncio.wait_for(opening, timeout)
        # (asyncio.TimeoutError is an OSError from Python 3.11 on: this clause first.)
        except asyncio.TimeoutError:
            raise self._timeout() from None
        except ssl.CertificateError as exc:
            raise aiohttp.ClientConnectorCertificateError(self.key, exc) from exc
        except ssl.SSLError as exc:
            raise aiohttp.ClientConnectorSSLError(self.key, exc) from exc
        except OSError as exc:
            raise aiohttp.ClientConnectorError(self.key, exc) from exc
        return connection

    def _timeout(self) -> ConnectTimeoutError:
        return ConnectTimeoutError(
            f"Connection timeout to host {self.scheme}://{self.host}:{self.port}"
        )


def _context_for(option: TLSOption) -> ssl.SSLContext:
    if isinstance(option, ssl.SSLContext):
        return option
    return _default_context(verified=option is not False)


@functools.lru_cache(maxsize=2)
def _default_context(*, verified: bool) -> ssl.SSLContext:
    """The context of ``ssl=True`` (or ``False``), made once: loading the system's CAs
    takes milliseconds, too much for each client, let alone each connection."""
    if verified:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context
