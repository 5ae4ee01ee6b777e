"""Change events of a database's ``_changes`` feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .typing import JsonDict

if TYPE_CHECKING:
    from .database import Database
    from .document import Document

__all__ = ["BaseChangeEvent", "ChangedEvent", "DeletedEvent"]


@dataclass
class BaseChangeEvent:
    """One row of the changes feed, as the server sent it in ``json``."""

    json: JsonDict

    @property
    def id(self) -> str:
        """The id of the changed document."""
        doc_id: str = self.json["id"]
        return doc_id

    @property
    def rev(self) -> str:
        """The first leaf revision of the change."""
        rev: str = self.json["changes"][0]["rev"]
        return rev

    @property
    def sequence(self) -> Any:
        """The update sequence of the change (may be absent with ``seq_interval``)."""
        return self.json["seq"]


@dataclass
class DeletedEvent(BaseChangeEvent):
    """A change that deleted the document."""


@dataclass
class ChangedEvent(BaseChangeEvent):
    """A change that created or updated the document."""

    database: Database | None

    async def doc(self) -> Document:
        """The changed document: from ``include_docs`` (no request), else GET ?rev=."""
        if "doc" in self.json:
            from .document import Document

            doc: JsonDict = self.json["doc"]
            return Document(self.database, doc["_id"], data=doc)
        if self.database is None:
            raise AttributeError("The event has no database to fetch the document from")
        return await self.database.get(self.id, rev=self.rev)


def event_for_change(database: Database, change: JsonDict) -> BaseChangeEvent:
    """The event class that a ``_changes`` row stands for."""
    if change.get("deleted"):
        return DeletedEvent(json=change)
    return ChangedEvent(json=change, database=database)
