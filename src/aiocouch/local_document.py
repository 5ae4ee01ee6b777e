"""Local documents: documents of one database that are never replicated (``_local/{name}``).

A ``_local`` document is read and written like any document, but it keeps no revision
history (its revisions count ``0-1``, ``0-2``...; a deletion answers ``0-0`` and removes
it), has no conflicts or attachments, is not in ``_all_docs``, ``_changes`` or views, and
stays where it was written. Replicators keep their checkpoints in them. Get one with
:meth:`Database.local <aiocouch.database.Database.local>`; list them with
:attr:`Database.local_docs <aiocouch.database.Database.local_docs>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _paths
from ._remote_document import RemoteLocalDocument
from .document import Document
from .remote import HTTPResponse
from .typing import JsonDict
from .view import AllDocsView

if TYPE_CHECKING:
    from .database import Database

__all__ = ["LocalDocsView", "LocalDocument"]

_PREFIX = "_local/"


def local_id(name: str) -> str:
    """The id ``_local/{name}`` of the local document ``name`` (which may hold the prefix).

    Raises TypeError or ValueError for a name that is not a non-empty str.
    """
    _paths.validate_document_id(name)
    full = name if name.startswith(_PREFIX) else _PREFIX + name
    if full == _PREFIX:
        raise ValueError("A local document needs a name after '_local/'")
    return full


class LocalDocument(Document, RemoteLocalDocument):
    """The local document ``_local/{name}`` of ``database``; constructing it sends no request.

    ``id`` is the full id (``_local/{name}``); ``name`` may be given with or without that
    prefix. ``fetch()`` (GET), ``save()`` (PUT), ``delete()`` (DELETE), ``copy()`` (COPY)
    and the dict-like surface work as for :class:`~aiocouch.document.Document`; the
    calls about revision trees, conflicts and attachments do not apply.
    """

    def __init__(self, database: Database | None, name: str, data: JsonDict | None = None) -> None:
        super().__init__(database, local_id(name), data=data)

    @property
    def name(self) -> str:
        """The name, without the ``_local/`` prefix."""
        return self.id[len(_PREFIX) :]

    async def info(self) -> JsonDict:
        """The id and current revision on the server: GET /{db}/_local/{name}.

        (The ETag of a local document is not its revision.) Raises NotFoundError if it
        does not exist.
        """
        return {"ok": True, "id": self.id, "rev": (await self._get())["_rev"]}

    async def copy(self, new_id: str) -> HTTPResponse:
        """Copies it to the local document ``new_id``: COPY /{db}/_local/{name}.

        ``new_id`` is a name (with or without ``_local/``), optionally followed by
        ``?rev=<rev>`` to overwrite that revision of an existing local document. Returns
        the HTTPResponse. Raises BadRequestError (no request) for a destination CouchDB
        cannot take, ConflictError if the destination exists and no ``rev`` was given.
        """
        return await super().copy(local_id(new_id))


class LocalDocsView(AllDocsView):
    """``/{db}/_local_docs``: the local documents, keyed by id (``_local/{name}``).

    Queried like ``_all_docs`` (``get``, ``post``, ``ids``, ``docs``, ``queries``...);
    ``docs()`` yields :class:`LocalDocument` objects. CouchDB counts no ``total_rows`` or
    ``offset`` here (null).
    """

    _document_class = LocalDocument

    @property
    def endpoint(self) -> str:
        """``/{db}/_local_docs``."""
        return f"{_paths.database_path(self._database.id)}/_local_docs"

    @property
    def _subject(self) -> str:
        return f"_local_docs of database '{self._database.id}'"
