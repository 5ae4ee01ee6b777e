"""Design documents: the views (and other functions) of a database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _json, _paths
from ._remote_view import design_info
from .document import Document
from .exception import ConflictError
from .remote import RequestResult
from .typing import JsonDict
from .view import View
from .view_query import DesignDocumentInfo

if TYPE_CHECKING:
    from .database import Database

__all__ = ["DesignDocument"]

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
    """The design document ``_design/{id}``; ``id`` is the bare name."""

    def __init__(self, database: Database | None, id: str, data: JsonDict | None = None) -> None:
        super().__init__(database, id, data=data)

    @property
    def endpoint(self) -> str:
        """``/{db}/_design/{name}``."""
        return f"{_paths.database_path(self._database.id)}/_design/{_paths.quote_segment(self.id)}"

    async def _put_encoded(self, body: bytes) -> RequestResult:
        # The local ``_id`` is the bare name until the first fetch (as in aiocouch 4.0.1);
        # servers where the body's ``_id`` wins over the URL (pouchdb-server) would
        # otherwise store an ordinary document of that name.
        data = _json.loads(body)
        if data.get("_id") == self.id:
            body = _json.dumps({**data, "_id": f"_design/{self.id}"})
        return await super()._put_encoded(body)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in _ALLOWED_KEYS:
            raise KeyError(f"The key '{key}' is not allowed in a design document")
        super().__setitem__(key, value)

    def view(self, view: str) -> View:
        """The view ``view`` of this design document (no request)."""
        return View(self._database, self.id, view)

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
        info = await design_info(self._database._remote, self._database.id, self.id)
        return DesignDocumentInfo(name=info["name"], view_index=info["view_index"])
