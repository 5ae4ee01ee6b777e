"""Design documents: the views (and other functions) of a database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import _json, _paths
from .document import Document
from .exception import ConflictError
from .remote import RequestResult
from .typing import JsonDict
from .update_function import UpdateFunction
from .view import AllDocsView, View
from .view_query import DesignDocumentInfo

if TYPE_CHECKING:
    from .database import Database

__all__ = ["DesignDocsView", "DesignDocument"]

_ALLOWED_KEYS = frozenset(
    {
        "language",
        "options",
        "filters",
        "lists",
        "rewrites",
        "shows",
        "updates",
        "validate_doc_update",
        "views",
        "autoupdate",
    }
)


class DesignDocument(Document):
    """The design document ``_design/{id}``; ``id`` is the bare name.

    Its requests go to ``/{db}/_design/{name}``: ``info()`` (HEAD), ``fetch()``,
    ``save()``, ``delete()``, ``attachment(name)`` (its attachments); ``copy(new_id)``
    takes a full id (``"_design/other"``; a bare name makes an ordinary document).
    """

    def __init__(self, database: Database | None, id: str, data: JsonDict | None = None) -> None:
        super().__init__(database, id, data=data)

    @property
    def endpoint(self) -> str:
        """``/{db}/_design/{name}``."""
        return f"{_paths.database_path(self._database.id)}/_design/{_paths.quote_segment(self.id)}"

    @property
    def _server_id(self) -> str:
        return f"_design/{self.id}"

    async def _put_encoded(self, body: bytes, w: int | None = None) -> RequestResult:
        # The local ``_id`` is the bare name until the first fetch (as in aiocouch 4.0.1);
        # servers where the body's ``_id`` wins over the URL (pouchdb-server) would
        # otherwise store an ordinary document of that name.
        data = _json.loads(body)
        if data.get("_id") == self.id:
            body = _json.dumps({**data, "_id": f"_design/{self.id}"})
        return await super()._put_encoded(body, w)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in _ALLOWED_KEYS:
            raise KeyError(f"The key '{key}' is not allowed in a design document")
        super().__setitem__(key, value)

    def view(self, view: str) -> View:
        """The view ``view`` of this design document (no request)."""
        return View(self._database, self.id, view)

    def update_function(self, name: str) -> UpdateFunction:
        """The update function ``name`` of this design document (no request)."""
        return UpdateFunction(self, name)

    async def create_view(
        self,
        view: str,
        *,
        map_function: str,
        reduce_function: str | None = None,
        exists_ok: bool = False,
    ) -> View:
        """Adds a JavaScript view and saves: PUT /{db}/_design/{name}.

        Raises ConflictError (no request) if the view exists and ``exists_ok`` is False.
        """
        views = self._data.setdefault("views", {})
        if view in views and not exists_ok:
            raise ConflictError(f"The view '{view}' does already exist in the design document")
        definition = {"map": map_function}
        if reduce_function is not None:
            definition["reduce"] = reduce_function
        views[view] = definition
        self["language"] = "javascript"
        await self.save()
        return self.view(view)

    async def design_info(self) -> DesignDocumentInfo:
        """The state of the view index: GET /{db}/_design/{name}/_info.

        Raises NotFoundError if the design document does not exist.
        """
        info = await self._database._design_info(self.id)
        return DesignDocumentInfo(name=info["name"], view_index=info["view_index"])


class DesignDocsView(AllDocsView):
    """``/{db}/_design_docs``: the design documents, keyed by id (``_design/{name}``).

    Queried like ``_all_docs`` (``get``, ``post``, ``ids``, ``docs``, ``queries``...);
    ``docs()`` yields them as :class:`~aiocouch.document.Document` objects.
    """

    @property
    def endpoint(self) -> str:
        """``/{db}/_design_docs``."""
        return f"{_paths.database_path(self._database.id)}/_design_docs"

    @property
    def _subject(self) -> str:
        return f"_design_docs of database '{self._database.id}'"

    def docs(
        self,
        ids: list[str] | None = None,
        *,
        create: bool = False,
        prefix: str | None = None,
        include_ddocs: bool = True,
        **params: Any,
    ) -> AsyncIterator[Document]:
        """The design documents, streamed: GET /{db}/_design_docs?include_docs=true, or POST
        ``ids`` (full ids); see :meth:`View.docs <aiocouch.view.View.docs>`."""
        return super().docs(
            ids, create=create, prefix=prefix, include_ddocs=include_ddocs, **params
        )
