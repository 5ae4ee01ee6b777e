"""Requests of the replicator: ``POST /_replicate`` and the scheduler (``/_scheduler/...``)."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from . import _paths
from ._answers import OBJECT
from ._row_stream import RowStream
from ._secret_values import secrets_hidden
from .exception import NotFoundError
from .retry import AttemptLog, Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["RemoteReplicator", "check_replicator_db"]

_REPLICATOR_DB = re.compile(r"(?:.+/)?_replicator\Z")


def check_replicator_db(name: str) -> str:
    """Returns ``name`` if it can be a replicator database, else raises ValueError.

    CouchDB takes ``_replicator`` and names ending in ``/_replicator`` (anything else is
    a 400 "Invalid path" from the scheduler, transcript 14.102).
    """
    if not isinstance(name, str) or not _REPLICATOR_DB.match(name):
        raise ValueError(
            f"Invalid replicator database {name!r}: it must be '_replicator' or end in "
            "'/_replicator'"
        )
    _paths.validate_database_name(name)
    return name


class RemoteReplicator:
    """The replicator of one server: starts and cancels replications, reads the scheduler."""

    def __init__(self, remote: RemoteServer) -> None:
        self._remote = remote

    async def _replicate(self, body: JsonDict, secrets: Collection[str]) -> tuple[int, JsonDict]:
        """POST /_replicate; returns the status (200 one-shot done, 202 continuous started)
        and the answer. No exception shows ``secrets``."""
        # A replication is idempotent (a repeat finds the documents there and copies
        # nothing twice; CouchDB runs one job per replication id): safe to repeat.
        with secrets_hidden(secrets):
            response, result = await self._remote._request(
                "POST",
                "/_replicate",
                data=body,
                subject="the replication",
                expect=OBJECT,
                repetition=Repetition.SAFE,
            )
        return response.status, dict(result)

    async def _cancel(self, replication_id: str) -> None:
        """POST /_replicate ``{"replication_id": ..., "cancel": true}``.

        Raises NotFoundError if no such replication runs, unless an earlier attempt of this
        call may have cancelled it (its answer was lost: the repeat finds it gone).
        """
        attempt_log = AttemptLog()
        try:
            await self._remote._request(
                "POST",
                "/_replicate",
                data={"replication_id": replication_id, "cancel": True},
                subject=f"replication '{replication_id}'",
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except NotFoundError:
            if not attempt_log.uncertain:
                raise

    def _scheduler_jobs(self, **params: Any) -> RowStream:
        """GET /_scheduler/jobs?params, its ``jobs`` streamed."""
        return self._remote._rows(
            "GET", "/_scheduler/jobs", "jobs", params=params, subject="the scheduler's jobs"
        )

    def _scheduler_docs(self, replicator_db: str | None, **params: Any) -> RowStream:
        """GET /_scheduler/docs[/{replicator_db}]?params, its ``docs`` streamed."""
        path = "/_scheduler/docs"
        if replicator_db is not None:
            path += "/" + _paths.quote_segment(check_replicator_db(replicator_db))
        return self._remote._rows(
            "GET", path, "docs", params=params, subject="the scheduler's replication documents"
        )

    async def _scheduler_doc(self, replicator_db: str, doc_id: str) -> JsonDict:
        """GET /_scheduler/docs/{replicator_db}/{docid}."""
        check_replicator_db(replicator_db)
        _paths.check_document_id(doc_id)
        path = (
            f"/_scheduler/docs/{_paths.quote_segment(replicator_db)}/{_paths.quote_segment(doc_id)}"
        )
        _, status = await self._remote._request(
            "GET",
            path,
            subject=f"replication document '{doc_id}' in the scheduler",
            expect=OBJECT,
        )
        return dict(status)
