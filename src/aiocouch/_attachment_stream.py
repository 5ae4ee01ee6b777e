"""A streamed read of an attachment, whole or a byte range.

A range is asked for with ``Range: bytes=first-last``. CouchDB answers 206 with
``Content-Range`` for attachments stored as they are, but sends the whole attachment (200,
``Accept-Ranges: none``) for those it stores compressed, and pouchdb-server always sends
the whole attachment (transcript 9.10-9.12): then the range is cut from the answer here,
which reads no further than the range's end. Either way the caller gets the bytes it asked
for, or RangeNotSatisfiableError when the range starts at or past the end.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Callable

from ._transport import StreamedResponse

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
    def header(self) -> str:
        """The ``Range`` header's value (the last byte is inclusive)."""
        last = "" if self.length is None else str(self.offset + self.length - 1)
        return f"bytes={self.offset}-{last}"


class AttachmentStream:
    """The bytes of an attachment (or of a range of it) as they arrive.

    Use ``async with stream as pieces: async for piece in pieces``, or ``async for``
    on it directly (the request is then sent when the iteration starts and ends with
    it). Once open, :attr:`status`, :attr:`content_type`, :attr:`digest`,
    :attr:`length` and :attr:`total_length` describe the answer.
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
        self._cut = False
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
        self._context = self._attachment._stream(self._params, self._headers)
        response = await self._context.__aenter__()
        try:
            self._open(response)
        except BaseException:
            await self._context.__aexit__(*sys.exc_info())
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._context is not None
        return await self._context.__aexit__(exc_type, exc_value, traceback)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._opened_pieces() if self._response is None else self._pieces()

    async def _opened_pieces(self) -> AsyncIterator[bytes]:
        async with self:
            async for piece in self._pieces():
                yield piece

    def _open(self, response: StreamedResponse) -> None:
        """Reads the answer's head: what it holds, and whether the range is cut here."""
        headers = response.headers
        self.status = response.status
        self.content_type = headers.get("Content-Type")
        self._on_content_type(self.content_type)
        etag = headers.get("ETag")
        if etag is not None and not etag.startswith("W/"):
            self.digest = "md5-" + etag.strip('"')
        sent = _decimal(headers.get("Content-Length"))
        byte_range = self._range
        if response.status == 206 and byte_range is not None:
            self._take_content_range(response, byte_range, sent)
        elif response.status == 206:
            raise self._invalid("A partial answer (206) to a request without a range", response)
        else:
            self.total_length = sent
            self.length = sent
            if byte_range is not None:
                self._cut = True
                if sent is not None:
                    if byte_range.offset >= sent:
                        raise self._attachment._unsatisfiable_range(
                            self._params, self._headers, response
                        )
                    rest = sent - byte_range.offset
                    self.length = (
                        rest if byte_range.length is None else min(rest, byte_range.length)
                    )
        self._response = response

    def _take_content_range(
        self, response: StreamedResponse, byte_range: ByteRange, sent: int | None
    ) -> None:
        """Checks that the 206 answer holds the range asked for (or its start)."""
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
        if match is None:
            raise self._invalid("A partial answer (206) without a valid Content-Range", response)
        first, last = int(match[1]), int(match[2])
        total = None if match[3] == "*" else int(match[3])
        asked_last = (
            None if byte_range.length is None else byte_range.offset + byte_range.length - 1
        )
        if (
            first != byte_range.offset
            or last < first
            or (asked_last is not None and last > asked_last)
            or (total is not None and last >= total)
            or (sent is not None and sent != last - first + 1)
        ):
            raise self._invalid(
                f"The partial answer holds bytes {first}-{last} of {match[3]}, "
                f"not the range asked for ({byte_range.header})",
                response,
            )
        self.length = last - first + 1
        self.total_length = total

    async def _pieces(self) -> AsyncIterator[bytes]:
        response = self._response
        assert response is not None
        if not self._cut:
            async for piece in response:
                yield piece
            return
        assert self._range is not None
        skip, left = self._range.offset, self._range.length
        handed = False
        async for piece in response:
            if skip:
                if len(piece) <= skip:
                    skip -= len(piece)
                    continue
                piece, skip = piece[skip:], 0
            if left is not None:
                piece = piece[:left]
                left -= len(piece)
            handed = True
            yield piece
            if left == 0:
                return  # the rest is not read: the connection is closed, not reused
        if not handed:
            # The answer ended at or before the range's start.
            raise self._attachment._unsatisfiable_range(self._params, self._headers, response)

    def _invalid(self, problem: str, response: StreamedResponse) -> Exception:
        return self._attachment._invalid_answer(problem, self._params, self._headers, response)


def _decimal(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None
