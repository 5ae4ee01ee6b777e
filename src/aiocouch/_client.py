"""Sends requests to the server: one transport per node, with time limits, authentication
and retries.

The transport below (:mod:`._http_transport` or :mod:`._aiohttp_transport`, chosen here)
makes exactly one attempt per call. Around it, from the inside out: with several nodes,
the choice of a healthy node for each attempt (:mod:`._nodes`); the headers of a changing
authentication on each attempt (:mod:`._authenticated`); the retry loop
(:mod:`._retrying`, as the policy of :mod:`aiocouch.retry` allows); and the removal of
credentials from every exception that leaves (:mod:`._redaction`).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import aiohttp

from ._aiohttp_transport import AiohttpTransport
from ._answers import invalid_answer
from ._authenticated import AuthenticatedSender, changing_authentication
from ._body import StreamedBody
from ._http_transport import HTTPTransport
from ._nodes import NodeSet, node_urls
from ._redaction import redact, redacted
from ._retrying import RetryingStream, after_failure, first_limits
from ._transport import NO_BODY, RawResponse, StreamedResponse, Transport
from .auth import Authentication
from .cluster import Failover, NodeStatus
from .exception import InvalidResponseError, _TypedResponseError
from .retry import AttemptLog, Repetition, RetryPolicy, default_repetition, policy_from

__all__ = ["DEFAULT_TIMEOUT", "HTTPClient", "make_transport"]

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=300, connect=60, sock_connect=30, sock_read=120)
"""The limits of a client built without ``timeout=``.

``total`` bounds a request whose whole answer is read at once (300 s, as aiohttp and
aiocouch 4.0.1); a streamed answer (``docs()``, views, ``find()``, changes) has no total
limit unless the caller gave one, but may never be silent longer than ``sock_read``.
"""


_SCOPED_TIMEOUTS: contextvars.ContextVar[Mapping[int, aiohttp.ClientTimeout] | None] = (
    contextvars.ContextVar("aiocouch_scoped_timeouts", default=None)
)
"""The limits that :meth:`HTTPClient.timeouts_within` set, by ``id`` of the client."""


def make_transport(server: str, **options: Any) -> Transport:
    """The lean HTTP/1.1 transport where it can serve, else the aiohttp one."""
    if HTTPTransport.serves(server, options):
        return HTTPTransport(server, **options)
    return AiohttpTransport(server, **options)


class HTTPClient:
    """Sends the requests of one :class:`~aiocouch.CouchDB` client through its transport,
    or through the transport of a healthy node when ``server`` names several."""

    def __init__(
        self,
        server: str | Sequence[str],
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        auth: aiohttp.BasicAuth | Authentication | None = None,
        retry: RetryPolicy | bool = True,
        failover: Failover | None = None,
        **options: Any,
    ) -> None:
        self.retry = policy_from(retry)
        urls = node_urls(server)
        if failover is not None and not isinstance(failover, Failover):
            raise TypeError(f"failover must be a Failover, not {type(failover).__name__}")
        for url in urls[1:]:
            # Only the checks: the options are set once, below, for every node alike.
            changing_authentication(url, auth, dict(options))
        changing = changing_authentication(urls[0], auth, options)
        transports = [
            make_transport(url, **_node_options(options, i)) for i, url in enumerate(urls)
        ]
        self.transport = transports[0]
        """The first node's transport (the only one, for a client of one server)."""
        self.nodes = (
            NodeSet(transports, failover or Failover(), self.retry) if len(urls) > 1 else None
        )
        """The nodes, for a client of several; None for one server."""
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
        base = self.nodes or self.transport
        self._sender: Transport | NodeSet | AuthenticatedSender = (
            base if changing is None else AuthenticatedSender(base, changing, self.timeout)
        )

    @contextmanager
    def timeouts_within(self, timeout: aiohttp.ClientTimeout) -> Iterator[None]:
        """Within the block (in this task and the tasks it starts), calls use ``timeout``.

        It holds for whole answers and streams alike, as a caller's ``timeout=`` does.
        """
        token = _SCOPED_TIMEOUTS.set({**(_SCOPED_TIMEOUTS.get() or {}), id(self): timeout})
        try:
            yield
        finally:
            _SCOPED_TIMEOUTS.reset(token)

    def _scoped_timeout(self) -> aiohttp.ClientTimeout | None:
        scoped = _SCOPED_TIMEOUTS.get()
        return None if scoped is None else scoped.get(id(self))

    def stream_limits(self) -> aiohttp.ClientTimeout:
        """The limits of a stream (the scoped ones, if a ``timeouts()`` block set some):
        also those of a whole answer that may be large, where a ``total`` would not do."""
        return self._scoped_timeout() or self.stream_timeout

    @property
    def base_url(self) -> str:
        """The server URL, without credentials and trailing slash (with several nodes:
        their URLs, comma-separated)."""
        return (self.nodes or self.transport).base_url

    def node_statuses(self) -> tuple[NodeStatus, ...]:
        """Each node's health as this client sees it (one server: always healthy)."""
        if self.nodes is None:
            return (NodeStatus(self.transport.base_url, True, 0),)
        return self.nodes.statuses()

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
        timeout: aiohttp.ClientTimeout | None = None,
        repetition: Repetition | None = None,
        attempt_log: AttemptLog | None = None,
        authenticated: bool = True,
    ) -> RawResponse:
        """Sends a request and reads the whole answer; non-2xx raises (see exception.py).

        A failed attempt is repeated as the retry policy and ``repetition`` allow (by
        default: GET and HEAD after any failure that may pass, other methods only when
        not applied); ``attempt_log``, if given, learns whether an attempt may have been
        applied although it failed. ``authenticated=False`` leaves out a changing
        authentication (a cookie session, a token provider), which then neither adds its
        headers nor sees the answer's; fixed credentials are still sent. A streamed body
        (see :mod:`._body`) is sent again only if it can start again, and has the limits of
        a stream (by default no ``total``: a large upload takes its time, but the server
        may not be silent past ``sock_read``).
        """
        sender = self._sender if authenticated else self.transport
        body = (
            data
            # (bytes and None first: isinstance of the abstract StreamedBody costs more)
            if data is not None and type(data) is not bytes and isinstance(data, StreamedBody)
            else None
        )

        scoped = _SCOPED_TIMEOUTS.get()  # (_scoped_timeout(), without the call)
        limits = (
            timeout
            or (None if scoped is None else scoped.get(id(self)))
            or (self.timeout if body is None else self.stream_timeout)
        )
        policy = self.retry
        started = time.monotonic()
        try:
            # (with_retries(), its first attempt made here: no coroutine of its own, and no
            # closure, for a request that succeeds at once)
            try:
                return await sender.request(
                    method,
                    path,
                    params=params,
                    json=json,
                    data=data,
                    headers=headers,
                    subject=subject,
                    overrides=overrides,
                    # (without a budget, the first attempt has the call's own limits)
                    timeout=limits if policy.budget is None else first_limits(policy, limits),
                )
            except Exception as exc:
                error = exc
            return await after_failure(
                error,
                started,
                policy,
                _attempts(sender, method, path, params, json, data, headers, subject, overrides),
                method,
                path,
                limits,
                repetition or default_repetition(method),
                attempt_log,
                can_repeat=None if body is None else body.can_restart,
            )
        except aiohttp.ClientResponseError as exc:
            redact(exc)
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
        repetition: Repetition = Repetition.SAFE,
        retry: RetryPolicy | None = None,
    ) -> AbstractAsyncContextManager[StreamedResponse]:
        """Sends a request; yields its body piece by piece (see :meth:`Transport.stream`).

        Every streamed endpoint reads, so by default a failure while the stream opens
        is repeated as the retry policy (``retry``, or the client's) allows; once a piece
        was handed out, never.
        """
        sender = self._sender

        def attempt(
            limits: aiohttp.ClientTimeout,
        ) -> AbstractAsyncContextManager[StreamedResponse]:
            return sender.stream(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                subject=subject,
                coalesce=coalesce,
                timeout=limits,
            )

        return redacted(
            RetryingStream(
                retry or self.retry,
                attempt,
                method,
                path,
                timeout or self.stream_limits(),
                repetition,
            )
        )

    def invalid_answer(
        self,
        problem: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        subject: str,
        *,
        status: int = 0,
        response_headers: Any | None = None,
    ) -> InvalidResponseError:
        """The error for a 2xx answer to ``method path`` that is not what was asked."""
        transport = self.transport if self.nodes is None else self.nodes.preferred
        return invalid_answer(
            problem,
            method=method,
            path=path,
            subject=subject,
            url=transport.url(path, params),
            request_headers={**transport._headers, **(headers or {})},
            status=status,
            headers=response_headers,
        )

    async def close(self) -> None:
        """Closes the transports' connections (and stops the nodes' health checks)."""
        await (self.nodes or self.transport).close()


def _attempts(
    sender: Transport | NodeSet | AuthenticatedSender,
    method: str,
    path: str,
    params: Mapping[str, Any] | None,
    json: Any,
    data: bytes | StreamedBody | None,
    headers: Mapping[str, str] | None,
    subject: str,
    overrides: Mapping[int, type[_TypedResponseError]] | None,
) -> Callable[[aiohttp.ClientTimeout], Awaitable[RawResponse]]:
    """The attempts of a request after its first: each sends it again, within ``limits``."""

    def attempt(limits: aiohttp.ClientTimeout) -> Awaitable[RawResponse]:
        return sender.request(
            method,
            path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            subject=subject,
            overrides=overrides,
            timeout=limits,
        )

    return attempt


def _node_options(options: dict[str, Any], index: int) -> dict[str, Any]:
    """The transport options of node ``index``: one ``connector=`` serves every node, and
    only the first node's session closes it."""
    if index == 0 or "connector" not in options:
        return options
    return {**options, "connector_owner": False}
