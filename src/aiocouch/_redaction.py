"""What exceptions show of a request and its answer: never a credential.

Every :class:`aiohttp.ClientResponseError` that leaves the client passes through
:func:`redact`, whichever transport and authentication produced it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from ._async_context import async_context_manager
from ._transport import StreamedResponse, public_request_info, shows_no_credentials

__all__ = ["redact", "redacted"]


def redact(exc: aiohttp.ClientResponseError) -> None:
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
    if info is not None and not shows_no_credentials(info):
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
        redact(cause)
        if shared_info:
            cause.request_info = exc.request_info
        if shared_headers:
            cause.headers = exc.headers


@async_context_manager
async def redacted(
    stream: AbstractAsyncContextManager[StreamedResponse],
) -> AsyncIterator[StreamedResponse]:
    """``stream``, whose exceptions show no credentials (see :func:`redact`)."""
    try:
        async with stream as pieces:
            yield pieces
    except aiohttp.ClientResponseError as exc:
        redact(exc)
        raise
