"""The one place where a failed attempt is repeated, as the retry policy allows.

:func:`with_retries` repeats a whole request; :class:`RetryingStream` repeats only the
opening of a stream (once a piece of its body was handed out, never).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Callable, TypeVar

import aiohttp

from ._transport import StreamedResponse
from .retry import AttemptLog, Repetition, RetryPolicy, judge

__all__ = ["RetryingStream", "after_failure", "first_limits", "with_retries"]

_T = TypeVar("_T")
_log = logging.getLogger("aiocouch")

StreamAttempt = Callable[[aiohttp.ClientTimeout], AbstractAsyncContextManager[StreamedResponse]]


async def with_retries(
    policy: RetryPolicy,
    attempt: Callable[[aiohttp.ClientTimeout], Awaitable[_T]],
    method: str,
    path: str,
    timeout: aiohttp.ClientTimeout,
    repetition: Repetition,
    attempt_log: AttemptLog | None,
    can_repeat: Callable[[], bool] | None = None,
) -> _T:
    """``attempt(limits)`` until it succeeds, the policy gives up or the budget is spent.

    Each attempt gets the call's limits, its ``total`` shrunk to what is left of the
    budget; a wait that would end after the budget is not begun. ``attempt_log`` learns
    whether a failed attempt may have been applied. ``can_repeat()``, if given, can
    forbid a repeat (a request body that cannot be sent again).
    """
    started = time.monotonic()
    try:
        return await attempt(first_limits(policy, timeout))
    except Exception as exc:
        error = exc
    return await after_failure(
        error, started, policy, attempt, method, path, timeout, repetition, attempt_log, can_repeat
    )


def first_limits(policy: RetryPolicy, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """The limits of a call's first attempt (see :func:`with_retries`)."""
    return _within(timeout, policy.budget if policy.budget is not None else timeout.total)


async def after_failure(
    error: Exception,
    started: float,
    policy: RetryPolicy,
    attempt: Callable[[aiohttp.ClientTimeout], Awaitable[_T]],
    method: str,
    path: str,
    timeout: aiohttp.ClientTimeout,
    repetition: Repetition,
    attempt_log: AttemptLog | None,
    can_repeat: Callable[[], bool] | None = None,
) -> _T:
    """:func:`with_retries` after its first attempt, begun at ``started``
    (``time.monotonic()``), failed with ``error``: raises it, or what the last repeat
    raised, unless a repeat succeeds.

    A caller may make the first attempt itself, with :func:`first_limits`, and call this
    only when it fails: a call that succeeds at once then costs no coroutine here.
    """
    budget = policy.budget if policy.budget is not None else timeout.total
    repeat = 0
    while True:
        may_repeat, uncertain = judge(error, repetition, policy)
        if uncertain and attempt_log is not None:
            attempt_log.uncertain = True
        repeat += 1
        if not may_repeat or repeat >= policy.attempts:
            raise error
        if can_repeat is not None and not can_repeat():
            raise error
        pause = policy.wait(repeat, error)
        left = None if budget is None else budget - (time.monotonic() - started)
        if left is not None and pause >= left:
            raise error
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
        limits = timeout
        if budget is not None:
            limits = _within(timeout, budget - (time.monotonic() - started))
        try:
            return await attempt(limits)
        except Exception as exc:
            error = exc


class RetryingStream:
    """A streamed call whose opening is repeated like a whole request; its body never is."""

    def __init__(
        self,
        policy: RetryPolicy,
        attempt: StreamAttempt,
        method: str,
        path: str,
        timeout: aiohttp.ClientTimeout,
        repetition: Repetition,
    ) -> None:
        self._policy = policy
        self._attempt = attempt
        self._request = (method, path, timeout, repetition)
        self._opened: AbstractAsyncContextManager[StreamedResponse] | None = None

    async def __aenter__(self) -> StreamedResponse:
        async def open_stream(
            limits: aiohttp.ClientTimeout,
        ) -> tuple[AbstractAsyncContextManager[StreamedResponse], StreamedResponse]:
            stream = self._attempt(limits)
            return stream, await stream.__aenter__()

        method, path, timeout, repetition = self._request
        self._opened, pieces = await with_retries(
            self._policy, open_stream, method, path, timeout, repetition, None
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
