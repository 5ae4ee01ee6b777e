"""How a request reaches the server: the transport interface, its shared parts, the choice.

A request travels as ``(method, path, params, body)``. The URL is built once from the
server's base URL, the already quoted path and the encoded query, and is sent exactly as
built (no re-quoting, no dot-segment normalisation). A non-2xx answer is turned into the
exception that :func:`aiocouch.exception.error_for_response` picks, here and nowhere else.

Two transports implement the interface: :mod:`._http_transport` (a lean HTTP/1.1 client,
used for ``http://`` and ``https://`` servers when no aiohttp-specific option is given; its
connections are opened, with TLS or without, by :mod:`._connect`) and
:mod:`._aiohttp_transport` (everything else: proxies, connectors, trace hooks...).
:mod:`._client` picks one and wraps it with time limits, authentication and retries; a
transport makes exactly one attempt per call.

Every call gets its time limits as an :class:`aiohttp.ClientTimeout`: ``sock_connect``
bounds opening a connection, ``connect`` getting one (including the wait for a free pooled
connection), ``sock_read`` any silence of the server while an answer is awaited or read,
and ``total`` the whole exchange (for a stream: until its context exits). A limit that
passes raises :class:`~aiocouch.exception.ConnectTimeoutError` or
:class:`~aiocouch.exception.ReadTimeoutError` and closes that connection.
"""

from __future__ import annotations

import abc
import base64
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import _json
from ._body import StreamedBody
from ._params import encode_query
from .exception import _TypedResponseError, error_for_response

__all__ = [
    "NO_BODY",
    "RawResponse",
    "StreamedResponse",
    "Transport",
    "check_headers",
    "public_request_info",
    "shows_no_credentials",
]

NO_BODY: Any = object()
"""Marks a request without a JSON body (``None`` is a valid JSON body)."""

JSON_CONTENT_TYPE = {"Content-Type": "application/json"}
COALESCE_BELOW = 1 << 16
"""A streamed read smaller than this waits :data:`COALESCE_PAUSE` seconds for more data."""
COALESCE_PAUSE = 0.001
_SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-auth-couchdb-token"}
)
# RFC 9110: a field name is a token; a value holds no control character but HTAB.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class RawResponse:
    """A whole response: status, headers and the undecoded body.

    ``headers`` may be given as a function that makes them, called when they are first
    read: the lean transport then decodes no header field that nobody reads.
    """

    __slots__ = ("_headers", "body", "status")

    def __init__(
        self,
        status: int,
        headers: CIMultiDictProxy[str] | Callable[[], CIMultiDictProxy[str]],
        body: bytes,
    ) -> None:
        self.status = status
        self._headers = headers
        self.body = body

    def read_headers(self) -> CIMultiDictProxy[str]:
        """The headers (made on the first call, if they were given as a function)."""
        headers = self._headers
        if not isinstance(headers, CIMultiDictProxy):
            headers = self._headers = headers()
        return headers

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The headers of the response."""
        return self.read_headers()

    def json(self) -> Any:
        """The body decoded as JSON (once)."""
        return _json.loads(self.body)


class StreamedResponse(AsyncIterator[bytes]):
    """The body of a streamed answer, piece by piece, with the answer's status and headers."""

    __slots__ = ("_pieces", "headers", "status")

    def __init__(
        self, status: int, headers: CIMultiDictProxy[str], pieces: AsyncIterator[bytes]
    ) -> None:
        self.status = status
        self.headers = headers
        self._pieces = pieces

    def __aiter__(self) -> StreamedResponse:
        return self

    async def __anext__(self) -> bytes:
        return await self._pieces.__anext__()


class Transport(abc.ABC):
    """Sends requests to one server, with the headers every request carries.

    Raises ValueError for a header that could not be sent as given (see
    :func:`check_headers`); ``close()`` ends it: a call after that raises
    ``RuntimeError("Session is closed")`` and connects nowhere.
    """

    def __init__(
        self,
        server: str,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
    ) -> None:
        url = URL(server)
        if url.user is not None and not (user and password):
            user, password = url.user, url.password or ""
        self._url = url.with_user(None)
        self._base = str(self._url).rstrip("/")
        # identity: a compressed body would be buffered (feeds stall) and, on the lean
        # transport, not decoded.
        self._headers: dict[str, str] = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        if auth is not None and not (user and password):
            user, password = auth.login, auth.password
        if user and password:
            self._headers["Authorization"] = _basic_authorization(user, password)
        if cookie:
            self._headers["Cookie"] = f"AuthSession={cookie}"
        if headers:
            self._headers.update(headers)
        check_headers(self._headers)

    @property
    def base_url(self) -> str:
        """The server URL, without credentials and trailing slash."""
        return self._base

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> URL:
        """The URL of ``path`` (already quoted) with ``params`` encoded, sent as built."""
        return URL(self._base + path + encode_query(params), encoded=True)

    @abc.abstractmethod
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
        """Sends one request and reads the whole answer; non-2xx raises (see exception.py).

        A :class:`StreamedBody` is sent piece by piece as the connection drains; what its
        source raises (``body.failure``) is raised as it is, and the connection closed.
        """

    @abc.abstractmethod
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
        timeout: aiohttp.ClientTimeout,
    ) -> AbstractAsyncContextManager[StreamedResponse]:
        """Sends one request; yields its body piece by piece as it arrives.

        With ``coalesce``, small reads wait a millisecond for more data: CouchDB writes
        rows in small pieces, and each read costs client CPU (measured: 31,000 reads of a
        45 MB body fell to 2,500). Feeds that must deliver each line at once do not.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Closes the connections."""


def body_and_headers(
    json: Any, data: bytes | StreamedBody | None, headers: Mapping[str, str] | None
) -> tuple[bytes | StreamedBody | None, Mapping[str, str] | None]:
    """The request body (``json`` encoded, or ``data``) and the headers it needs.

    Raises ValueError, before anything is sent, for a header of the caller's that could
    not be sent as given.
    """
    if headers and headers is not JSON_CONTENT_TYPE:
        check_headers(headers)
    if json is NO_BODY:
        return data, headers
    return _json.dumps(json), {**JSON_CONTENT_TYPE, **headers} if headers else JSON_CONTENT_TYPE


def error_from_body(
    status: int,
    body: bytes,
    *,
    subject: str,
    request_info: aiohttp.RequestInfo | None,
    headers: Any,
    history: tuple[aiohttp.ClientResponse, ...] = (),
    overrides: Mapping[int, type[_TypedResponseError]] | None = None,
) -> _TypedResponseError:
    """The exception for a non-2xx answer, with CouchDB's ``error``/``reason`` from its body."""
    reason: str | None = None
    error: str | None = None
    # (a HEAD answer has no body: no decoding, and no exception to catch)
    with suppress(ValueError, TypeError):
        decoded = _json.loads(body) if body else None
        if isinstance(decoded, dict):
            reason = _text_or_none(decoded.get("reason") or decoded.get("message"))
            error = _text_or_none(decoded.get("error"))
    return error_for_response(
        status,
        subject=subject,
        reason=reason,
        error=error,
        request_info=request_info,
        history=history,
        headers=headers,
        overrides=overrides,
    )


def check_headers(headers: Mapping[str, Any]) -> None:
    """Refuses a header name that is no token and a value with a control character.

    Every character below 0x20 but HTAB, and DEL, could end the header line, split the
    request or be read differently by a proxy: ValueError naming the header, not its value
    (which may be a credential).
    """
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"Invalid HTTP header name {name!r}")
        if _CONTROL_CHARACTER.search(str(value)):
            raise ValueError(f"Control character in the value of the HTTP header {name!r}")


def public_request_info(
    url: URL, method: str, headers: Mapping[str, str], real_url: URL | None = None
) -> aiohttp.RequestInfo:
    """The request as exceptions show it: without credentials.

    This is the one place that strips them: ``Authorization``, ``Proxy-Authorization``,
    ``Cookie`` (the ``AuthSession`` cookie) and ``X-Auth-CouchDB-Token`` (proxy
    authentication).
    """
    shown: CIMultiDict[str] = CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() not in _SECRET_HEADERS
    )
    return aiohttp.RequestInfo(url, method, CIMultiDictProxy(shown), real_url or url)


def shows_no_credentials(info: aiohttp.RequestInfo) -> bool:
    """True if ``info`` holds none of the headers :func:`public_request_info` strips."""
    return _SECRET_HEADERS.isdisjoint(map(str.lower, info.headers))


def _basic_authorization(user: str, password: str) -> str:
    """The ``Authorization`` value for basic authentication, UTF-8 encoded."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
