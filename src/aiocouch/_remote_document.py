"""Requests to a document, ``/{db}/{docid}`` (its attachments: :mod:`._remote_attachment`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from . import _json, _paths, _write_confirmation
from ._answers import OBJECT, AnswerShape
from ._remote_attachment import RemoteAttachment
from ._response import HTTPResponse, RequestResult, confirmed_result
from ._transport import JSON_CONTENT_TYPE, NO_BODY
from ._write_confirmation import confirm_conflict
from .exception import ConflictError, NotFoundError, _TypedResponseError
from .retry import AttemptLog, Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["RemoteAttachment", "RemoteDocument", "RemoteLocalDocument", "RemoteUpdateFunction"]

# A _local document's revisions count up from 0-1; a deletion answers 0-0.
_LOCAL_REVISION = re.compile(r"0-(\d+)\Z")
# Each request to a document needs its path: checking and quoting the id every time cost
# more than a look-up (an id that is refused raises, and is not remembered).
_remembered_path = functools.lru_cache(maxsize=4096)(_paths.document_path)


def _document_path(database: str, doc_id: str) -> str:
    if type(database) is str and type(doc_id) is str:
        return _remembered_path(database, doc_id)
    return _paths.document_path(database, doc_id)  # (raises as it always did)


class RemoteDocument:
    """A document: requests to ``/{db}/{docid}``."""

    def __init__(self, database: Any, id: str) -> None:
        self._database = database
        self.id = id

    @property
    def endpoint(self) -> str:
        """The quoted path of the document, ``/{db}/{docid}``."""
        return _document_path(self._database.id, self.id)

    @property
    def _server_id(self) -> str:
        """The document's ``_id`` on the server (a design document's ``id`` lacks its prefix)."""
        return self.id

    @property
    def _remote(self) -> RemoteServer:
        remote: RemoteServer = self._database._remote
        return remote

    @property
    def _subject(self) -> str:
        return f"document '{self.id}' in database '{self._database.id}'"

    async def _head(self) -> HTTPResponse:
        """HEAD /{db}/{docid}[?r=<the client's read quorum>]."""
        response, _ = await self._remote._request(
            "HEAD", self.endpoint, params=self._remote._quorum._read(), subject=self._subject
        )
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
        """GET /{db}/{docid}?params (``r``: the client's read quorum, unless given)."""
        document: JsonDict = await self._read(params, OBJECT)
        return document

    def _get_answer(self, params: Mapping[str, Any]) -> Awaitable[RequestResult]:
        """GET /{db}/{docid}?params (the read quorum ``r`` among them, if any): the answer
        and the document (the answer's ``_body`` is its JSON text)."""
        # (not a coroutine of its own: one level less between a read and the transport)
        return self._remote._request(
            "GET", self.endpoint, params=params, subject=self._subject, expect=OBJECT
        )

    async def _read(self, params: Mapping[str, Any], expect: AnswerShape) -> Any:
        """GET /{db}/{docid}?params; an answer not of the ``expect``-ed shape raises.

        ``r`` is the client's read quorum unless ``params`` give one.
        """
        _, body = await self._remote._request(
            "GET",
            self.endpoint,
            params={**self._remote._quorum._read(), **params},
            subject=self._subject,
            expect=expect,
        )
        return body

    async def _put(self, data: JsonDict, **params: Any) -> RequestResult:
        """PUT /{db}/{docid}?params with ``data`` as body."""
        # Any JSON: pouchdb-server answers a write with ``new_edits=false`` with ``[]``.
        return await self._remote._request(
            "PUT", self.endpoint, params=params, data=data, subject=self._subject
        )

    async def _put_encoded(self, body: bytes, w: int | None = None) -> RequestResult:
        """PUT /{db}/{docid}[?w=] with ``body``, the document already encoded as JSON
        (``w``: the write quorum, by default the client's).

        Repeated after a lost answer: a repeat of an applied PUT gets 409, which becomes
        the success it was if the document is the one sent (see :mod:`._write_confirmation`).
        """
        attempt_log = AttemptLog()
        try:
            return await self._remote._request(
                "PUT",
                self.endpoint,
                params=self._remote._quorum._write(w),
                data=body,
                headers=JSON_CONTENT_TYPE,
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError as conflict:
            return await confirm_conflict(
                conflict,
                attempt_log,
                lambda: self._written(_json.loads(body)),
                lambda rev: confirmed_result(201, self.id, rev),
            )

    async def _written(self, sent: JsonDict) -> str | None:
        """The revision a PUT of ``sent`` made, if it was applied (see
        :func:`._write_confirmation.document_write` for the requests)."""
        return await _write_confirmation.document_write(
            self._remote, self.endpoint, sent, self._subject
        )

    async def _delete(self, rev: str, w: int | None = None, **params: Any) -> RequestResult:
        """DELETE /{db}/{docid}?rev=rev[&w=] (``w``: the write quorum, by default the client's).

        Repeated after a lost answer: a repeat of an applied DELETE gets 409, which becomes
        the success it was if a deletion was written on ``rev``.
        """
        attempt_log = AttemptLog()
        try:
            return await self._remote._request(
                "DELETE",
                self.endpoint,
                params={"rev": rev, **self._remote._quorum._write(w), **params},
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError as conflict:
            return await confirm_conflict(
                conflict,
                attempt_log,
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
            params={**self._remote._quorum._write(), **params},
            headers={"Destination": destination},
            subject=self._subject,
            expect=OBJECT,
        )


class RemoteLocalDocument(RemoteDocument):
    """A ``_local`` document: requests to ``/{db}/_local/{name}``.

    It has no revision tree to confirm a write by (see :mod:`._write_confirmation`):
    a write whose answer was lost is confirmed by the document as it is now.
    """

    async def _written(self, sent: JsonDict) -> str | None:
        """The revision a PUT of ``sent`` made, if the document holds what was sent, under
        the revision that write made (``0-2`` after ``0-1``): GET /{db}/_local/{name}."""
        base = _LOCAL_REVISION.match(sent.get("_rev") or "0-0")
        if base is None:
            return None
        try:
            current = await self._get()
        except NotFoundError:
            return None
        written = f"0-{int(base.group(1)) + 1}"
        if current.get("_rev") != written or _content(current) != _content(sent):
            return None
        return written

    async def _delete(self, rev: str, w: int | None = None, **params: Any) -> RequestResult:
        """DELETE /{db}/_local/{name}?rev=rev[&w=].

        Repeated after a lost answer: a repeat of an applied DELETE gets 404 (or 409),
        which becomes the success it was if the document is gone (HEAD).
        """
        attempt_log = AttemptLog()
        try:
            return await self._remote._request(
                "DELETE",
                self.endpoint,
                params={"rev": rev, **self._remote._quorum._write(w), **params},
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except (ConflictError, NotFoundError):
            if attempt_log.uncertain and not await self._exists():
                return confirmed_result(200, self.id, "0-0")
            raise


def _content(document: JsonDict) -> JsonDict:
    """What a write of ``document`` stores: all but its id and revision."""
    return {key: value for key, value in document.items() if key not in ("_id", "_rev")}


class RemoteUpdateFunction:
    """An update function: requests to ``/{db}/_design/{ddoc}/_update/{name}[/{docid}]``."""

    def __init__(self, design_document: Any, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"An update function's name must be a str, not {type(name).__name__}")
        if not name:
            raise ValueError("An update function's name must not be empty")
        self._design_document = design_document
        self.name = name

    @property
    def endpoint(self) -> str:
        """The quoted path of the function, ``/{db}/_design/{ddoc}/_update/{name}``."""
        return f"{self._design_document.endpoint}/_update/{_paths.quote_segment(self.name)}"

    @property
    def _subject(self) -> str:
        return f"update function '{self.name}' of design document '{self._design_document.id}'"

    async def _call(
        self,
        doc_id: str | None,
        body: bytes | None,
        content_type: str | None,
        params: Mapping[str, Any] | None,
    ) -> RequestResult:
        """POST the function (no ``doc_id``) or PUT it for ``doc_id``; the answer as bytes.

        Sent again only when it provably was not applied: the function may write
        anything, each time it runs.
        """
        path = self.endpoint
        if doc_id is not None:
            path = f"{path}/{_paths.document_segments(_paths.validate_document_id(doc_id))}"
        remote: RemoteServer = self._design_document._remote
        return await remote._request(
            "POST" if doc_id is None else "PUT",
            path,
            params=params,
            data=NO_BODY if body is None else body,
            headers=None if content_type is None else {"Content-Type": content_type},
            return_json=False,
            subject=self._subject,
            repetition=Repetition.IF_NOT_APPLIED,
        )
