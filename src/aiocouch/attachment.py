"""Attachments of a document: whole-body bytes, fetched and saved explicitly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .remote import RemoteAttachment

if TYPE_CHECKING:
    from .document import Document

__all__ = ["Attachment"]


class Attachment(RemoteAttachment):
    """The attachment ``id`` of ``document``; constructing it sends no request."""

    def __init__(self, document: Document, id: str) -> None:
        super().__init__(document, id)
        self.content_type: str | None = None

    async def exists(self) -> bool:
        """Whether the attachment exists: HEAD /{db}/{docid}/{name}; sets ``content_type``."""
        exists, self.content_type = await self._exists()
        return exists

    async def fetch(self) -> bytes:
        """The attachment's bytes: GET /{db}/{docid}/{name}; sets ``content_type``.

        Raises NotFoundError if it does not exist.
        """
        data, self.content_type = await self._get()
        return data

    async def save(self, data: bytes, content_type: str) -> None:
        """Uploads ``data``: PUT /{db}/{docid}/{name}?rev=, then GET /{db}/{docid}.

        The parent document is re-fetched, so it holds the new revision and the stubs.
        Raises ValueError if the document was never fetched or saved, ConflictError (409).
        """
        self._require_existing_document()
        await self._put(self._document.rev, data, content_type)
        self.content_type = content_type
        await self._document.fetch()

    async def delete(self) -> None:
        """Deletes the attachment: DELETE /{db}/{docid}/{name}?rev=, then GET /{db}/{docid}."""
        self._require_existing_document()
        await self._delete(self._document.rev)
        self.content_type = None
        await self._document.fetch()

    def _require_existing_document(self) -> None:
        if not self._document.exists:
            raise ValueError("The document must be fetched or saved before updating attachments")
