"""A streamed read of an attachment, whole or a byte range.

A range is asked for with ``Range: bytes=first-last``. CouchDB answers 206 with
``Content-Range`` for attachments stored as they are, but sends the whole attachment (200,
``Accept-Ranges: none``) for those it stores compressed, and pouchdb-server always sends
the whole attachment (transcript 9.10-9.12): then the range is cut from the answer here,
which reads no further than the range's end. Either way the caller gets the bytes it asked
for, or RangeNotSatisfiableError when the range starts at or past the end.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Callable

from ._transport import StreamedResponse
from .retry import Repetition, judge

if TYPE_CHECKING:
    from ._remote_attachment import RemoteAttachment

__all__ = ["AttachmentStream", "ByteRange"]

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)\Z")


@dataclass(frozen=True)
class ByteRange:
    """``length`` bytes from byte ``offset`` (None: to the end)."""

    offset: int
    length: int | None

    @classmethod
    def of(cls, offset: int, length: int | None) -> ByteRange | None:
        """The range, or None for the whole attachment; ValueError for a bad one."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        if length is not None and (
            isinstance(length, bool) or not isinstance(length, int) or length < 1
        ):
            raise ValueError(f"length must be None or an int >= 1, got {length!r}")
        return None if offset == 0 and length is None else cls(offset, length)

    @property
    def last(self) -> int | None:
        """The position of the range's last byte (None: the attachment's last)."""
        return None if self.length is None else self.offset + self.length - 1

    @property
    def header(self) -> str:
        """The ``Range`` header's value."""
        return f"bytes={self.offset}-{'' if self.last is None else self.last}"


class AttachmentStream:
    """The bytes of an attachment (or of a range of it) as they arrive.

    Use ``async with stream as pieces: async for piece in pieces``, or ``async for``
    on it directly (the request is then sent when the iteration starts and ends with
    it; leave such a loop early only with ``async with``, which ends the request at
    once). Once open, :attr:`status`, :attr:`content_type`, :attr:`digest`,
    :attr:`length` and :attr:`total_length` describe the answer.

    An answer that breaks off (connection lost, body cut short, server silent longer than
    ``sock_read``, or a 502/503/504 when asking again) is resumed where it broke, as the
    client's retry policy allows (``attempts - 1`` resumes, with its pauses): the rest is
    asked for with a ``Range`` from the first byte not handed out yet, and taken only if
    its ETag (the attachment's digest) is the one of the first answer. A server that
    sends the whole attachment again has the bytes already handed out skipped. Without
    an ETag, or when the attachment changed meanwhile, the break raises.
    """

    def __init__(
        self,
        attachment: RemoteAttachment,
        byte_range: ByteRange | None,
        rev: str | None,
        on_content_type: Callable[[str | None], None],
    ) -> None:
        self._attachment = attachment
        self._range = byte_range
        self._params = {"rev": rev} if rev else {}
        self._headers = {"Range": byte_range.header} if byte_range else None
        self._on_content_type = on_content_type
        self._context: AbstractAsyncContextManager[StreamedResponse] | None = None
        self._response: StreamedResponse | None = None
        self._position = byte_range.offset if byte_range else 0
        """Where in the attachment the next byte handed out lies."""
        self._end = None if byte_range is None or byte_range.last is None else byte_range.last + 1
        self._answer_start = 0
        """Where in the attachment the current answer's body begins."""
        self.resumes = 0
        """How many times a broken answer was resumed."""
        self.status: int | None = None
        """200 (the whole attachment was sent) or 206 (the server sent the range)."""
        self.content_type: str | None = None
        self.digest: str | None = None
        """``md5-<base64>`` from the ETag (see :attr:`AttachmentInfo.digest`), or None."""
        self.length: int | None = None
        """The bytes this stream hands out, if the answer told (else None)."""
        self.total_length: int | None = None
        """The attachment's whole size, if the answer told (else None)."""

    async def __aenter__(self) -> AttachmentStream:
        if self._context is not None:
            raise RuntimeError("The attachment stream was opened already")
        await self._ask(self._range, None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if self._context is None:
            return None
        return await self._context.__aexit__(exc_type, exc_value, traceback)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._opened_pieces() if self._response is None else self._pieces()

    async def _opened_pieces(self) -> AsyncIterator[bytes]:
        async with self:
            async for piece in self._pieces():
                yield piece

    async def _pieces(self) -> AsyncIterator[bytes]:
        while True:
            response = self._response
            assert response is not None
            skip = self._position - self._answer_start
            try:
                async for piece in response:
                    if skip:
                        if len(piece) <= skip:
                            skip -= len(piece)
                            continue
                        piece, skip = piece[skip:], 0
                    if self._end is not None:
                        piece = piece[: self._end - self._position]
                    self._position += len(piece)
                    yield piece
                    if self._position == self._end:
                        return  # the rest is not read: the connection is closed, not reused
            except Exception as exc:
                await self._resume(exc)
                continue
            break
        if self._range is not None and self._position == self._range.offset:
            # A whole answer that ended at or before the range's start.
            raise self._attachment._unsatisfiable_range(self._params, self._headers, response)

    async def _ask(self, byte_range: ByteRange | None, broken: Exception | None) -> None:
        """Sends the GET (for ``byte_range``) and takes its answer's head; ``broken`` is
        the error of the answer it continues, if any."""
        self._headers = {"Range": byte_range.header} if byte_range else None
        context = self._attachment._stream(self._params, self._headers)
        response = await context.__aenter__()
        try:
            if broken is None:
                self._take_first(response)
            elif self._etag(response) != self.digest:
                raise broken  # the attachment changed: what was handed out cannot go on
            self._take_body(response, byte_range)
        except BaseException:
            await context.__aexit__(*sys.exc_info())
            raise
        self._context, self._response = context, response

    async def _resume(self, error: Exception) -> None:
        """Asks for the rest after ``error`` once the policy's pause has passed; else
        raises ``error``."""
        policy = self._attachment._remote._http.retry
        if (
            self.digest is None
            or self.resumes + 1 >= policy.attempts
            or not judge(error, Repetition.SAFE, policy)[0]
        ):
            raise error
        self.resumes += 1
        broken, self._context, self._response = self._context, None, None
        assert broken is not None
        await broken.__aexit__(None, None, None)  # (closes the broken connection)
        await asyncio.sleep(policy.wait(self.resumes, error))
        length = None if self._end is None else self._end - self._position
        await self._ask(ByteRange(self._position, length), error)

    def _take_first(self, response: StreamedResponse) -> None:
        """Reads the first answer's head: what it holds (416 if it shows the range starts
        past the end)."""
        headers = response.headers
        self.status = response.status
        self.content_type = headers.get("Content-Type")
        self._on_content_type(self.content_type)
        self.digest = self._etag(response)
        sent = _decimal(headers.get("Content-Length"))
        byte_range = self._range
        if response.status == 206:
            return  # (its Content-Range: _take_body)
        self.total_length = self.length = sent
        if byte_range is not None and sent is not None:
            if byte_range.offset >= sent:
                raise self._attachment._unsatisfiable_range(self._params, self._headers, response)
            rest = sent - byte_range.offset
            self.length = rest if byte_range.length is None else min(rest, byte_range.length)

    def _take_body(self, response: StreamedResponse, byte_range: ByteRange | None) -> None:
        """Where the answer's body begins; a 206 must hold the range asked for (or its
        start, when it ends with the attachment)."""
        if response.status != 206:
            self._answer_start = 0
            return
        if byte_range is None:
            raise self._invalid("A partial answer (206) to a request without a range", response)
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
        if match is None:
            raise self._invalid("A partial answer (206) without a valid Content-Range", response)
        first, last = int(match[1]), int(match[2])
        total = None if match[3] == "*" else int(match[3])
        sent = _decimal(response.headers.get("Content-Length"))
        if (
            first != byte_range.offset
            or last < first
            or (byte_range.last is not None and last > byte_range.last)
            or (total is not None and last >= total)
            or (sent is not None and sent != last - first + 1)
        ):
            raise self._invalid(
                f"The partial answer holds bytes {first}-{last} of {match[3]}, "
                f"not the range asked for ({byte_range.header})",
                response,
            )
        self._answer_start = first
        if self.resumes == 0:
            self.length = last - first + 1
            self.total_length = total

    @staticmethod
    def _etag(response: StreamedResponse) -> str | None:
        etag = response.headers.get("ETag")
        return None if etag is None or etag.startswith("W/") else "md5-" + etag.strip('"')

    def _invalid(self, problem: str, response: StreamedResponse) -> Exception:
        return self._attachment._invalid_answer(problem, self._params, self._headers, response)


def _decimal(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None
