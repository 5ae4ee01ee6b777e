"""The aiohttp transport: every server and option aiohttp supports (TLS, proxies, hooks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from ._transport import (
    COALESCE_BELOW,
    COALESCE_PAUSE,
    NO_BODY,
    RawResponse,
    Transport,
    body_and_headers,
    error_from_body,
    public_request_info,
)
from .exception import _TypedResponseError

__all__ = ["AiohttpTransport"]


class AiohttpTransport(Transport):
    """An :class:`aiohttp.ClientSession`, created on first use; options go to it."""

    def __init__(
        self,
        server: str,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        **session_kwargs: Any,
    ) -> None:
        super().__init__(
            server, user=user, password=password, cookie=cookie, headers=headers, auth=auth
        )
        self._session_kwargs = session_kwargs
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, created on first use inside the running event loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, **self._session_kwargs)
        return self._session

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
        timeout: aiohttp.ClientTimeout,
    ) -> RawResponse:
        """Sends one request and reads the whole answer; non-2xx raises (see exception.py)."""
        data, headers = body_and_headers(json, data, headers)
        async with self.session.request(
            method, self.url(path, params), data=data, headers=headers, timeout=timeout
        ) as response:
            body = await response.read()
            if response.status >= 300:
                raise _error(response, body, subject, overrides)
            return RawResponse(response.status, response.headers, body)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = NO_BODY,
        headers: Mapping[str, str] | None = None,
        subject: str = "the request",
        coalesce: bool = False,
        timeout: aiohttp.ClientTimeout,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Sends one request; yields its body piece by piece as it arrives."""
        data, headers = body_and_headers(json, None, headers)
        async with self.session.request(
            method, self.url(path, params), data=data, headers=headers, timeout=timeout
        ) as response:
            if response.status >= 300:
                raise _error(response, await response.read(), subject, None)
            yield _pieces(response.content, coalesce=coalesce)

    async def close(self) -> None:
        """Closes the session; waits briefly when TLS connections need a clean shutdown."""
        session, self._session = self._session, None
        if session is None:
            # The session is created lazily; a connector handed to us is still ours to
            # close (as aiocouch 4.0.1's eagerly created session would have done).
            connector = self._session_kwargs.get("connector")
            if connector is not None and self._session_kwargs.get("connector_owner", True):
                await connector.close()
            return
        if session.closed:
            return
        uses_tls = self._base.startswith("https")
        await session.close()
        if uses_tls:
            # aiohttp issue 1925: TLS transports close only after the loop ran once more.
            await asyncio.sleep(0.25)


async def _pieces(content: aiohttp.StreamReader, *, coalesce: bool) -> AsyncIterator[bytes]:
    while True:
        chunk = await content.readany()
        if not chunk:
            return
        if coalesce and len(chunk) < COALESCE_BELOW and not content.is_eof():
            await asyncio.sleep(COALESCE_PAUSE)
            chunk += content.read_nowait()
        yield chunk


def _error(
    response: aiohttp.ClientResponse,
    body: bytes,
    subject: str,
    overrides: Mapping[int, type[_TypedResponseError]] | None,
) -> _TypedResponseError:
    info = response.request_info
    return error_from_body(
        response.status,
        body,
        subject=subject,
        request_info=public_request_info(info.url, info.method, info.headers, info.real_url),
        headers=response.headers,
        history=response.history,
        overrides=overrides,
    )
