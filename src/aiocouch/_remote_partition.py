"""Requests below ``/{db}/_partition/{partition}`` that are not streamed: info and explain.

The streamed ones (``_all_docs``, views, ``_find``) are the database's queries with the
partition's path in front (see :mod:`aiocouch.partition`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _paths
from ._answers import OBJECT
from .retry import Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_database import RemoteDatabase

__all__ = ["RemotePartition"]


class RemotePartition:
    """A partition of a partitioned database: requests below ``/{db}/_partition/{name}``.

    Raises TypeError or BadRequestError for a name no partition can have (see
    :func:`aiocouch._paths.partition_path`), before any request.
    """

    def __init__(self, database: RemoteDatabase, name: str) -> None:
        self.endpoint = _paths.partition_path(database.id, name)
        """The quoted path of the partition, ``/{db}/_partition/{name}``."""
        self._database = database
        self.name = name

    @property
    def _subject(self) -> str:
        return f"partition '{self.name}' of database '{self._database.id}'"

    async def _info(self) -> JsonDict:
        """GET /{db}/_partition/{partition}."""
        _, info = await self._database._remote._request(
            "GET", self.endpoint, subject=self._subject, expect=OBJECT
        )
        return dict(info)

    async def _explain(self, selector: Any, **data: Any) -> JsonDict:
        """POST /{db}/_partition/{partition}/_explain with ``{"selector": selector, **data}``."""
        _, explanation = await self._database._remote._request(
            "POST",
            f"{self.endpoint}/_explain",
            data={"selector": selector, **data},
            subject=f"_explain in {self._subject}",
            expect=OBJECT,
            repetition=Repetition.SAFE,
        )
        return dict(explanation)
