"""Requests to a document, ``/{db}/{docid}`` (its attachments: :mod:`._remote_attachment`)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from . import _json, _paths, _write_confirmation
from ._answers import (
    OBJECT,
)
from ._remote_attachment import RemoteAttachment
from ._response import HTTPResponse, RequestResult, confirmed_result
from ._transport import JSON_CONTENT_TYPE
from ._write_confirmation import checked_write
from .exception import _TypedResponseError
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["RemoteAttachment", "RemoteDocument"]


class RemoteDocument:
    """A document: requests to ``/{db}/{docid}``."""

    def __init__(self, database: Any, id: str) -> None:
        self._database = database
        self.id = id

    @property
    def endpoint(self) -> str:
        """The quoted path of the document, ``/{db}/{docid}``."""
        return _paths.document_path(self._database.id, self.id)

    @property
    def _remote(self) -> RemoteServer:
        remote: RemoteServer = self._database._remote
        return remote

    @property
    def _subject(self) -> str:
        return f"document '{self.id}' in database '{self._database.id}'"

    async def _head(self) -> HTTPResponse:
        """HEAD /{db}/{docid}."""
        response, _ = await self._remote._request("HEAD", self.endpoint, subject=self._subject)
        return response

    async def _info(self) -> HTTPResponse:
        """HEAD /{db}/{docid}."""
        return await self._head()

    async def _exists(self) -> bool:
        """HEAD /{db}/{docid}; False on 404."""
        try:
            await self._head()
        except _TypedResponseError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _get(self, **params: Any) -> JsonDict:
        """GET /{db}/{docid}?params."""
        _, body = await self._remote._request(
            "GET", self.endpoint, params=params, subject=self._subject, expect=OBJECT
        )
        document: JsonDict = body
        return document

    async def _put(self, data: JsonDict, **params: Any) -> RequestResult:
        """PUT /{db}/{docid}?params with ``data`` as body."""
        # Any JSON: pouchdb-server answers a write with ``new_edits=false`` with ``[]``.
        return await self._remote._request(
            "PUT", self.endpoint, params=params, data=data, subject=self._subject
        )

    async def _put_encoded(self, body: bytes) -> RequestResult:
        """PUT /{db}/{docid} with ``body``, the document already encoded as JSON.

        Repeated after a lost answer: a repeat of an applied PUT gets 409, which becomes
        the success it was if the document is the one sent (see :mod:`._write_confirmation`).
        """
        return await checked_write(
            functools.partial(
                self._remote._request,
                "PUT",
                self.endpoint,
                data=body,
                headers=JSON_CONTENT_TYPE,
                subject=self._subject,
                expect=OBJECT,
            ),
            lambda: _write_confirmation.document_write(
                self._remote, self.endpoint, _json.loads(body), self._subject
            ),
            lambda rev: confirmed_result(201, self.id, rev),
        )

    async def _delete(self, rev: str, **params: Any) -> RequestResult:
        """DELETE /{db}/{docid}?rev=rev.

        Repeated after a lost answer: a repeat of an applied DELETE gets 409, which becomes
        the success it was if a deletion was written on ``rev``.
        """
        return await checked_write(
            functools.partial(
                self._remote._request,
                "DELETE",
                self.endpoint,
                params={"rev": rev, **params},
                subject=self._subject,
                expect=OBJECT,
            ),
            lambda: _write_confirmation.document_deletion(
                self._remote, self.endpoint, rev, self._subject
            ),
            lambda deletion: confirmed_result(200, self.id, deletion),
        )

    async def _copy(self, destination: str, **params: Any) -> RequestResult:
        """COPY /{db}/{docid} with header ``Destination: destination``."""
        return await self._remote._request(
            "COPY",
            self.endpoint,
            params=params,
            headers={"Destination": destination},
            subject=self._subject,
            expect=OBJECT,
        )
