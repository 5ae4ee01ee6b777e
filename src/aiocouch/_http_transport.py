"""The lean transport: the HTTP/1.1 client of :mod:`._http` for ``http://`` and ``https://``.

It serves a server when the only aiohttp options given are ``trace_configs`` whose hooks
are all ``on_request_start`` (the hooks run for each request, with ``None`` for the
session) and ``ssl`` with a value it honours exactly (see :mod:`._connect`: a context,
``True``, ``False``, None). Anything else goes to aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any, Literal, cast, overload

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._async_context import async_context_manager
from ._body import StreamedBody
from ._connect import Endpoint, TLSOption, is_lean_tls_option
from ._http import ConnectionPool, HTTPConnection, ResponseHead, header_block
from ._params import encode_query
from ._transport import (
    JSON_CONTENT_TYPE,
    NO_BODY,
    RawResponse,
    StreamedResponse,
    Transport,
    body_and_headers,
    error_from_body,
    public_request_info,
)
from .exception import InvalidResponseError, _TypedResponseError

__all__ = ["HTTPTransport"]

_OPTIONS = frozenset({"user", "password", "cookie", "headers", "auth", "trace_configs", "ssl"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACE_HOOKS = frozenset(name for name in dir(aiohttp.TraceConfig) if name.startswith("on_"))
_CONNECTION_LIMIT = 100
# Methods that may be sent again when a kept-alive connection closed under the request
# before any answer came: repeating them cannot write twice.
_SAFE_TO_REPEAT = frozenset({"GET", "HEAD"})
# Smaller bodies go out in one write with the head: one copy of a few KiB costs less than
# a second write. Larger ones are written apart, piece by piece (no copy of the body).
_BODY_WRITTEN_APART = 64 * 1024
# A streamed answer goes out in pieces of at most about this size: a consumer slower than
# the network (a disk) then holds the connection's buffer and two such pieces, not three
# buffers (measured: 13 MiB traced writing 256 MiB to a file with whole-buffer pieces).
_STREAMED_PIECE = 1 << 20
_JSON_CONTENT_TYPE_LINE = header_block(JSON_CONTENT_TYPE)


class HTTPTransport(Transport):
    """Keep-alive HTTP/1.1 connections to one server, over TLS for ``https://``."""

    @staticmethod
    def serves(server: str, options: Mapping[str, Any]) -> bool:
        """True if this transport can send everything ``options`` ask for to ``server``."""
        url = URL(server)
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host or set(options) - _OPTIONS:
            return False
        if not is_lean_tls_option(options.get("ssl")):
            return False
        for config in options.get("trace_configs") or ():
            for hook in _TRACE_HOOKS - {"on_request_start"}:
                if len(getattr(config, hook)):
                    return False
        return True

    def __init__(
        self,
        server: str,
        *,
        cookie: str | None = None,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        ssl: TLSOption = None,
        **credentials: Any,
    ) -> None:
        super().__init__(server, cookie=cookie, **credentials)
        scheme = self._url.scheme
        host = self._url.raw_host or ""
        port = self._url.port or _DEFAULT_PORTS[scheme]
        self._origin = f"{self._url.scheme}://{self._url.raw_authority}"
        self._prefix = self._url.raw_path.rstrip("/")
        host_header = f"[{host}]" if ":" in host else host
        if self._url.explicit_port:
            host_header += f":{port}"
        self._header_block = header_block(
            {"Host": host_header, "User-Agent": "aiocouch", **self._headers}
        )
        self._pool = ConnectionPool(Endpoint(scheme, host, port, ssl), limit=_CONNECTION_LIMIT)
        self._trace_configs = list(trace_configs or ())
        self._shown_headers: CIMultiDictProxy[str] | None = None

    def request(
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
    ) -> Coroutine[Any, Any, RawResponse]:
        """Sends one request and reads the whole answer; non-2xx raises (see exception.py)."""
        # (not a coroutine of its own: the exchange reads the whole answer itself)
        self._check_open()
        body, headers = body_and_headers(json, data, headers)
        target = self._prefix + path + encode_query(params)
        return self._exchange(
            method,
            target,
            headers,
            body,
            timeout=timeout,
            whole=True,
            subject=subject,
            overrides=overrides,
        )

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
        self._check_open()
        body, headers = body_and_headers(json, None, headers)
        target = self._prefix + path + encode_query(params)
        connection, head = await self._exchange(
            method, target, headers, body, timeout=timeout, whole=False
        )
        try:
            if head.status >= 300:
                content = await connection.read_body()
                raise self._error(method, target, headers, head, content, subject, None)
            yield StreamedResponse(
                head.status, CIMultiDictProxy(head.headers), _pieces(connection, coalesce=coalesce)
            )
        except InvalidResponseError as exc:
            self._name_request(exc, method, target, headers)
            raise
        finally:
            self._pool.release(connection)

    async def close(self) -> None:
        """Closes the connections; a request after this raises RuntimeError."""
        self._pool.close()

    def _check_open(self) -> None:
        if self._pool.closed:
            raise RuntimeError("Session is closed")

    @overload
    async def _exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
        body: bytes | StreamedBody | None,
        *,
        timeout: aiohttp.ClientTimeout,
        whole: Literal[False],
    ) -> tuple[HTTPConnection, ResponseHead]: ...

    @overload
    async def _exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
        body: bytes | StreamedBody | None,
        *,
        timeout: aiohttp.ClientTimeout,
        whole: Literal[True],
        subject: str,
        overrides: Mapping[int, type[_TypedResponseError]] | None,
    ) -> RawResponse: ...

    async def _exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
        body: bytes | StreamedBody | None,
        *,
        timeout: aiohttp.ClientTimeout,
        whole: bool,
        subject: str = "the request",
        overrides: Mapping[int, type[_TypedResponseError]] | None = None,
    ) -> tuple[HTTPConnection, ResponseHead] | RawResponse:
        """Sends the request; returns the connection and the response head, or with
        ``whole`` the whole answer (the connection released; non-2xx raises the error of
        ``subject``, with ``overrides`` of the status table).

        The connection's timer then bounds the rest of the exchange (``sock_read``,
        ``total``); the caller of a head releases the connection.
        """
        head = self._request_head(method, target, headers, body)
        if self._trace_configs:
            await self._trace(method, target, headers)
        pool = self._pool
        # (the loop of the pool's connections: asyncio.get_running_loop() costs a getpid())
        connection = pool.take_idle()
        loop = connection.loop if connection is not None else asyncio.get_running_loop()
        now = loop.time()
        deadline = now + timeout.total if timeout.total else None
        connect_deadline = now + timeout.connect if timeout.connect else None
        if deadline is not None and (connect_deadline is None or deadline < connect_deadline):
            connect_deadline = deadline
        expect_body = method != "HEAD"
        while True:
            if connection is not None:
                reused = True
            else:
                connection, reused = await pool.acquire(
                    deadline=connect_deadline, sock_connect=timeout.sock_connect
                )
            try:
                if body is None or (type(body) is bytes and len(body) < _BODY_WRITTEN_APART):
                    connection.send(
                        head + body if body else head,
                        expect_body=expect_body,
                        sock_read=timeout.sock_read,
                        deadline=deadline,
                    )
                elif isinstance(body, StreamedBody):
                    await connection.send_streamed(
                        head,
                        body.pieces(),
                        chunked=body.length is None,
                        expect_body=expect_body,
                        sock_read=timeout.sock_read,
                        deadline=deadline,
                    )
                elif len(body) >= _BODY_WRITTEN_APART:
                    await connection.send_in_pieces(
                        head,
                        body,
                        expect_body=expect_body,
                        sock_read=timeout.sock_read,
                        deadline=deadline,
                    )
                else:
                    connection.send(
                        head + body,
                        expect_body=expect_body,
                        sock_read=timeout.sock_read,
                        deadline=deadline,
                    )
                response = connection.head_or_arrival()
                while not isinstance(response, ResponseHead):
                    await response  # (read_head(), inlined: one coroutine less per request)
                    response = connection.head_or_arrival()
                if response.encoded:
                    self._refuse_content_encoding(connection, response)
                if not whole:
                    return connection, response
                break
            except aiohttp.ServerDisconnectedError:
                self._abandon(connection)
                if reused and not connection.received and method in _SAFE_TO_REPEAT:
                    connection = None
                    continue
                raise
            except InvalidResponseError as exc:
                self._abandon(connection)
                self._name_request(exc, method, target, headers)
                raise
            except BaseException:
                self._abandon(connection)
                raise
        try:
            content = connection.take_body()
            if content is None:
                content = await connection.read_body()
        except InvalidResponseError as exc:
            self._name_request(exc, method, target, headers)
            raise
        finally:
            self._pool.release(connection)
        if response.status >= 300:
            raise self._error(method, target, headers, response, content, subject, overrides)
        return RawResponse(response.status, response.header_proxy, content)

    @staticmethod
    def _refuse_content_encoding(connection: HTTPConnection, head: ResponseHead) -> None:
        """Raises for a body in a coding other than identity (this transport decodes none)."""
        coding = head.headers.get("Content-Encoding")
        if coding is not None and coding.lower() != "identity" and not connection.complete:
            raise InvalidResponseError(
                f"The answer's Content-Encoding {coding!r} cannot be decoded "
                "(the request asked for identity)",
                status=head.status,
                headers=CIMultiDictProxy(head.headers),
            )

    def _abandon(self, connection: HTTPConnection) -> None:
        connection.close()
        self._pool.release(connection)

    def _request_head(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
        body: bytes | StreamedBody | None,
    ) -> bytes:
        head = f"{method} {target} HTTP/1.1\r\n{self._header_block}"
        if headers is JSON_CONTENT_TYPE:
            head += _JSON_CONTENT_TYPE_LINE
        elif headers:
            head += header_block(headers)
        if body is None or type(body) is bytes:
            if body is not None or method in ("POST", "PUT"):
                head += f"Content-Length: {len(body or b'')}\r\n"
        elif isinstance(body, StreamedBody):
            if body.length is None:
                head += "Transfer-Encoding: chunked\r\n"
            else:
                head += f"Content-Length: {body.length}\r\n"
        elif body is not None or method in ("POST", "PUT"):
            head += f"Content-Length: {len(body or b'')}\r\n"
        return (head + "\r\n").encode()

    def _name_request(
        self,
        error: InvalidResponseError,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
    ) -> None:
        """Gives ``error`` the request it answered (without credentials)."""
        if error.request_info is None:
            error.request_info = self._public_info(method, target, headers)

    def _public_info(
        self, method: str, target: str, headers: Mapping[str, str] | None
    ) -> aiohttp.RequestInfo:
        """The request as exceptions show it (see :func:`public_request_info`)."""
        url = URL(self._origin + target, encoded=True)
        if headers is not None:
            return public_request_info(url, method, self._request_headers(headers))
        # (most requests add no header of their own: the shown ones are taken once)
        if self._shown_headers is None:
            self._shown_headers = public_request_info(url, method, self._headers).headers
        return aiohttp.RequestInfo(url, method, self._shown_headers, url)

    def _request_headers(self, headers: Mapping[str, str] | None) -> CIMultiDict[str]:
        merged: CIMultiDict[str] = CIMultiDict(self._headers)
        if headers:
            merged.update(headers)
        return merged

    async def _trace(self, method: str, target: str, headers: Mapping[str, str] | None) -> None:
        url = URL(self._origin + target, encoded=True)
        params = aiohttp.TraceRequestStartParams(method, url, self._request_headers(headers))
        session = cast(aiohttp.ClientSession, None)
        for config in self._trace_configs:
            for hook in config.on_request_start:
                await hook(session, config.trace_config_ctx(), params)

    def _error(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
        head: ResponseHead,
        content: bytes,
        subject: str,
        overrides: Mapping[int, type[_TypedResponseError]] | None,
    ) -> _TypedResponseError:
        request_info = self._public_info(method, target, headers)
        return error_from_body(
            head.status,
            content,
            subject=subject,
            request_info=request_info,
            headers=CIMultiDictProxy(head.headers),
            overrides=overrides,
        )


async def _pieces(connection: HTTPConnection, *, coalesce: bool) -> AsyncIterator[bytes]:
    while True:
        chunk = await connection.read_chunk(coalesce=coalesce, limit=_STREAMED_PIECE)
        if not chunk:
            return
        yield chunk
