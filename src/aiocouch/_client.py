"""Sends requests to the server: one transport, wrapped with time limits and authentication.

The transport below (:mod:`._http_transport` or :mod:`._aiohttp_transport`, chosen here)
makes exactly one attempt per call; this layer decides the time limits of each call and
adds the headers of a changing authentication (:mod:`aiocouch.auth`): a cookie session or
a token provider, renewed and the request repeated once on a 401. Fixed credentials
(basic, a fixed cookie, JWT or proxy headers) are fixed headers of the transport instead,
so they cost nothing per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._aiohttp_transport import AiohttpTransport
from ._http_transport import HTTPTransport
from ._transport import NO_BODY, RawResponse, Transport, public_request_info
from .auth import Authentication
from .exception import RemoteResponseError, UnauthorizedError, _TypedResponseError

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
        self,
        server: str,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        auth: aiohttp.BasicAuth | Authentication | None = None,
        **options: Any,
    ) -> None:
        self._auth = _changing_authentication(server, auth, options)
        self.transport = make_transport(server, **options)
        if self._auth is not None:
            self._auth._bind(self.transport.base_url)
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
        try:
            if self._auth is None:
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
            return await self._authenticated_request(
                self._auth,
                method,
                path,
                headers,
                params=params,
                json=json,
                data=data,
                subject=subject,
                overrides=overrides,
                timeout=timeout or self.timeout,
            )
        except aiohttp.ClientResponseError as exc:
            _hide_credentials(exc)
            raise

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
        if self._auth is None:
            return _credentials_hidden(
                self.transport.stream(
                    method,
                    path,
                    params=params,
                    json=json,
                    headers=headers,
                    subject=subject,
                    coalesce=coalesce,
                    timeout=timeout or self.stream_timeout,
                )
            )
        return _credentials_hidden(
            self._authenticated_stream(
                self._auth,
                method,
                path,
                headers,
                params=params,
                json=json,
                subject=subject,
                coalesce=coalesce,
                timeout=timeout or self.stream_timeout,
            )
        )

    async def close(self) -> None:
        """Closes the transport's connections."""
        await self.transport.close()

    # -- authentication that changes (aiocouch.auth): headers per request, renewal on 401 --

    async def _authenticated_request(
        self,
        auth: Authentication,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        **options: Any,
    ) -> RawResponse:
        """Sends the request with ``auth``'s headers; on a 401, renews them and sends it again.

        The 401 is raised if ``auth`` has nothing new to send, and after the second attempt.
        """
        sent = await auth._headers(self._send_without_auth)
        try:
            return await self._attempt_with(auth, sent, method, path, headers, options)
        except UnauthorizedError as exc:
            refused = exc
        if not await auth._renew(self._send_without_auth, sent):
            raise refused
        sent = await auth._headers(self._send_without_auth)
        return await self._attempt_with(auth, sent, method, path, headers, options)

    async def _attempt_with(
        self,
        auth: Authentication,
        sent: Mapping[str, str],
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        options: dict[str, Any],
    ) -> RawResponse:
        """One attempt with the headers ``sent``; ``auth`` sees the answer's headers."""
        try:
            response = await self.transport.request(
                method, path, headers={**headers, **sent} if headers else sent, **options
            )
        except RemoteResponseError as exc:
            auth._observe(exc.headers)
            raise
        auth._observe(response.headers)
        return response

    @asynccontextmanager
    async def _authenticated_stream(
        self,
        auth: Authentication,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        **options: Any,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Like :meth:`_authenticated_request` for a stream (a 401 comes before any piece)."""
        async with AsyncExitStack() as stack:
            sent = await auth._headers(self._send_without_auth)
            try:
                pieces = await stack.enter_async_context(
                    self._stream_with(auth, sent, method, path, headers, options)
                )
            except UnauthorizedError as exc:
                refused: UnauthorizedError | None = exc
            else:
                refused = None
            if refused is not None:
                if not await auth._renew(self._send_without_auth, sent):
                    raise refused
                sent = await auth._headers(self._send_without_auth)
                pieces = await stack.enter_async_context(
                    self._stream_with(auth, sent, method, path, headers, options)
                )
            yield pieces

    @asynccontextmanager
    async def _stream_with(
        self,
        auth: Authentication,
        sent: Mapping[str, str],
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        options: dict[str, Any],
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """One streamed attempt with the headers ``sent``; ``auth`` sees an error's headers."""
        try:
            async with self.transport.stream(
                method, path, headers={**headers, **sent} if headers else sent, **options
            ) as pieces:
                yield pieces
        except RemoteResponseError as exc:
            auth._observe(exc.headers)
            raise

    async def _send_without_auth(
        self, method: str, path: str, *, json: Any, subject: str
    ) -> RawResponse:
        """Sends one request (the login) without the authentication's headers."""
        return await self.transport.request(
            method, path, json=json, subject=subject, timeout=self.timeout
        )


def _changing_authentication(
    server: str, auth: aiohttp.BasicAuth | Authentication | None, options: dict[str, Any]
) -> Authentication | None:
    """The strategy whose headers change, if any; fixed credentials go into ``options``."""
    if auth is None:
        return None
    if isinstance(auth, aiohttp.BasicAuth):
        options["auth"] = auth
        return None
    if not isinstance(auth, Authentication):
        raise TypeError(
            "auth= takes an aiohttp.BasicAuth or a strategy of aiocouch.auth, "
            f"not {type(auth).__name__}"
        )
    given = (options.get("user") and options.get("password")) or options.get("cookie")
    if given or URL(server).user is not None:
        raise ValueError(
            "Give the credentials once: auth=, or user and password (or cookie=, or a URL "
            "with credentials), not both"
        )
    fixed = auth._fixed_headers()
    if fixed is None:
        return auth
    options["headers"] = {**(options.get("headers") or {}), **fixed}
    return None


def _hide_credentials(exc: aiohttp.ClientResponseError) -> None:
    """Removes what could show credentials from an exception of a response, in place.

    ``Set-Cookie`` (a live session cookie) leaves its headers, the credential headers its
    ``request_info``, and a redirect ``history`` is dropped: each of its responses carries
    the first request with its credentials.
    """
    headers = exc.headers
    if headers is not None and "Set-Cookie" in headers:
        exc.headers = CIMultiDictProxy(
            CIMultiDict(
                (name, value) for name, value in headers.items() if name.lower() != "set-cookie"
            )
        )
    info, history = exc.request_info, exc.history
    if info is not None:
        exc.request_info = public_request_info(info.url, info.method, info.headers, info.real_url)
    exc.history = ()
    # aiohttp's own classes keep both in ``args`` too (their repr shows them).
    exc.args = tuple(
        exc.request_info if arg is info else () if arg is history else arg for arg in exc.args
    )
    # A typed error's cause is the plain response error (as in 4.0.1), sharing its parts.
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientResponseError):
        shared_info, shared_headers = cause.request_info is info, cause.headers is headers
        _hide_credentials(cause)
        if shared_info:
            cause.request_info = exc.request_info
        if shared_headers:
            cause.headers = exc.headers


@asynccontextmanager
async def _credentials_hidden(
    stream: AbstractAsyncContextManager[AsyncIterator[bytes]],
) -> AsyncIterator[AsyncIterator[bytes]]:
    """``stream``, whose exceptions show no credentials (see :func:`_hide_credentials`)."""
    try:
        async with stream as pieces:
            yield pieces
    except aiohttp.ClientResponseError as exc:
        _hide_credentials(exc)
        raise
