"""Requests to an attachment, ``{document path}/{name}``: whole, ranged or streamed."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from . import _paths, _write_confirmation
from ._answers import OBJECT
from ._body import StreamedBody
from ._response import HTTPResponse, confirmed_result
from ._transport import StreamedResponse, public_request_info
from ._write_confirmation import confirm_conflict
from .exception import ConflictError, InvalidResponseError, _TypedResponseError, error_for_response
from .retry import AttemptLog, Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["RemoteAttachment"]


class RemoteAttachment:
    """An attachment: requests to ``{document path}/{name}``.

    The path follows the document's own (``/{db}/{docid}``, or ``/{db}/_design/{name}``
    for a design document), so every request here works for any kind of document.
    """

    def __init__(self, document: Any, id: str) -> None:
        self._document = document
        self.id = id

    @property
    def endpoint(self) -> str:
        """The quoted path of the attachment (BadRequestError for a name CouchDB refuses)."""
        document = self._document
        return f"{document.endpoint}/{_paths.attachment_segment(document.id, self.id)}"

    @property
    def _remote(self) -> RemoteServer:
        remote: RemoteServer = self._document._database._remote
        return remote

    @property
    def _subject(self) -> str:
        return f"attachment '{self.id}' of {self._document._subject}"

    async def _exists(self) -> tuple[bool, str | None]:
        """HEAD the attachment; returns (exists, content type)."""
        try:
            response = await self._head()
        except _TypedResponseError as exc:
            if exc.status == 404:
                return False, None
            raise
        return True, response.headers.get("Content-Type")

    async def _head(self, **params: Any) -> HTTPResponse:
        """HEAD the attachment; NotFoundError if it does not exist."""
        response, _ = await self._remote._request(
            "HEAD", self.endpoint, params=params, return_json=False, subject=self._subject
        )
        return response

    async def _get(self, **params: Any) -> tuple[bytes, str | None]:
        """GET the attachment; returns (bytes, content type)."""
        response, body = await self._remote._request(
            "GET", self.endpoint, params=params, return_json=False, subject=self._subject
        )
        return body, response.headers.get("Content-Type")

    def _stream(
        self, params: Mapping[str, Any], headers: Mapping[str, str] | None
    ) -> AbstractAsyncContextManager[StreamedResponse]:
        """GET the attachment; yields the answer and its body piece by piece."""
        return self._remote._stream(
            self.endpoint, params=params, headers=headers, subject=self._subject
        )

    def _invalid_answer(
        self,
        problem: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str] | None,
        response: StreamedResponse,
    ) -> InvalidResponseError:
        """The error for a GET answer of this attachment that is not what was asked."""
        return self._remote._http.invalid_answer(
            problem,
            "GET",
            self.endpoint,
            params,
            headers,
            self._subject,
            status=response.status,
            response_headers=response.headers,
        )

    def _unsatisfiable_range(
        self,
        params: Mapping[str, Any],
        headers: Mapping[str, str] | None,
        response: StreamedResponse,
    ) -> _TypedResponseError:
        """RangeNotSatisfiableError for a range the whole answer showed to start past the
        end (what CouchDB answers with 416 where it honours ranges)."""
        transport = self._remote._transport
        request_info = public_request_info(
            transport.url(self.endpoint, params), "GET", {**transport._headers, **(headers or {})}
        )
        return error_for_response(
            416,
            subject=self._subject,
            reason="Requested range not satisfiable",
            error="requested_range_not_satisfiable",
            request_info=request_info,
            headers=response.headers,
        )

    async def _put(
        self, rev: str | None, data: bytes | StreamedBody, content_type: str
    ) -> JsonDict:
        """PUT the attachment ``?rev=rev`` with a raw body (bytes, or sent piece by piece).

        Repeated after a lost answer: a repeat of an applied PUT gets 409, which becomes
        the success it was if a child of ``rev`` holds this attachment, written in it. A
        streamed body is repeated only if it can start again (a file, not an iterator
        partly sent).
        """
        if not isinstance(data, StreamedBody):
            data = bytes(data)
        attempt_log = AttemptLog()
        try:
            _, result = await self._remote._request(
                "PUT",
                self.endpoint,
                params={"rev": rev, **self._remote._quorum._write()},
                data=data,
                headers={"Content-Type": content_type},
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError as conflict:
            _, result = await confirm_conflict(
                conflict,
                attempt_log,
                lambda: _write_confirmation.attachment_write(
                    self._remote,
                    self._document.endpoint,
                    self.id,
                    rev,
                    data,
                    content_type,
                    self._subject,
                ),
                lambda written: confirmed_result(201, self._document.id, written),
            )
        return dict(result)

    async def _delete(self, rev: str | None) -> JsonDict:
        """DELETE the attachment ``?rev=rev``.

        Repeated after a lost answer: a repeat of an applied DELETE gets 409, which becomes
        the success it was if a child of ``rev`` lacks the attachment.
        """
        attempt_log = AttemptLog()
        try:
            _, result = await self._remote._request(
                "DELETE",
                self.endpoint,
                params={"rev": rev, **self._remote._quorum._write()},
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError as conflict:
            _, result = await confirm_conflict(
                conflict,
                attempt_log,
                lambda: _write_confirmation.attachment_deletion(
                    self._remote, self._document.endpoint, self.id, rev, self._subject
                ),
                lambda written: confirmed_result(200, self._document.id, written),
            )
        return dict(result)
