"""Attachments of a document: whole bytes, streamed to and from files and async iterables
(never held whole in memory), byte ranges, and inline (base64) attachments.

The attachment's path follows its document's, so everything here works the same for the
attachments of a design document (``DesignDocument(db, "x").attachment("readme.txt")``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import tempfile
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Union

from . import _paths
from ._attachment_stream import AttachmentStream, ByteRange
from ._body import BodySource, streamed_body
from .remote import RemoteAttachment

if TYPE_CHECKING:
    from .document import Document

__all__ = ["Attachment", "AttachmentInfo", "AttachmentStream", "BodySource", "DownloadTarget"]

DownloadTarget = Union[str, "os.PathLike[str]", IO[bytes]]
"""Where :meth:`Attachment.fetch_to` writes: a file path or a binary file object."""

_WRITE_AT_ONCE = 1 << 20
"""Bytes gathered before one write to a file (each write runs in a worker thread)."""


@dataclass(frozen=True)
class AttachmentInfo:
    """What the server tells about an attachment without sending it (HEAD)."""

    content_type: str | None
    """The attachment's ``Content-Type``."""
    length: int | None
    """Its size in bytes, as a GET would send it (None if the server did not say)."""
    digest: str | None
    """``md5-<base64>``, as in the document's ``_attachments`` stubs (None if unknown).

    CouchDB stores compressible types (``text/*``...) gzip-compressed and digests the
    compressed bytes; then this is not the MD5 of the content a GET sends."""
    accepts_ranges: bool
    """Whether the server honours a byte range (``Accept-Ranges: bytes``); when it does
    not, a ranged read still gets its bytes, cut from the whole answer."""


class Attachment(RemoteAttachment):
    """The attachment ``id`` of ``document``; constructing it sends no request."""

    def __init__(self, document: Document, id: str) -> None:
        super().__init__(document, id)
        self.content_type: str | None = None

    async def exists(self) -> bool:
        """Whether the attachment exists: HEAD /{db}/{docid}/{name}; sets ``content_type``."""
        exists, self.content_type = await self._exists()
        return exists

    async def info(self, *, rev: str | None = None) -> AttachmentInfo:
        """Its content type, length and digest: HEAD /{db}/{docid}/{name}[?rev=].

        Sets ``content_type``. Raises NotFoundError if it does not exist.
        """
        headers = (await self._head(**({"rev": rev} if rev else {}))).headers
        self.content_type = headers.get("Content-Type")
        length = headers.get("Content-Length")
        etag = headers.get("ETag")
        return AttachmentInfo(
            content_type=self.content_type,
            length=int(length) if length is not None and length.isdigit() else None,
            digest=None if etag is None or etag.startswith("W/") else "md5-" + etag.strip('"'),
            accepts_ranges=(headers.get("Accept-Ranges") or "").strip().lower() == "bytes",
        )

    async def fetch(self) -> bytes:
        """The attachment's bytes: GET /{db}/{docid}/{name}; sets ``content_type``.

        Raises NotFoundError if it does not exist.
        """
        data, self.content_type = await self._get()
        return data

    async def fetch_range(
        self, offset: int, length: int | None = None, *, rev: str | None = None
    ) -> bytes:
        """``length`` bytes (None: all the rest) from byte ``offset`` of the attachment.

        Sends GET /{db}/{docid}/{name} with ``Range: bytes=offset-end``; a server that
        sends the whole attachment instead (CouchDB for compressed types, pouchdb-server
        always) is read only up to the range's end. Sets ``content_type``. Raises
        ValueError (no request) for a negative offset or a length below 1,
        RangeNotSatisfiableError if ``offset`` is not below the attachment's size,
        NotFoundError if it does not exist.
        """
        async with self.stream(offset=offset, length=length, rev=rev) as pieces:
            return b"".join([piece async for piece in pieces])

    def stream(
        self, *, offset: int = 0, length: int | None = None, rev: str | None = None
    ) -> AttachmentStream:
        """The attachment's bytes (or a range of them) piece by piece, as they arrive.

        ``async with attachment.stream() as pieces: async for piece in pieces: ...``
        (or ``async for`` on it directly). Sends GET /{db}/{docid}/{name}[?rev=] when
        entered, with a ``Range`` header if ``offset`` or ``length`` is given (see
        :meth:`fetch_range`). An answer that breaks off is resumed from the first byte not
        handed out, as the client's retry policy allows (see :class:`AttachmentStream`).
        Raises ValueError (no request) for a bad range; NotFoundError,
        RangeNotSatisfiableError when entered; IncompleteResponseError or
        ReadTimeoutError if the answer breaks off and cannot be resumed.
        """
        return AttachmentStream(self, ByteRange.of(offset, length), rev, self._took_type)

    async def fetch_to(
        self,
        target: DownloadTarget,
        *,
        offset: int = 0,
        length: int | None = None,
        rev: str | None = None,
    ) -> int:
        """Writes the attachment (or a range, see :meth:`fetch_range`) to ``target``.

        ``target`` is a file path or a binary file object; returns the bytes written.
        Memory stays flat: pieces are written as they arrive. A path is written to a
        temporary file beside it, renamed to the path once the whole answer arrived, so
        a download that breaks (and cannot be resumed) leaves no partial file under that
        name (a file object holds what arrived). Sends GET /{db}/{docid}/{name}; raises
        as :meth:`stream` does.
        """
        pieces = self.stream(offset=offset, length=length, rev=rev)
        if not isinstance(target, (str, os.PathLike)):
            return await _write_pieces(pieces, target)
        path = os.fspath(target)
        directory, name = os.path.split(os.path.abspath(path))
        descriptor, part = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
        try:
            with open(descriptor, "wb") as file:
                written = await _write_pieces(pieces, file)
            os.replace(part, path)
        except BaseException:
            os.unlink(part)
            raise
        return written

    async def save(self, data: bytes, content_type: str) -> None:
        """Uploads ``data``: PUT /{db}/{docid}/{name}?rev=, then GET /{db}/{docid}.

        The parent document is re-fetched, so it holds the new revision and the stubs.
        Raises ValueError if the document was never fetched or saved, ConflictError (409).
        """
        self._require_existing_document()
        await self._put(self._document.rev, data, content_type)
        self.content_type = content_type
        await self._document.fetch()

    async def save_from(
        self, source: BodySource, content_type: str, *, length: int | None = None
    ) -> None:
        """Uploads from ``source`` piece by piece, never holding it whole in memory.

        ``source`` is a file path, a binary file object (read from its position) or an
        async iterable of bytes. A file's length is its size; an iterable's is
        ``length``, or unknown (None: the body is sent with the chunked transfer coding).
        Sends PUT /{db}/{docid}/{name}?rev=, then GET /{db}/{docid} as :meth:`save`.

        A failed upload is repeated (as the client's retry policy allows) only if its
        source can start again: a path or a seekable file object can, an iterator cannot
        once a piece of it was taken. Raises, before any request, ValueError if the
        document was never fetched or saved or ``length`` contradicts a file's size,
        TypeError for another kind of source; while sending, ValueError if an iterable
        yields more or fewer bytes than ``length`` (the request is then abandoned), and
        what the source raises; ConflictError (409).
        """
        self._require_existing_document()
        body = streamed_body(source, length)
        await self._put(self._document.rev, body, content_type)
        self.content_type = content_type
        await self._document.fetch()

    async def delete(self) -> None:
        """Deletes the attachment: DELETE /{db}/{docid}/{name}?rev=, then GET /{db}/{docid}."""
        self._require_existing_document()
        await self._delete(self._document.rev)
        self.content_type = None
        await self._document.fetch()

    def set_inline(self, data: bytes, content_type: str) -> None:
        """Puts ``data`` into the parent document as an inline (base64) attachment.

        No request: the document's next ``save()`` stores it (PUT /{db}/{docid} with
        ``_attachments.{name}.data``), in the same revision as the document's fields.
        Raises BadRequestError for a name CouchDB refuses.
        """
        _paths.attachment_segment(self._document.id, self.id)
        attachments = self._document.setdefault("_attachments", {})
        attachments[self.id] = {
            "content_type": content_type,
            "data": base64.b64encode(bytes(data)).decode("ascii"),
        }

    @property
    def inline_data(self) -> bytes | None:
        """The bytes the parent document holds inline for this attachment, or None.

        The parent holds them after ``fetch(attachments=True)`` (or ``atts_since``, for
        the attachments changed since) and after :meth:`set_inline`; otherwise it holds a
        stub without data. Raises ValueError if the data is not valid base64.
        """
        entry = (self._document.get("_attachments") or {}).get(self.id)
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), str):
            return None
        try:
            return base64.b64decode(entry["data"], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"The inline data of attachment {self.id!r} is no base64") from exc

    def _took_type(self, content_type: str | None) -> None:
        self.content_type = content_type

    def _require_existing_document(self) -> None:
        if not self._document.exists:
            raise ValueError("The document must be fetched or saved before updating attachments")


async def _write_pieces(pieces: AttachmentStream, file: IO[bytes]) -> int:
    """Writes what ``pieces`` yields to ``file``, about a MiB per write; the bytes written."""
    loop = asyncio.get_running_loop()
    gathered: list[bytes] = []
    size = written = 0
    async with pieces:
        async for piece in pieces:
            gathered.append(piece)
            size += len(piece)
            if size >= _WRITE_AT_ONCE:
                await loop.run_in_executor(None, file.writelines, gathered)
                written += size
                gathered, size = [], 0
    if gathered:
        await loop.run_in_executor(None, file.writelines, gathered)
        written += size
    return written
