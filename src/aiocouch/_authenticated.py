"""Authentication that changes: a cookie session or a token provider, on every attempt.

:class:`AuthenticatedSender` offers the transport's two calls and adds the headers of a
strategy of :mod:`aiocouch.auth` to each attempt; on a 401 it renews them (one login or
token call for all the requests waiting) and sends the request once more, which is safe
whatever the method: CouchDB applied nothing. Fixed credentials (basic, a fixed cookie,
JWT or proxy headers) are fixed headers of the transport instead, so they cost nothing per
request (:func:`changing_authentication` sorts them out).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from ._async_context import async_context_manager
from ._body import StreamedBody
from ._transport import RawResponse, StreamedResponse, Transport
from .auth import Authentication
from .exception import RemoteResponseError, UnauthorizedError

if TYPE_CHECKING:
    from ._nodes import NodeSet

__all__ = ["AuthenticatedSender", "changing_authentication"]


class AuthenticatedSender:
    """Sends each attempt through ``transport`` with the current headers of ``auth``."""

    def __init__(
        self, transport: Transport | NodeSet, auth: Authentication, timeout: aiohttp.ClientTimeout
    ) -> None:
        self._transport = transport
        self._auth = auth
        self._timeout = timeout
        auth._bind(transport.base_url)

    async def request(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **options: Any
    ) -> RawResponse:
        """Sends the request with ``auth``'s headers; on a 401, renews them and sends it again.

        The 401 is raised if ``auth`` has nothing new to send, if the request's body cannot
        be sent again (an iterator partly sent), and after the second attempt.
        """
        auth = self._auth
        sent = await auth._headers(self._send_without_auth)
        try:
            return await self._attempt_with(auth, sent, method, path, headers, options)
        except UnauthorizedError as exc:
            refused = exc
        body = options.get("data")
        if isinstance(body, StreamedBody) and not body.can_restart():
            raise refused
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
            response = await self._transport.request(
                method, path, headers={**headers, **sent} if headers else sent, **options
            )
        except RemoteResponseError as exc:
            auth._observe(exc.headers)
            raise
        auth._observe(response.headers)
        return response

    @async_context_manager
    async def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **options: Any
    ) -> AsyncIterator[StreamedResponse]:
        """Like :meth:`request` for a stream (a 401 comes before any piece)."""
        auth = self._auth
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

    @async_context_manager
    async def _stream_with(
        self,
        auth: Authentication,
        sent: Mapping[str, str],
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        options: dict[str, Any],
    ) -> AsyncIterator[StreamedResponse]:
        """One streamed attempt with the headers ``sent``; ``auth`` sees an error's headers."""
        try:
            async with self._transport.stream(
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
        return await self._transport.request(
            method, path, json=json, subject=subject, timeout=self._timeout
        )


def changing_authentication(
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
