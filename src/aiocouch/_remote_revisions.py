"""Requests about the revisions of a database's documents: ``_bulk_get``, ``_revs_diff``,
``_missing_revs`` and writes with ``new_edits=false``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import _paths
from ._answers import AnswerShape
from ._response import RequestResult
from ._resume import Continuation, StreamRequest
from ._row_stream import RowStream
from .retry import Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_database import RemoteDatabase

__all__ = ["BulkGetContinuation", "RemoteRevisions"]


def _is_revs(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(rev, str) for rev in value)


def _is_revs_lists(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_revs(revs) for revs in value.values())


def _is_revs_diff(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(entry, dict)
        and _is_revs(entry.get("missing"))
        and _is_revs(entry.get("possible_ancestors", []))
        for entry in value.values()
    )


_REVS_DIFF = AnswerShape(
    "a JSON object mapping each id to an object with a 'missing' list of revisions",
    _is_revs_diff,
)
_MISSING_REVS = AnswerShape(
    "a JSON object whose 'missing_revs' maps each id to a list of revisions",
    lambda value: isinstance(value, dict) and _is_revs_lists(value.get("missing_revs")),
)
# pouchdb-server answers a write with new_edits=false with an empty array.
_REVISION_WRITTEN = AnswerShape(
    "a JSON object (or an empty array)", lambda value: isinstance(value, dict) or value == []
)


class BulkGetContinuation(Continuation):
    """``_bulk_get``: one result per requested document, in order; continues with the rest.

    The caller checks that each result answers the request in its place, so the count of
    results handed out says which requests are answered.
    """

    def resume(self) -> StreamRequest | None:
        """The same request for the documents whose results were not handed out yet."""
        if self.delivered == 0:
            return self.request
        body = dict(self.request.json)
        body["docs"] = body["docs"][self.delivered :]
        return replace(self.request, json=body) if body["docs"] else None


class RemoteRevisions:
    """The revisions of the documents of a database: requests below ``/{db}``."""

    def __init__(self, database: RemoteDatabase) -> None:
        self._database = database

    def _bulk_get_rows(self, requests: list[JsonDict], params: Mapping[str, Any]) -> RowStream:
        """The results of POST /{db}/_bulk_get?params with ``{"docs": requests}``, streamed.

        A broken answer resumes with the documents not answered yet.
        """
        database = self._database
        return database._remote._rows(
            "POST",
            f"{database.endpoint}/_bulk_get",
            "results",
            params=params,
            json={"docs": requests},
            subject=f"_bulk_get of database '{database.id}'",
            continuation=BulkGetContinuation,
        )

    async def _revs_diff(self, revs: Mapping[str, list[str]]) -> JsonDict:
        """POST /{db}/_revs_diff with ``{docid: [revs]}``."""
        return dict(
            await self._database._send(
                "POST",
                "/_revs_diff",
                data=dict(revs),
                expect=_REVS_DIFF,
                repetition=Repetition.SAFE,
            )
        )

    async def _missing_revs(self, revs: Mapping[str, list[str]]) -> JsonDict:
        """POST /{db}/_missing_revs with ``{docid: [revs]}``."""
        return dict(
            await self._database._send(
                "POST",
                "/_missing_revs",
                data=dict(revs),
                expect=_MISSING_REVS,
                repetition=Repetition.SAFE,
            )
        )

    async def _put_revision(self, doc: JsonDict) -> RequestResult:
        """PUT /{db}/{docid}?new_edits=false with ``doc`` (its ``_rev`` stored as is).

        Writing a revision that exists changes nothing, so it is repeated after any failure.
        """
        database = self._database
        return await database._remote._request(
            "PUT",
            _paths.document_path(database.id, doc["_id"]),
            params={"new_edits": False},
            data=doc,
            subject=f"document '{doc['_id']}' in database '{database.id}'",
            expect=_REVISION_WRITTEN,
            repetition=Repetition.SAFE,
        )
