"""Async context managers made of generators that survive their generator closing first.

asyncio closes the async generators a program abandoned (a ``break`` out of a streamed
iteration) when it collects them or when the loop shuts down: each one on its own, in any
order. A stream is a chain of them (the rows, the request's ``async with``, the
transport's), so the generator of an ``async with`` may be closed before the generator
around it leaves the block. Its clean-up has run then (the connection released); the
exit has nothing left to do. :func:`contextlib.asynccontextmanager` raises
``RuntimeError("generator didn't stop after athrow()")`` there instead, which asyncio
reports as an error.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TypeVar

from typing_extensions import ParamSpec

__all__ = ["async_context_manager"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def async_context_manager(
    function: Callable[_P, AsyncIterator[_T]],
) -> Callable[_P, AbstractAsyncContextManager[_T]]:
    """Like :func:`contextlib.asynccontextmanager`; an exit after the generator was closed
    lets the exception that ends the block pass on."""

    @functools.wraps(function)
    def manager(*args: _P.args, **kwargs: _P.kwargs) -> AbstractAsyncContextManager[_T]:
        generator = function(*args, **kwargs)
        return _ClosedFirstTolerant(generator, contextlib.asynccontextmanager(lambda: generator)())

    return manager


class _ClosedFirstTolerant(AbstractAsyncContextManager["_T"]):
    """contextlib's manager of ``generator``, whose exit knows when ``generator`` closed."""

    def __init__(
        self, generator: AsyncIterator[_T], manager: AbstractAsyncContextManager[_T]
    ) -> None:
        self._generator = generator
        self._manager = manager

    async def __aenter__(self) -> _T:
        return await self._manager.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        generator = self._generator
        if exc_type is not None and inspect.isasyncgen(generator) and generator.ag_frame is None:
            return False  # closed already, by asyncio: its clean-up ran
        return await self._manager.__aexit__(exc_type, exc_value, traceback)
