"""The only module that talks to aiohttp: the session, default headers, sending and streaming.

A request travels as ``(method, path, params, body)``. The URL is built once from the
server's base URL, the already quoted path and the encoded query, and is sent exactly as
built (no re-quoting, no dot-segment normalisation). A non-2xx answer is turned into the
exception that :func:`aiocouch.exception.error_for_response` picks, here and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from . import _json
from ._params import encode_query
from .exception import _TypedResponseError, error_for_response

__all__ = ["NO_BODY", "RawResponse", "Transport"]

NO_BODY: Any = object()
"""Marks a request without a JSON body (``None`` is a valid JSON body)."""

_JSON_CONTENT_TYPE = {"Content-Type": "application/json"}
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


@dataclass(frozen=True)
class RawResponse:
    """A whole response: status, headers and the undecoded body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON (once)."""
        return _json.loads(self.body)


class Transport:
    """An aiohttp session bound to one server, with the headers every request carries."""

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
        url = URL(server)
        if url.user is not None and not (user and password):
            user, password = url.user, url.password or ""
        self._base = str(url.with_user(None)).rstrip("/")
        self._headers: dict[str, str] = {"Accept": "application/json"}
        if auth is not None and not (user and password):
            user, password = auth.login, auth.password
        if user and password:
            self._headers["Authorization"] = _basic_authorization(user, password)
        if cookie:
            self._headers["Cookie"] = f"AuthSession={cookie}"
        if headers:
            self._headers.update(headers)
        self._session_kwargs = session_kwargs
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        """The server URL, without credentials and trailing slash."""
        return self._base

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, created on first use inside the running event loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, **self._session_kwargs)
        return self._session

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> URL:
        """The URL of ``path`` (already quoted) with ``params`` encoded, sent as built."""
        return URL(self._base + path + encode_query(params), encoded=True)

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
    ) -> RawResponse:
        """Sends one request and reads the whole answer; non-2xx raises (see exception.py)."""
        if json is not NO_BODY:
            data = _json.dumps(json)
            headers = {**_JSON_CONTENT_TYPE, **headers} if headers else _JSON_CONTENT_TYPE
        async with self.session.request(
            method, self.url(path, params), data=data, headers=headers
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
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Sends one request and yields the response to read incrementally, with no timeout."""
        data = None if json is NO_BODY else _json.dumps(json)
        if json is not NO_BODY:
            headers = {**_JSON_CONTENT_TYPE, **headers} if headers else _JSON_CONTENT_TYPE
        async with self.session.request(
            method, self.url(path, params), data=data, headers=headers, timeout=_NO_TIMEOUT
        ) as response:
            if response.status >= 300:
                raise _error(response, await response.read(), subject, None)
            yield response

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


def _error(
    response: aiohttp.ClientResponse,
    body: bytes,
    subject: str,
    overrides: Mapping[int, type[_TypedResponseError]] | None,
) -> _TypedResponseError:
    reason: str | None = None
    error: str | None = None
    with suppress(ValueError, TypeError):
        decoded = _json.loads(body)
        if isinstance(decoded, dict):
            reason = _text_or_none(decoded.get("reason") or decoded.get("message"))
            error = _text_or_none(decoded.get("error"))
    return error_for_response(
        response.status,
        subject=subject,
        reason=reason,
        error=error,
        request_info=response.request_info,
        history=response.history,
        headers=response.headers,
        overrides=overrides,
    )


def _basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` value for basic authentication, UTF-8 encoded."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
