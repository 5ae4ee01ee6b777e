"""Requests to a view (``/{db}/_design/{ddoc}/_view/{view}``), whole or streamed, and to
the ``_info`` of its design document."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from . import _paths
from ._answers import (
    VIEW_RESULT,
)
from ._results_parser import ResultsParser
from ._resume import Continuation, ViewContinuation
from ._row_stream import RowStream
from .retry import Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["RemoteView"]


class RemoteView:
    """A view: requests to ``/{db}/_design/{ddoc}/_view/{view}``."""

    _rows_by_id = False
    """True where every row's key is a document id, one row per id (``_all_docs``)."""

    def __init__(self, database: Any, design_doc: str, id: str) -> None:
        self._database = database
        self.design_doc = design_doc
        self.id = id

    @property
    def endpoint(self) -> str:
        """The quoted path of the view."""
        return (
            f"{self._scope}/_design/"
            f"{_paths.quote_segment(self.design_doc)}/_view/{_paths.quote_segment(self.id)}"
        )

    @property
    def _scope(self) -> str:
        """The quoted path the query's path starts with: the database's (or a partition's)."""
        return _paths.database_path(self._database.id)

    @property
    def _scope_subject(self) -> str:
        return f"database '{self._database.id}'"

    @property
    def _remote(self) -> RemoteServer:
        remote: RemoteServer = self._database._remote
        return remote

    @property
    def _subject(self) -> str:
        return f"view '{self.design_doc}/{self.id}' in {self._scope_subject}"

    async def _get(self, **params: Any) -> JsonDict:
        """GET the view with ``params`` as query."""
        _, result = await self._remote._request(
            "GET", self.endpoint, params=params, subject=self._subject, expect=VIEW_RESULT
        )
        return dict(result)

    async def _post(self, keys: list[Any], **params: Any) -> JsonDict:
        """POST the view with body ``{"keys": keys}`` and ``params`` as query."""
        _, result = await self._remote._request(
            "POST",
            self.endpoint,
            params=params,
            data={"keys": keys},
            subject=self._subject,
            expect=VIEW_RESULT,
            repetition=Repetition.SAFE,
        )
        return dict(result)

    def _rows(self, keys: list[Any] | None = None, **params: Any) -> RowStream:
        """The rows of the view, streamed: GET, or POST ``{"keys": keys}`` when given.

        A broken answer resumes after the last row handed out (see :class:`RowStream`).
        """
        continuation = functools.partial(ViewContinuation, by_id=self._rows_by_id)
        if keys is None:
            return self._remote._rows(
                "GET",
                self.endpoint,
                "rows",
                params=params,
                subject=self._subject,
                continuation=continuation,
            )
        return self._remote._rows(
            "POST",
            self.endpoint,
            "rows",
            params=params,
            json={"keys": keys},
            subject=self._subject,
            continuation=continuation,
        )

    def _multi_rows(self, queries: list[JsonDict]) -> RowStream:
        """The rows of several queries, streamed: POST {view}/queries ``{"queries": [...]}``.

        Yields each result's rows, then a :class:`~aiocouch._results_parser.ResultEnd`.
        A broken answer is sent again only if nothing was handed out.
        """
        return self._remote._rows(
            "POST",
            f"{self.endpoint}/queries",
            "results",
            json={"queries": queries},
            subject=f"queries of {self._subject}",
            continuation=Continuation,
            parser=ResultsParser,
        )
