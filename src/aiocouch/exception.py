"""The exceptions of aiocouch, and the one table that maps an HTTP status to them.

Every non-2xx answer from the server becomes an instance of :class:`RemoteResponseError`
(a subclass of :class:`aiohttp.ClientResponseError`, so ``except aiohttp.ClientResponseError``
keeps working). The eight classes of aiocouch 4.0.1 keep their builtin bases, so
``except KeyError`` around a missing document keeps working too.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Awaitable, Mapping
from http import HTTPStatus
from typing import Any, Callable, ClassVar, NoReturn, Protocol, TypeVar, cast

import aiohttp
from aiohttp.client_reqrep import RequestInfo
from typing_extensions import ParamSpec

__all__ = [
    "BadRequestError",
    "ConflictError",
    "ConnectTimeoutError",
    "Endpoint",
    "ExpectationFailedError",
    "ForbiddenError",
    "IncompleteResponseError",
    "InternalServerError",
    "InvalidResponseError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PreconditionFailedError",
    "RangeNotSatisfiableError",
    "ReadTimeoutError",
    "RemoteResponseError",
    "RequestEntityTooLargeError",
    "ServerError",
    "ServiceUnavailableError",
    "TimeLimitError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "generator_raises",
    "raise_for_endpoint",
    "raises",
]


class RemoteResponseError(aiohttp.ClientResponseError):
    """Raised for any non-2xx answer; ``reason`` is CouchDB's ``reason`` (or None)."""

    def __init__(
        self,
        reason: str | None,
        request_info: RequestInfo | None = None,
        history: tuple[aiohttp.ClientResponse, ...] = (),
        *,
        status: int | None = None,
        message: str = "",
        headers: Any | None = None,
    ) -> None:
        super().__init__(
            cast(RequestInfo, request_info),
            history,
            status=status,
            message=message,
            headers=headers,
        )
        self.reason = reason
        self.error: str | None = None

    def __str__(self) -> str:
        url = self.request_info.real_url.with_user(None) if self.request_info else None
        return f"{self.status}, message={self.message!r}, reason={self.reason!r}, url={url}"

    def __repr__(self) -> str:
        # request_info carries the Authorization header: never show it.
        return f"{type(self).__name__}({str(self)!r}, status={self.status})"


class _TypedResponseError(RemoteResponseError):
    """Base of the classes that stand for one HTTP status; ``str(exc)`` is the message."""

    status_code: ClassVar[int] = 0

    def __new__(cls, message: str = "", **kwargs: Any) -> _TypedResponseError:
        # The builtin bases (KeyError, ...) refuse keyword arguments in __new__.
        instance: _TypedResponseError = super().__new__(cls, message)
        return instance

    def __init__(
        self,
        message: str = "",
        *,
        reason: str | None = None,
        error: str | None = None,
        status: int | None = None,
        request_info: RequestInfo | None = None,
        history: tuple[aiohttp.ClientResponse, ...] = (),
        headers: Any | None = None,
    ) -> None:
        aiohttp.ClientResponseError.__init__(
            self,
            cast(RequestInfo, request_info),
            history,
            status=status if status is not None else self.status_code,
            message=message,
            headers=headers,
        )
        self.reason = reason
        self.error = error
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadRequestError(_TypedResponseError, ValueError):
    """400: the server rejected the request (bad parameters, invalid JSON, bad rev)."""

    status_code = 400


class UnauthorizedError(_TypedResponseError, PermissionError):
    """401: missing or wrong credentials."""

    status_code = 401


class ForbiddenError(_TypedResponseError, PermissionError):
    """403: the credentials are valid but may not do this (or the account is locked out)."""

    status_code = 403


class NotFoundError(_TypedResponseError, KeyError):
    """404: the database, document, attachment, view or endpoint does not exist."""

    status_code = 404

    __str__ = KeyError.__str__


class MethodNotAllowedError(_TypedResponseError, ValueError):
    """405: the endpoint does not accept this HTTP method."""

    status_code = 405


class ConflictError(_TypedResponseError, KeyError):
    """409: the revision is stale or missing, or the object already exists."""

    status_code = 409

    __str__ = KeyError.__str__


class PreconditionFailedError(_TypedResponseError, ValueError):
    """412: a precondition failed, typically: the database already exists."""

    status_code = 412


class RequestEntityTooLargeError(_TypedResponseError, ValueError):
    """413: the document or request body exceeds the server's size limit."""

    status_code = 413


class UnsupportedMediaTypeError(_TypedResponseError, ValueError):
    """415: the request body has a content type the endpoint does not accept."""

    status_code = 415


class RangeNotSatisfiableError(_TypedResponseError, ValueError):
    """416: the requested byte range lies outside the attachment."""

    status_code = 416


class ExpectationFailedError(_TypedResponseError, ValueError):
    """417: a bulk request could not be applied as asked (e.g. ``all_or_nothing``)."""

    status_code = 417


class TooManyRequestsError(_TypedResponseError):
    """429: the server throttles this client; ``headers`` may carry ``Retry-After``."""

    status_code = 429


class ServerError(_TypedResponseError, RuntimeError):
    """5xx: the server failed to answer the request (any 5xx without its own class)."""

    status_code = 500


class InternalServerError(ServerError):
    """500: the server hit an error while executing the request."""

    status_code = 500


class ServiceUnavailableError(ServerError):
    """503: the server (or a proxy before it) is temporarily unable to answer."""

    status_code = 503


class UnexpectedStatusError(_TypedResponseError):
    """Any other non-2xx status (e.g. an unfollowed 3xx or an unusual 4xx)."""


class InvalidResponseError(RemoteResponseError):
    """The answer is not what the request asked for, so nothing of it is handed out.

    Raised for broken HTTP (framing, a head that is not HTTP/1.1), a ``Content-Encoding``
    that cannot be decoded, and a 2xx body that is not the JSON the endpoint answers
    (an HTML page from a proxy, invalid JSON or UTF-8, an empty body, the wrong type).
    ``status`` is the answer's status, or 0 when no valid status line arrived.
    """

    def __init__(
        self,
        message: str,
        request_info: RequestInfo | None = None,
        *,
        status: int = 0,
        headers: Any | None = None,
    ) -> None:
        super().__init__(None, request_info, status=status, message=message, headers=headers)

    def __str__(self) -> str:
        return self.message


class IncompleteResponseError(InvalidResponseError, aiohttp.ClientPayloadError):
    """The connection ended, or was cut, before the whole answer arrived."""


class TimeLimitError(aiohttp.ServerTimeoutError):
    """A time limit of the client passed (also an :class:`asyncio.TimeoutError`).

    The connection it concerned is closed, never reused.
    """


class ConnectTimeoutError(TimeLimitError, aiohttp.ConnectionTimeoutError):
    """No connection within ``connect`` (waiting for a free one) or ``sock_connect``."""


class ReadTimeoutError(TimeLimitError, aiohttp.SocketTimeoutError):
    """The server was silent longer than ``sock_read``, or the answer took over ``total``."""


_CLASS_FOR_STATUS: Mapping[int, type[_TypedResponseError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        MethodNotAllowedError,
        ConflictError,
        PreconditionFailedError,
        RequestEntityTooLargeError,
        UnsupportedMediaTypeError,
        RangeNotSatisfiableError,
        ExpectationFailedError,
        TooManyRequestsError,
        InternalServerError,
        ServiceUnavailableError,
    )
}

_MESSAGE_FOR_STATUS: Mapping[int, str] = {
    400: "Bad request for {subject}: {reason}",
    401: "Unauthorized for {subject}: {reason}",
    403: "Access forbidden: {reason}",
    404: "{Subject} does not exist: {reason}",
    405: "Method not allowed for {subject}: {reason}",
    409: "Conflict for {subject}: {reason}",
    412: "Precondition failed for {subject}: {reason}",
    413: "Request too large for {subject}: {reason}",
    415: "Unsupported media type for {subject}: {reason}",
    416: "Requested range not satisfiable for {subject}: {reason}",
    417: "Expectation failed for {subject}: {reason}",
    429: "Too many requests for {subject}: {reason}",
}


def class_for_status(status: int) -> type[_TypedResponseError]:
    """The exception class that stands for an HTTP status."""
    cls = _CLASS_FOR_STATUS.get(status)
    if cls is not None:
        return cls
    return ServerError if status >= 500 else UnexpectedStatusError


def error_for_response(
    status: int,
    *,
    subject: str,
    reason: str | None,
    error: str | None,
    request_info: RequestInfo | None,
    history: tuple[aiohttp.ClientResponse, ...] = (),
    headers: Any | None = None,
    overrides: Mapping[int, type[_TypedResponseError]] | None = None,
) -> _TypedResponseError:
    """Builds the exception for a non-2xx answer about ``subject`` (e.g. "document 'x'").

    Its ``__cause__`` is the answer as a plain :class:`RemoteResponseError` (same status,
    request_info and headers; ``message`` the HTTP reason phrase), as aiocouch 4.0.1
    raised its typed errors ``from`` that error.
    """
    cls = (overrides or {}).get(status) or class_for_status(status)
    template = _MESSAGE_FOR_STATUS.get(
        status, "Server answered HTTP " + str(status) + " for {subject}: {reason}"
    )
    message = template.format(
        subject=subject, Subject=subject[:1].upper() + subject[1:], reason=reason or error
    )
    exception = cls(
        message,
        reason=reason,
        error=error,
        status=status,
        request_info=request_info,
        history=history,
        headers=headers,
    )
    response_error = RemoteResponseError(
        reason,
        request_info,
        history,
        status=status,
        message=_reason_phrase(status),
        headers=headers,
    )
    response_error.error = error
    exception.__cause__ = response_error
    return exception


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- The decorators of aiocouch 4.0.1, kept for code that wraps its own calls with them. ---


class Endpoint(Protocol):
    """Any object; ``id``, ``endpoint``, ``_data`` and ``_document`` fill message placeholders."""


_GENERIC_MESSAGE = (
    "Something went wrong, but I couldn't deduce the type of exception nor format a nice "
    "exception for you. I'm sorry."
)

_LEGACY_CLASS_FOR_STATUS: Mapping[int, type[Exception]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    415: UnsupportedMediaTypeError,
    417: ExpectationFailedError,
}


def _format_message(endpoint: Any, message: str, exception: RemoteResponseError) -> str:
    reason = getattr(exception, "reason", None)
    data = getattr(endpoint, "_data", None)
    document = getattr(endpoint, "_document", None)
    document_data = getattr(document, "_data", None)
    return message.format(
        reason=reason,
        id=getattr(endpoint, "id", None),
        endpoint=getattr(endpoint, "endpoint", None),
        rev=data.get("_rev") if isinstance(data, dict) else None,
        document_id=getattr(document, "id", None),
        document_rev=document_data.get("_rev") if isinstance(document_data, dict) else None,
    )


def raise_for_endpoint(
    endpoint: Any,
    message: str,
    exception: RemoteResponseError,
    exception_type: type[Exception] | None = None,
) -> NoReturn:
    """Raises the exception that ``exception``'s status stands for, with ``message`` formatted."""
    text = _format_message(endpoint, message, exception)
    cls = exception_type or _LEGACY_CLASS_FOR_STATUS.get(exception.status)
    if cls is None:
        raise ValueError(_GENERIC_MESSAGE) from exception
    if issubclass(cls, _TypedResponseError):
        raise cls(
            text,
            reason=exception.reason,
            error=exception.error,
            status=exception.status,
            request_info=exception.request_info,
            history=exception.history,
            headers=exception.headers,
        ) from exception
    raise cls(text) from exception


_P = ParamSpec("_P")
_T = TypeVar("_T")


def raises(
    status: int, message: str, exception_type: type[Exception] | None = None
) -> Callable[[Callable[_P, Awaitable[_T]]], Callable[_P, Awaitable[_T]]]:
    """Decorates an ``async def``: a RemoteResponseError with ``status`` becomes a typed error."""

    def decorator(func: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
        @functools.wraps(func)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            try:
                return await func(*args, **kwargs)
            except RemoteResponseError as exc:
                if exc.status != status:
                    raise
                raise_for_endpoint(args[0] if args else None, message, exc, exception_type)

        return wrapper

    return decorator


def generator_raises(
    status: int, message: str, exception_type: type[Exception] | None = None
) -> Callable[[Callable[_P, AsyncGenerator[_T, None]]], Callable[_P, AsyncGenerator[_T, None]]]:
    """Like :func:`raises`, for async generators (the error surfaces during iteration)."""

    def decorator(
        func: Callable[_P, AsyncGenerator[_T, None]],
    ) -> Callable[_P, AsyncGenerator[_T, None]]:
        @functools.wraps(func)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> AsyncGenerator[_T, None]:
            try:
                async for item in func(*args, **kwargs):
                    yield item
            except RemoteResponseError as exc:
                if exc.status != status:
                    raise
                raise_for_endpoint(args[0] if args else None, message, exc, exception_type)

        return wrapper

    return decorator
