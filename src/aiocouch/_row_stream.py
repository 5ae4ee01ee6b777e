"""The rows of one streamed answer (``_all_docs``, views, ``_find``, changes), resumed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any, Callable, Protocol

import aiohttp

from ._answers import (
    describe_problem,
)
from ._client import HTTPClient
from ._resume import Continuation, NotResumable, StreamRequest
from ._rows import BodyParser, RowParser, parsed_pieces
from ._transport import JSON_CONTENT_TYPE, NO_BODY
from .exception import InvalidResponseError
from .retry import Repetition, judge
from .typing import JsonDict

__all__ = ["ObjectParser", "RowStream"]


class ObjectParser(BodyParser, Protocol):
    """A parser of a JSON object streamed around its rows, such as :class:`RowParser`."""

    def meta(self) -> dict[str, Any]: ...


class RowStream:
    """Rows of one streamed response (``rows``, ``docs`` or ``results``), read as they arrive.

    Every row is a JSON object. After the iteration ends, :attr:`meta` holds the rest of
    the last answer (``total_rows``, ``offset``, ``bookmark``, ``last_seq``...). A body
    that is not the expected JSON raises InvalidResponseError (the streamed status is not
    known, so its ``status`` is 0) once the rows before the fault are handed out.

    With a ``continuation`` (see :mod:`aiocouch._resume`), an answer that breaks after its
    head (connection lost, body cut short, server silent longer than ``sock_read``) is
    resumed where that is exact: the rows already handed out are not asked for again, and
    a row is handed out only once it was received whole, as often as the client's retry
    policy allows (``attempts - 1`` resumes per iteration, with its pauses); then, or where
    no exact resume exists, the error is raised.

    ``parser`` makes the parser of each answer, instead of a :class:`RowParser` of the
    ``array_key`` array (a multi-query answer has its rows one level deeper).
    """

    def __init__(
        self,
        client: HTTPClient,
        method: str,
        path: str,
        array_key: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = NO_BODY,
        subject: str,
        continuation: Callable[[StreamRequest], Continuation] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        parser: Callable[[], ObjectParser] | None = None,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._path = path
        self._subject = subject
        self._parser = parser or functools.partial(RowParser, array_key)
        self._first = StreamRequest(method, params, json)
        self._current = self._first
        self._continuation = continuation
        self.meta: JsonDict = {}
        self.resumes = 0
        """How many times this iteration resumed a broken answer."""

    async def batches(self) -> AsyncIterator[list[tuple[Any, str]]]:
        """The rows as they arrive, a list per read, each row with its JSON text."""
        continuation = self._continuation(self._first) if self._continuation else None
        request: StreamRequest | None = self._first
        while request is not None:
            self._current = request
            answered = False
            try:
                parser = self._parser()
                async with self._client.stream(
                    request.method,
                    self._path,
                    params=request.params,
                    json=request.json,
                    subject=self._subject,
                    coalesce=True,
                    timeout=self._timeout,
                ) as pieces:
                    answered = True
                    async for rows in parsed_pieces(pieces, parser, self.invalid):
                        if continuation is not None:
                            rows = continuation.take(rows)
                        if rows:
                            yield rows
                try:
                    self.meta = parser.meta()
                except ValueError as exc:
                    raise self.invalid(exc) from exc
            except Exception as exc:
                # A first request that got no answer is for the client's retries to repeat;
                # once an answer began (or while resuming), the break is resumed here, as
                # the client's retry policy allows (a broken answer, a 503...).
                if continuation is None or not (answered or self.resumes):
                    raise
                if not judge(exc, Repetition.SAFE, self._client.retry)[0]:
                    raise
                request = await self._resume(continuation, exc)
                continue
            request = continuation.after_end() if continuation is not None else None

    def invalid(self, exc: ValueError) -> InvalidResponseError:
        """The error for a row (or body) of this answer that ``exc`` says is wrong."""
        request = self._current
        headers = None if request.json is NO_BODY else JSON_CONTENT_TYPE
        return self._client.invalid_answer(
            describe_problem(exc),
            request.method,
            self._path,
            request.params,
            headers,
            self._subject,
        )

    async def _resume(
        self, continuation: Continuation, error: BaseException
    ) -> StreamRequest | None:
        """The request for the rest after ``error``, once the policy's pause has passed.

        An iteration resumes at most ``attempts - 1`` times (the retry policy's count).
        """
        policy = self._client.retry
        if self.resumes + 1 >= policy.attempts:
            raise error
        try:
            request = continuation.resume()
        except NotResumable:
            raise error from None
        self.resumes += 1
        await asyncio.sleep(policy.wait(self.resumes, error))
        return request

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for batch in self.batches():
            for row, _ in batch:
                yield row
