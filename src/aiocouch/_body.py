"""Request bodies sent piece by piece: a file, a binary file object, an async iterable.

A :class:`StreamedBody` is never held whole in memory: each transport takes its pieces one
at a time as the connection drains. Its length is known (sent as ``Content-Length``) or
not (sent with the chunked transfer coding, which CouchDB and pouchdb-server accept for
attachments). Whether a failed request may be sent again depends on the body: a file (by
path, or a seekable file object) can start again from its beginning; an iterator can
only be sent while none of it was taken (:meth:`StreamedBody.can_restart`).
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import io
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import IO, Any, Union

__all__ = ["BodySource", "StreamedBody", "content_digest", "streamed_body"]

PIECE_SIZE = 1 << 20
"""Bytes read from a file at a time (in a worker thread: a disk may be slow)."""

BodySource = Union[str, "os.PathLike[str]", IO[bytes], AsyncIterable[bytes]]
"""What an upload reads from: a file path, a binary file object or an async iterable."""


class StreamedBody(abc.ABC):
    """A request body sent piece by piece; ``length`` None: unknown (sent chunked)."""

    def __init__(self, length: int | None) -> None:
        self.length = length
        self.started = False
        """True once a piece was taken from the source (it may be on its way)."""
        self.failure: BaseException | None = None
        """What the source raised during the last sending, if anything."""
        self.awaiting_transport = False
        """True while a piece handed to the transport waits for it to ask for the next
        (while it is written: the server's time, not the source's)."""
        self.progressed = 0.0
        """When (``time.monotonic()``) the last piece was handed to the transport."""

    @property
    @abc.abstractmethod
    def repeatable(self) -> bool:
        """Whether the body can be sent again from its beginning."""

    def can_restart(self) -> bool:
        """Whether the body can be sent (again) from its beginning now."""
        return self.repeatable or not self.started

    def pieces(self) -> AsyncGenerator[bytes, None]:
        """The body from its beginning, checked against ``length``.

        Raises RuntimeError if it cannot start again (an iterator already taken from);
        ValueError if the source yields more or fewer bytes than ``length``, TypeError if
        it yields something else than bytes: then the request must not be completed.
        """
        if not self.can_restart():
            raise RuntimeError("The body was partly sent already and cannot be sent again")
        self.failure = None
        if self.length == 0:
            self.started = True  # the head alone is the whole request
        return self._checked(self._read())

    async def _checked(self, source: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        sent = 0
        try:
            async for piece in source:
                self.started = True
                if isinstance(piece, memoryview):
                    piece = piece.cast("B")  # (its length in bytes)
                elif not isinstance(piece, (bytes, bytearray)):
                    raise TypeError(f"A body piece must be bytes, not {type(piece).__name__}")
                if not piece:
                    continue
                sent += len(piece)
                if self.length is not None and sent >= self.length:
                    # Past the end before its last byte goes out: with that byte, the
                    # request would be complete, and the server would store it.
                    async for extra in source:
                        if extra:
                            sent = self.length + 1
                            break
                    if sent > self.length:
                        raise ValueError(f"The body is longer than its stated length {self.length}")
                    self.progressed, self.awaiting_transport = time.monotonic(), True
                    yield piece
                    return
                self.progressed, self.awaiting_transport = time.monotonic(), True
                yield piece
                self.awaiting_transport = False
            if self.length is not None and sent != self.length:
                raise ValueError(
                    f"The body ended after {sent} bytes, before its stated length {self.length}"
                )
        except Exception as exc:
            self.failure = exc
            raise
        finally:
            self.awaiting_transport = False
            closing = getattr(source, "aclose", None)
            if closing is not None:
                await closing()

    @abc.abstractmethod
    def _read(self) -> AsyncIterator[bytes]:
        """The source's bytes from the beginning, unchecked."""


class _FileBody(StreamedBody):
    """The file at ``path``, opened anew for each sending."""

    def __init__(self, path: str | os.PathLike[str], length: int | None) -> None:
        size = os.stat(path).st_size
        if length is not None and length != size:
            raise ValueError(f"length={length} but the file {os.fspath(path)!r} has {size} bytes")
        super().__init__(size)
        self._path = path

    @property
    def repeatable(self) -> bool:
        return True

    async def _read(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        file = await loop.run_in_executor(None, open, self._path, "rb")
        try:
            while piece := await loop.run_in_executor(None, file.read, PIECE_SIZE):
                yield piece
        finally:
            file.close()


class _FileObjectBody(StreamedBody):
    """A binary file object from its current position; sent again only if seekable."""

    def __init__(self, file: IO[bytes], length: int | None) -> None:
        if isinstance(file, io.TextIOBase):
            raise TypeError("The file must be opened in binary mode ('rb')")
        self._file = file
        self._start: int | None = file.tell() if _seekable(file) else None
        if self._start is not None:
            remaining = file.seek(0, io.SEEK_END) - self._start
            file.seek(self._start)
            if length is not None and length != remaining:
                raise ValueError(f"length={length} but the file has {remaining} bytes left")
            length = remaining
        super().__init__(length)

    @property
    def repeatable(self) -> bool:
        return self._start is not None

    async def _read(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        if self._start is not None:
            await loop.run_in_executor(None, self._file.seek, self._start)
        while piece := await loop.run_in_executor(None, self._file.read, PIECE_SIZE):
            yield piece


class _IterableBody(StreamedBody):
    """An async iterable of bytes: sent once (it cannot be rewound)."""

    def __init__(self, pieces: AsyncIterable[bytes], length: int | None) -> None:
        super().__init__(length)
        self._pieces = pieces

    @property
    def repeatable(self) -> bool:
        return False

    def _read(self) -> AsyncIterator[bytes]:
        return self._pieces.__aiter__()


def streamed_body(source: BodySource, length: int | None = None) -> StreamedBody:
    """The body that reads ``source``: a path, a binary file object or an async iterable.

    A file's length is its size (from the current position for a file object); a
    ``length`` given too must match. An iterable's length is ``length`` (None: unknown).
    Raises TypeError for another kind of source, ValueError for a negative or wrong length.
    """
    if length is not None and (not isinstance(length, int) or length < 0):
        raise ValueError(f"length must be an int >= 0 or None, got {length!r}")
    if isinstance(source, (str, os.PathLike)):
        return _FileBody(source, length)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError("Bytes are sent as they are, not streamed")
    if callable(getattr(source, "read", None)):
        return _FileObjectBody(source, length)  # type: ignore[arg-type]
    if isinstance(source, AsyncIterable):
        return _IterableBody(source, length)
    raise TypeError(
        "An upload reads a file path, a binary file object or an async iterable of bytes, "
        f"not {type(source).__name__}"
    )


async def content_digest(body: bytes | StreamedBody) -> tuple[int, bytes]:
    """``(length, MD5 digest)`` of ``body`` (a streamed one is read again, piece by piece).

    Raises RuntimeError for a body that cannot be read again.
    """
    if isinstance(body, bytes):
        return len(body), hashlib.md5(body, usedforsecurity=False).digest()
    md5 = hashlib.md5(usedforsecurity=False)
    length = 0
    async for piece in body.pieces():
        md5.update(piece)
        length += len(piece)
    return length, md5.digest()


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False
