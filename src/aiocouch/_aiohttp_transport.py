"""The aiohttp transport: every server and option aiohttp supports (proxies, hooks, ...).

aiohttp's own exceptions become this package's typed ones in one place,
:func:`aiohttp_errors_mapped`, without credentials; aiohttp's silent second attempt of a
PUT or DELETE on a dropped kept-alive connection is switched off (a write is sent once).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from ssl import SSLContext
from typing import Any

import aiohttp
from yarl import URL

from ._async_context import async_context_manager
from ._body import StreamedBody
from ._transport import (
    COALESCE_BELOW,
    COALESCE_PAUSE,
    NO_BODY,
    RawResponse,
    StreamedResponse,
    Transport,
    body_and_headers,
    error_from_body,
    public_request_info,
)
from .exception import (
    ConnectTimeoutError,
    IncompleteResponseError,
    InvalidResponseError,
    ReadTimeoutError,
    RemoteResponseError,
    TimeLimitError,
    _TypedResponseError,
)

__all__ = ["AiohttpTransport", "aiohttp_errors_mapped"]

# The codings aiohttp decodes itself (brotli only with the Brotli package: else aiohttp
# raises, and that is mapped too).
_DECODED_CODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate", "br"})
_SAFE_TO_REPEAT = frozenset({"GET", "HEAD"})


class AiohttpTransport(Transport):
    """An :class:`aiohttp.ClientSession`, created on first use; options go to it, but
    ``ssl=`` (a context, ``True``, ``False``, an :class:`aiohttp.Fingerprint`) goes to
    each request."""

    def __init__(
        self,
        server: str,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        ssl: SSLContext | bool | aiohttp.Fingerprint | None = None,
        **session_kwargs: Any,
    ) -> None:
        super().__init__(
            server, user=user, password=password, cookie=cookie, headers=headers, auth=auth
        )
        if not (ssl is None or isinstance(ssl, (SSLContext, bool, aiohttp.Fingerprint))):
            raise TypeError(
                "ssl must be an ssl.SSLContext, True, False, an aiohttp.Fingerprint or None, "
                f"not {type(ssl).__name__}"
            )
        # aiohttp takes ssl= per request (a ClientSession has no such option); True
        # leaves the choice to the connector, as a request without it does.
        self._ssl = True if ssl is None else ssl
        self._session_kwargs = session_kwargs
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, created on first use inside the running event loop.

        Raises RuntimeError("Session is closed") after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("Session is closed")
        if self._session is None:
            session = aiohttp.ClientSession(headers=self._headers, **self._session_kwargs)
            # aiohttp sends a GET, PUT or DELETE again when a kept-alive connection closes
            # after the server read it: a PUT or DELETE applied once would be applied twice
            # (or answered 409). Whether to repeat is the client's decision, not aiohttp's.
            session._retry_connection = False
            self._session = session
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = NO_BODY,
        data: bytes | StreamedBody | None = None,
        headers: Mapping[str, str] | None = None,
        subject: str = "the request",
        overrides: Mapping[int, type[_TypedResponseError]] | None = None,
        timeout: aiohttp.ClientTimeout,
    ) -> RawResponse:
        """Sends one request and reads the whole answer; non-2xx raises (see exception.py)."""
        data, headers = body_and_headers(json, data, headers)
        try:
            response = await self._send(method, self.url(path, params), data, headers, timeout)
            async with response:
                with aiohttp_errors_mapped(response.request_info):
                    _refuse_undecoded(response)
                    body = await response.read()
                if response.status >= 300:
                    raise _error(response, body, subject, overrides)
                return RawResponse(response.status, response.headers, body)
        except Exception:
            # aiohttp wraps what a streamed body's source raised in a connection error.
            if isinstance(data, StreamedBody) and data.failure is not None:
                raise data.failure from None
            raise

    @async_context_manager
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
    ) -> AsyncIterator[StreamedResponse]:
        """Sends one request; yields its body piece by piece as it arrives."""
        data, headers = body_and_headers(json, None, headers)
        response = await self._send(method, self.url(path, params), data, headers, timeout)
        async with response:
            with aiohttp_errors_mapped(response.request_info):
                _refuse_undecoded(response)
                if response.status >= 300:
                    raise _error(response, await response.read(), subject, None)
            yield StreamedResponse(
                response.status, response.headers, _pieces(response, coalesce=coalesce)
            )

    async def _send(
        self,
        method: str,
        url: URL,
        data: bytes | StreamedBody | None,
        headers: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Sends the request; returns the response once its head arrived.

        A GET or HEAD whose connection closed or was reset before any answer is sent once
        more (as the lean transport and aiohttp itself do): repeating a read cannot write
        twice. A connection that could not be opened is not tried again.
        """
        session = self.session
        if isinstance(data, StreamedBody):
            return await self._send_streamed(method, url, data, headers, timeout)
        try:
            with aiohttp_errors_mapped():
                return await session.request(
                    method, url, data=data, headers=headers, timeout=timeout, ssl=self._ssl
                )
        except aiohttp.ClientConnectorError:
            raise
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            # A server closing a kept-alive connection as it is reused resets it when our
            # request arrived first (a ClientOSError), else closes it cleanly.
            if method not in _SAFE_TO_REPEAT:
                raise
        with aiohttp_errors_mapped():
            return await session.request(
                method, url, data=data, headers=headers, timeout=timeout, ssl=self._ssl
            )

    async def _send_streamed(
        self,
        method: str,
        url: URL,
        body: StreamedBody,
        headers: Mapping[str, str] | None,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Sends a request whose body is read piece by piece (chunked if its length is
        unknown).

        aiohttp bounds no wait while it writes a body (its ``sock_read`` starts after the
        body): a server that takes none of it for ``sock_read`` seconds raises
        ReadTimeoutError here, as on the lean transport.
        """
        if body.length is not None:
            headers = {**(headers or {}), "Content-Length": str(body.length)}
        limit = timeout.sock_read
        with aiohttp_errors_mapped():
            sending = asyncio.ensure_future(
                self.session.request(
                    method,
                    url,
                    data=body.pieces(),
                    headers=headers,
                    timeout=timeout,
                    ssl=self._ssl,
                )
            )
            try:
                while True:
                    done, _ = await asyncio.wait({sending}, timeout=limit)
                    if done:
                        return sending.result()
                    assert limit is not None
                    if body.awaiting_transport and time.monotonic() - body.progressed >= limit:
                        raise ReadTimeoutError(
                            f"The server took none of the request body for {limit} s (sock_read)"
                        )
            finally:
                sending.cancel()

    async def close(self) -> None:
        """Closes the session; waits briefly when TLS connections need a clean shutdown.

        A request after this raises RuntimeError("Session is closed").
        """
        self._closed = True
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


async def _pieces(response: aiohttp.ClientResponse, *, coalesce: bool) -> AsyncIterator[bytes]:
    content = response.content
    while True:
        with aiohttp_errors_mapped(response.request_info):
            chunk = await content.readany()
            if not chunk:
                return
            if coalesce and len(chunk) < COALESCE_BELOW and not content.is_eof():
                await asyncio.sleep(COALESCE_PAUSE)
                chunk += content.read_nowait()
        yield chunk


@contextmanager
def aiohttp_errors_mapped(request_info: aiohttp.RequestInfo | None = None) -> Iterator[None]:
    """Turns aiohttp's exceptions into this package's typed ones, without credentials.

    A stall past ``sock_read`` and a ``total`` limit that passed become ReadTimeoutError,
    ``connect``/``sock_connect`` ConnectTimeoutError, a body cut short or broken
    (ClientPayloadError) IncompleteResponseError, any other ClientResponseError of aiohttp
    (a malformed answer, too many redirects) InvalidResponseError. Connection errors
    (ClientConnectorError, ServerDisconnectedError) stay what aiohttp raised: code written
    for aiocouch 4.0.1 catches them. aiohttp's exception stays the ``__cause__``, with the
    credentials stripped from its request_info and its history dropped.
    """
    try:
        yield
    except (RemoteResponseError, TimeLimitError):
        raise
    except aiohttp.ConnectionTimeoutError as exc:
        raise ConnectTimeoutError(str(exc) or "Connection timeout") from exc
    except aiohttp.ServerTimeoutError as exc:
        raise ReadTimeoutError(str(exc) or "Timeout on reading data from socket") from exc
    except aiohttp.ClientPayloadError as exc:
        raise IncompleteResponseError(
            f"The answer's body is incomplete or malformed: {exc}",
            _public(request_info),
        ) from exc
    except aiohttp.ClientResponseError as exc:
        old = exc.request_info
        info = public_request_info(old.url, old.method, old.headers, old.real_url)
        exc.request_info, exc.history, exc.args = info, (), (info, ())
        # A malformed answer (aiohttp's status 400 stands for "bad message") has no status.
        malformed = type(exc) is aiohttp.ClientResponseError
        raise InvalidResponseError(
            exc.message or type(exc).__name__,
            info,
            status=0 if malformed else exc.status,
            headers=exc.headers,
        ) from exc
    except asyncio.TimeoutError as exc:
        # aiohttp's total limit raises a bare asyncio.TimeoutError.
        raise ReadTimeoutError("The exchange took longer than its total time limit") from exc


def _public(info: aiohttp.RequestInfo | None) -> aiohttp.RequestInfo | None:
    if info is None:
        return None
    return public_request_info(info.url, info.method, info.headers, info.real_url)


def _refuse_undecoded(response: aiohttp.ClientResponse) -> None:
    """Raises for a body aiohttp would hand out still encoded (it passes unknown codings)."""
    coding = response.headers.get("Content-Encoding")
    if coding is not None and coding.strip().lower() not in _DECODED_CODINGS:
        problem = f"Content-Encoding {coding!r}"
    else:
        transfer = response.headers.getall("Transfer-Encoding", None)
        # aiohttp undoes chunked (once or repeated) and hands anything else out as is.
        if transfer is None or {
            coding.strip().lower() for coding in ",".join(transfer).split(",")
        } == {"chunked"}:
            return
        problem = f"Transfer-Encoding {', '.join(transfer)!r}"
    _retire_connection(response)
    raise InvalidResponseError(
        f"The answer's {problem} cannot be decoded (the request asked for identity)",
        _public(response.request_info),
        status=response.status,
        headers=response.headers,
    )


def _retire_connection(response: aiohttp.ClientResponse) -> None:
    """Closes the connection that brought ``response``: nothing uses it again.

    aiohttp puts a connection back into its pool as soon as the whole body arrived (often
    with the head, before the caller sees the response), where response.close() no longer
    reaches it; its protocol is then closed in the pool, which skips a closed one. No other
    request can have taken it meanwhile: nothing was awaited since (unless a hook of the
    caller's suspends: a trace hook, a middleware, a raise_for_status callable).
    """
    # aiohttp keeps no public handle on a connection it took back.
    protocol = getattr(response, "_protocol", None) if response.connection is None else None
    response.close()
    if protocol is not None:
        protocol.close()


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
        # (history: responses whose request_info carries the credentials)
        overrides=overrides,
    )
