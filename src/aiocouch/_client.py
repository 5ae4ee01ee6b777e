"""Sends requests to the server: one transport, wrapped with time limits (and the policies).

The transport below (:mod:`._http_transport` or :mod:`._aiohttp_transport`, chosen here)
makes exactly one attempt per call; this layer decides the time limits of each call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from ._aiohttp_transport import AiohttpTransport
from ._http_transport import HTTPTransport
from ._transport import NO_BODY, RawResponse, Transport
from .exception import _TypedResponseError

__all__ = ["DEFAULT_TIMEOUT", "HTTPClient", "make_transport"]

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=300, connect=60, sock_connect=30, sock_read=120)
"""The limits of a client built without ``timeout=``.

``total`` bounds a request whose whole answer is read at once (300 s, as aiohttp and
aiocouch 4.0.1); a streamed answer (``docs()``, views, ``find()``, changes) has no total
limit unless the caller gave one, but may never be silent longer than ``sock_read``.
"""


def make_transport(server: str, **options: Any) -> Transport:
    """The lean HTTP/1.1 transport where it can serve, else the aiohttp one."""
    if HTTPTransport.serves(server, options):
        return HTTPTransport(server, **options)
    return AiohttpTransport(server, **options)


class HTTPClient:
    """Sends the requests of one :class:`~aiocouch.CouchDB` client through its transport."""

    def __init__(
        self, server: str, *, timeout: aiohttp.ClientTimeout | None = None, **options: Any
    ) -> None:
        self.transport = make_transport(server, **options)
        if timeout is None:
            self.timeout = DEFAULT_TIMEOUT
            self.stream_timeout = aiohttp.ClientTimeout(
                total=None,
                connect=DEFAULT_TIMEOUT.connect,
                sock_connect=DEFAULT_TIMEOUT.sock_connect,
                sock_read=DEFAULT_TIMEOUT.sock_read,
            )
        else:
            # A caller's own limits hold for streams too (aiocouch 4.0.1 read those whole).
            self.timeout = self.stream_timeout = timeout

    @property
    def base_url(self) -> str:
        """The server URL, without credentials and trailing slash."""
        return self.transport.base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = NO_BODY,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        subject: str = "the request",
        overrides: Mapping[int, type[_TypedResponseError]] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> RawResponse:
        """Sends one request and reads the whole answer; non-2xx raises (see exception.py)."""
        return await self.transport.request(
            method,
            path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            subject=subject,
            overrides=overrides,
            timeout=timeout or self.timeout,
        )

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = NO_BODY,
        headers: Mapping[str, str] | None = None,
        subject: str = "the request",
        coalesce: bool = False,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Sends one request; yields its body piece by piece (see :meth:`Transport.stream`)."""
        return self.transport.stream(
            method,
            path,
            params=params,
            json=json,
            headers=headers,
            subject=subject,
            coalesce=coalesce,
            timeout=timeout or self.stream_timeout,
        )

    async def close(self) -> None:
        """Closes the transport's connections."""
        await self.transport.close()
