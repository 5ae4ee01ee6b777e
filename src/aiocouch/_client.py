"""Sends requests to the server: one transport, wrapped with time limits and retries.

The transport below (:mod:`._http_transport` or :mod:`._aiohttp_transport`, chosen here)
makes exactly one attempt per call; this layer decides the time limits of each call and
repeats the calls that failed in a way that may pass, where the policy of
:mod:`aiocouch.retry` allows it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Callable, TypeVar

import aiohttp

from ._aiohttp_transport import AiohttpTransport
from ._http_transport import HTTPTransport
from ._transport import NO_BODY, RawResponse, Transport
from .exception import _TypedResponseError
from .retry import AttemptLog, Repetition, RetryPolicy, default_repetition, judge, policy_from

__all__ = ["DEFAULT_TIMEOUT", "HTTPClient", "make_transport"]

_T = TypeVar("_T")
_log = logging.getLogger("aiocouch")

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
        retry: RetryPolicy | bool = True,
        **options: Any,
    ) -> None:
        self.retry = policy_from(retry)
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
        repetition: Repetition | None = None,
        attempt_log: AttemptLog | None = None,
    ) -> RawResponse:
        """Sends a request and reads the whole answer; non-2xx raises (see exception.py).

        A failed attempt is repeated as the retry policy and ``repetition`` allow (by
        default: GET and HEAD after any failure that may pass, other methods only when
        not applied); ``attempt_log``, if given, learns whether an attempt may have been
        applied although it failed.
        """

        def attempt(limits: aiohttp.ClientTimeout) -> Awaitable[RawResponse]:
            return self.transport.request(
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

        return await self._with_retries(
            attempt,
            method,
            path,
            timeout or self.timeout,
            repetition or default_repetition(method),
            attempt_log,
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
        repetition: Repetition = Repetition.SAFE,
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Sends a request; yields its body piece by piece (see :meth:`Transport.stream`).

        Every streamed endpoint reads, so by default a failure while the stream opens
        is repeated as the retry policy allows; once a piece was handed out, never.
        """

        def attempt(
            limits: aiohttp.ClientTimeout,
        ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
            return self.transport.stream(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                subject=subject,
                coalesce=coalesce,
                timeout=limits,
            )

        return _RetryingStream(
            self, attempt, method, path, timeout or self.stream_timeout, repetition
        )

    async def close(self) -> None:
        """Closes the transport's connections."""
        await self.transport.close()

    # --- retries: the one place where a failed attempt is repeated ---

    async def _with_retries(
        self,
        attempt: Callable[[aiohttp.ClientTimeout], Awaitable[_T]],
        method: str,
        path: str,
        timeout: aiohttp.ClientTimeout,
        repetition: Repetition,
        attempt_log: AttemptLog | None,
    ) -> _T:
        """``attempt(limits)`` until it succeeds, the policy gives up or the budget is spent.

        Each attempt gets the call's limits, its ``total`` shrunk to what is left of the
        budget; a wait that would end after the budget is not begun.
        """
        policy = self.retry
        started = time.monotonic()
        budget = policy.budget if policy.budget is not None else timeout.total
        limits = _within(timeout, budget)
        repeat = 0
        while True:
            try:
                return await attempt(limits)
            except Exception as error:
                may_repeat, uncertain = judge(error, repetition, policy)
                if uncertain and attempt_log is not None:
                    attempt_log.uncertain = True
                repeat += 1
                if not may_repeat or repeat >= policy.attempts:
                    raise
                pause = policy.wait(repeat, error)
                left = None if budget is None else budget - (time.monotonic() - started)
                if left is not None and pause >= left:
                    raise
                _log.debug(
                    "%s %s failed (%s); attempt %d of %d in %.2f s",
                    method,
                    path,
                    type(error).__name__,
                    repeat + 1,
                    policy.attempts,
                    pause,
                )
            await asyncio.sleep(pause)
            if budget is not None:
                limits = _within(timeout, budget - (time.monotonic() - started))


class _RetryingStream:
    """A streamed call whose opening is repeated like a whole request; its body never is."""

    def __init__(
        self,
        client: HTTPClient,
        attempt: Callable[
            [aiohttp.ClientTimeout], AbstractAsyncContextManager[AsyncIterator[bytes]]
        ],
        method: str,
        path: str,
        timeout: aiohttp.ClientTimeout,
        repetition: Repetition,
    ) -> None:
        self._client = client
        self._attempt = attempt
        self._request = (method, path, timeout, repetition)
        self._opened: AbstractAsyncContextManager[AsyncIterator[bytes]] | None = None

    async def __aenter__(self) -> AsyncIterator[bytes]:
        async def open_stream(
            limits: aiohttp.ClientTimeout,
        ) -> tuple[AbstractAsyncContextManager[AsyncIterator[bytes]], AsyncIterator[bytes]]:
            stream = self._attempt(limits)
            return stream, await stream.__aenter__()

        method, path, timeout, repetition = self._request
        self._opened, pieces = await self._client._with_retries(
            open_stream, method, path, timeout, repetition, None
        )
        return pieces

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._opened is not None
        return await self._opened.__aexit__(exc_type, exc_value, traceback)


def _within(timeout: aiohttp.ClientTimeout, seconds: float | None) -> aiohttp.ClientTimeout:
    """``timeout`` with its ``total`` limit shrunk to ``seconds``, if that is shorter.

    A call without a ``total`` limit (a stream, by default) keeps none.
    """
    if seconds is None or timeout.total is None or timeout.total <= seconds:
        return timeout
    return aiohttp.ClientTimeout(
        total=max(seconds, 0.001),
        connect=timeout.connect,
        sock_read=timeout.sock_read,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )
