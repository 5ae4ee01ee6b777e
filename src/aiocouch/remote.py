"""The request layer of the public classes: one ``Remote*`` class per CouchDB resource.

Each private method sends exactly one request through :class:`aiocouch._client.HTTPClient`
and returns the decoded answer. The public classes (``Database``, ``Document``, ...)
derive from these and hold the state.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any, Callable

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from . import _json, _paths, _write_confirmation
from ._answers import (
    ARRAY,
    ARRAY_OF_OBJECTS,
    OBJECT,
    VIEW_RESULT,
    AnswerShape,
    UnexpectedAnswer,
    decode_json,
    describe_problem,
    invalid_answer,
)
from ._client import HTTPClient
from ._params import stringify_params
from ._resume import Continuation, NotResumable, StreamRequest, ViewContinuation
from ._rows import LineParser, RowParser, parsed_pieces
from ._transport import JSON_CONTENT_TYPE, NO_BODY, RawResponse, Transport
from .auth import Authentication
from .exception import ConflictError, ForbiddenError, InvalidResponseError, _TypedResponseError
from .retry import AttemptLog, Repetition, judge
from .typing import JsonDict

__all__ = [
    "HTTPResponse",
    "RemoteAttachment",
    "RemoteDatabase",
    "RemoteDocument",
    "RemoteServer",
    "RemoteView",
    "RequestResult",
    "RowStream",
    "_quote_id",
    "_stringify_params",
]

_IDENTITY_ENCODING = {"Accept-Encoding": "identity"}

_quote_id = _paths.quote_segment
_stringify_params = stringify_params


class ResponseHeaders(dict[str, str]):
    """A plain dict of the response headers whose look-ups ignore case (``Etag``/``ETag``)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(headers)
        self._lower = {key.lower(): key for key in self}

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(self._lower.get(key.lower(), key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower

    def get(self, key: str, default: Any = None) -> Any:
        """The value of header ``key`` in any case, or ``default``."""
        original = self._lower.get(key.lower())
        return default if original is None else super().__getitem__(original)


class HTTPResponse:
    """Represents an HTTP response from the CouchDB server."""

    status: int
    """The HTTP response status, usually 200, 201 or 202."""

    def __init__(self, resp: RawResponse | Any) -> None:
        self.status = resp.status
        self._raw_headers: Mapping[str, str] = resp.headers
        self._headers: ResponseHeaders | None = None

    @property
    def headers(self) -> ResponseHeaders:
        """The HTTP headers of the response (look-ups ignore case)."""
        if self._headers is None:
            self._headers = ResponseHeaders(self._raw_headers)
        return self._headers

    @property
    def etag(self) -> str | None:
        """The ETag header without its quotes (for documents: the revision), or None."""
        value = self.headers.get("ETag")
        return value.strip('"') if value is not None else None

    def __repr__(self) -> str:
        return f"<HTTPResponse status={self.status} etag={self.etag!r}>"


RequestResult = tuple[HTTPResponse, Any]
"""What the private request helpers return: the response and its decoded body."""


def _invalid_answer(
    client: HTTPClient,
    problem: str,
    method: str,
    path: str,
    params: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    subject: str,
    *,
    status: int = 0,
    response_headers: Any | None = None,
) -> InvalidResponseError:
    """The error for a 2xx answer to ``method path`` that is not what was asked."""
    transport = client.transport
    return invalid_answer(
        problem,
        method=method,
        path=path,
        subject=subject,
        url=transport.url(path, params),
        request_headers={**transport._headers, **(headers or {})},
        status=status,
        headers=response_headers,
    )


def _confirmed(status: int, id: str, rev: str) -> RequestResult:
    """The result a write's lost answer would have carried, once the write is confirmed."""
    headers = CIMultiDictProxy(CIMultiDict({"ETag": f'"{rev}"'}))
    response = HTTPResponse(RawResponse(status, headers, b""))
    return response, {"ok": True, "id": id, "rev": rev}


class RowStream:
    """Rows of one streamed response (``rows``, ``docs`` or ``results``), read as they arrive.

    Every row is a JSON object. After the iteration ends, :attr:`meta` holds the rest of
    the last answer (``total_rows``, ``offset``, ``bookmark``, ``last_seq``...). A body
    that is not the expected JSON raises InvalidResponseError (the streamed status is not
    known, so its ``status`` is 0) once the rows before the fault are handed out.

    With a ``continuation`` (see :mod:`aiocouch._resume`), an answer that breaks after its
    head (connection lost, body cut short, server silent longer than ``sock_read``) is
    resumed where that is exact: the rows already handed out are not asked for again, and
    a row is handed out only once it was received whole, as often as the client's retry
    policy allows (``attempts - 1`` resumes per iteration, with its pauses); then, or where
    no exact resume exists, the error is raised.
    """

    def __init__(
        self,
        client: HTTPClient,
        method: str,
        path: str,
        array_key: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = NO_BODY,
        subject: str,
        continuation: Callable[[StreamRequest], Continuation] | None = None,
    ) -> None:
        self._client = client
        self._path = path
        self._subject = subject
        self._array_key = array_key
        self._first = StreamRequest(method, params, json)
        self._current = self._first
        self._continuation = continuation
        self.meta: JsonDict = {}
        self.resumes = 0
        """How many times this iteration resumed a broken answer."""

    async def batches(self) -> AsyncIterator[list[tuple[Any, str]]]:
        """The rows as they arrive, a list per read, each row with its JSON text."""
        continuation = self._continuation(self._first) if self._continuation else None
        request: StreamRequest | None = self._first
        while request is not None:
            self._current = request
            answered = False
            try:
                parser = RowParser(self._array_key)
                async with self._client.stream(
                    request.method,
                    self._path,
                    params=request.params,
                    json=request.json,
                    subject=self._subject,
                    coalesce=True,
                ) as pieces:
                    answered = True
                    async for rows in parsed_pieces(pieces, parser, self.invalid):
                        if continuation is not None:
                            rows = continuation.take(rows)
                        if rows:
                            yield rows
                try:
                    self.meta = parser.meta()
                except ValueError as exc:
                    raise self.invalid(exc) from exc
            except Exception as exc:
                # A first request that got no answer is for the client's retries to repeat;
                # once an answer began (or while resuming), the break is resumed here, as
                # the client's retry policy allows (a broken answer, a 503...).
                if continuation is None or not (answered or self.resumes):
                    raise
                if not judge(exc, Repetition.SAFE, self._client.retry)[0]:
                    raise
                request = await self._resume(continuation, exc)
                continue
            request = continuation.after_end() if continuation is not None else None

    def invalid(self, exc: ValueError) -> InvalidResponseError:
        """The error for a row (or body) of this answer that ``exc`` says is wrong."""
        request = self._current
        headers = None if request.json is NO_BODY else JSON_CONTENT_TYPE
        return _invalid_answer(
            self._client,
            describe_problem(exc),
            request.method,
            self._path,
            request.params,
            headers,
            self._subject,
        )

    async def _resume(
        self, continuation: Continuation, error: BaseException
    ) -> StreamRequest | None:
        """The request for the rest after ``error``, once the policy's pause has passed.

        An iteration resumes at most ``attempts - 1`` times (the retry policy's count).
        """
        policy = self._client.retry
        if self.resumes + 1 >= policy.attempts:
            raise error
        try:
            request = continuation.resume()
        except NotResumable:
            raise error from None
        self.resumes += 1
        await asyncio.sleep(policy.wait(self.resumes, error))
        return request

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for batch in self.batches():
            for row, _ in batch:
                yield row


class RemoteServer:
    """The server: sends requests for every resource below it."""

    def __init__(
        self,
        server: str,
        *,
        user: str | None = None,
        password: str | None = None,
        cookie: str | None = None,
        auth: aiohttp.BasicAuth | Authentication | None = None,
        **kwargs: Any,
    ) -> None:
        self._http = HTTPClient(
            server, user=user, password=password, cookie=cookie, auth=auth, **kwargs
        )

    @property
    def _transport(self) -> Transport:
        """The transport that makes each attempt (the lean one or aiohttp)."""
        return self._http.transport

    def __repr__(self) -> str:
        return f"<RemoteServer {self._http.base_url}>"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = NO_BODY,
        headers: Mapping[str, str] | None = None,
        return_json: bool = True,
        subject: str = "the request",
        overrides: Mapping[int, type[_TypedResponseError]] | None = None,
        expect: AnswerShape | None = None,
        repetition: Repetition | None = None,
        attempt_log: AttemptLog | None = None,
    ) -> RequestResult:
        """Sends ``method path`` (path quoted, appended to the server URL as given).

        Returns ``(HTTPResponse, decoded JSON)``, or raw bytes with ``return_json=False``.
        A 2xx body that is empty (except for HEAD and 204), not JSON, or not of the
        ``expect``-ed shape raises InvalidResponseError.

        ``repetition`` says what repeating the request could do (see :mod:`aiocouch.retry`;
        by default GET and HEAD are reads, anything else may write).
        """
        if isinstance(data, (bytes, bytearray)):
            raw = await self._http.request(
                method,
                path,
                params=params,
                data=bytes(data),
                headers=headers,
                subject=subject,
                overrides=overrides,
                repetition=repetition,
                attempt_log=attempt_log,
            )
        else:
            raw = await self._http.request(
                method,
                path,
                params=params,
                json=data,
                headers=headers,
                subject=subject,
                overrides=overrides,
                repetition=repetition,
                attempt_log=attempt_log,
            )
        if not return_json:
            return HTTPResponse(raw), raw.body
        try:
            value = decode_json(
                raw.body,
                headers=raw.headers,
                allow_empty=method == "HEAD" or raw.status == 204,
                expect=expect,
            )
        except UnexpectedAnswer as problem:
            raise _invalid_answer(
                self._http,
                str(problem),
                method,
                path,
                params,
                headers,
                subject,
                status=raw.status,
                response_headers=raw.headers,
            ) from problem
        return HTTPResponse(raw), value

    async def _get(self, path: str, *, params: Mapping[str, Any] | None = None) -> RequestResult:
        """GET ``path``; returns ``(HTTPResponse, JSON)``."""
        return await self._request("GET", path, params=params)

    async def _get_bytes(
        self, path: str, *, params: Mapping[str, Any] | None = None
    ) -> RequestResult:
        """GET ``path``; returns ``(HTTPResponse, bytes)``."""
        return await self._request("GET", path, params=params, return_json=False)

    async def _head(self, path: str, *, params: Mapping[str, Any] | None = None) -> RequestResult:
        """HEAD ``path``; returns ``(HTTPResponse, None)``."""
        return await self._request("HEAD", path, params=params, return_json=False)

    async def _put(
        self, path: str, data: Any = NO_BODY, *, params: Mapping[str, Any] | None = None
    ) -> RequestResult:
        """PUT ``path`` with ``data`` as JSON body; returns ``(HTTPResponse, JSON)``."""
        return await self._request("PUT", path, params=params, data=data)

    async def _put_bytes(
        self,
        path: str,
        data: bytes,
        content_type: str,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> RequestResult:
        """PUT ``path`` with a raw body of ``content_type``; returns ``(HTTPResponse, JSON)``."""
        return await self._request(
            "PUT", path, params=params, data=data, headers={"Content-Type": content_type}
        )

    async def _post(
        self, path: str, data: Any = NO_BODY, *, params: Mapping[str, Any] | None = None
    ) -> RequestResult:
        """POST ``path`` with ``data`` as JSON body; returns ``(HTTPResponse, JSON)``."""
        return await self._request("POST", path, params=params, data=data)

    async def _delete(self, path: str, *, params: Mapping[str, Any] | None = None) -> RequestResult:
        """DELETE ``path``; returns ``(HTTPResponse, JSON)``."""
        return await self._request("DELETE", path, params=params)

    async def _all_dbs(self, **params: Any) -> list[str]:
        """GET /_all_dbs."""
        _, names = await self._request(
            "GET", "/_all_dbs", params=params, subject="/_all_dbs", expect=ARRAY
        )
        return list(names)

    async def _info(self) -> JsonDict:
        """GET /."""
        _, info = await self._request("GET", "/", subject="the server", expect=OBJECT)
        return dict(info)

    async def _check_session(self) -> JsonDict:
        """GET /_session."""
        _, session = await self._request("GET", "/_session", subject="the session", expect=OBJECT)
        return dict(session)

    def _rows(
        self,
        method: str,
        path: str,
        array_key: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = NO_BODY,
        subject: str,
        continuation: Callable[[StreamRequest], Continuation] | None = None,
    ) -> RowStream:
        """The rows of ``method path``, streamed (see :class:`RowStream`)."""
        return RowStream(
            self._http,
            method,
            path,
            array_key,
            params=params,
            json=json,
            subject=subject,
            continuation=continuation,
        )

    async def _lines(
        self, path: str, *, params: Mapping[str, Any] | None = None, subject: str
    ) -> AsyncIterator[Any]:
        """GET ``path`` as newline-delimited JSON objects (a continuous feed), one by one.

        Asks for an uncompressed body: a compressing server (pouchdb-server, a gzip proxy)
        buffers a compressed feed, so its lines would arrive late or never. A line that
        is not a JSON object raises InvalidResponseError (``status`` 0: not known here).
        """
        async with self._http.stream(
            "GET", path, params=params, headers=_IDENTITY_ENCODING, subject=subject
        ) as pieces:
            invalid = functools.partial(
                self._invalid_stream, "GET", path, params, _IDENTITY_ENCODING, subject
            )
            async for values in parsed_pieces(pieces, LineParser(), invalid):
                for value in values:
                    yield value

    def _invalid_stream(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        subject: str,
        exc: ValueError,
    ) -> InvalidResponseError:
        """The error for a streamed answer to ``method path`` whose body ``exc`` refutes."""
        return _invalid_answer(
            self._http, describe_problem(exc), method, path, params, headers, subject
        )

    async def close(self) -> None:
        """Closes the HTTP session."""
        await self._http.close()


class RemoteDatabase:
    """A database on the server: requests below ``/{db}``."""

    def __init__(self, remote: RemoteServer, id: str) -> None:
        self._remote = remote
        self.id = id

    @property
    def endpoint(self) -> str:
        """The quoted path of the database, ``/{db}``."""
        return _paths.database_path(self.id)

    @property
    def _subject(self) -> str:
        return f"database '{self.id}'"

    async def _send(
        self,
        method: str,
        endpoint: str = "",
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = NO_BODY,
        overrides: Mapping[int, type[_TypedResponseError]] | None = None,
        expect: AnswerShape = OBJECT,
        repetition: Repetition | None = None,
        attempt_log: AttemptLog | None = None,
    ) -> Any:
        """Sends ``method /{db}{endpoint}``; returns the decoded answer (``expect``-ed shape)."""
        subject = f"{endpoint[1:]} of {self._subject}" if endpoint else self._subject
        _, result = await self._remote._request(
            method,
            self.endpoint + endpoint,
            params=params,
            data=data,
            subject=subject,
            overrides=overrides,
            expect=expect,
            repetition=repetition,
            attempt_log=attempt_log,
        )
        return result

    async def _exists(self) -> bool:
        """HEAD /{db}; False on 404."""
        try:
            await self._send("HEAD")
        except _TypedResponseError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _get(self) -> JsonDict:
        """GET /{db}."""
        return dict(await self._send("GET"))

    async def _put(self, **params: Any) -> JsonDict:
        """PUT /{db}?params."""
        return dict(await self._send("PUT", params=params))

    async def _delete(self) -> JsonDict:
        """DELETE /{db}."""
        return dict(await self._send("DELETE"))

    async def _bulk_get(self, docs: list[JsonDict], **params: Any) -> JsonDict:
        """POST /{db}/_bulk_get with body ``{"docs": docs}``."""
        body = {"docs": docs}
        return dict(
            await self._send(
                "POST", "/_bulk_get", params=params, data=body, repetition=Repetition.SAFE
            )
        )

    async def _bulk_docs(self, docs: list[JsonDict], **data: Any) -> list[JsonDict]:
        """POST /{db}/_bulk_docs with body ``{"docs": docs, **data}``.

        Repeated after a lost answer when every document carries an ``_id`` (a conflict
        that the lost attempt caused then becomes the ok it was, see
        :mod:`._write_confirmation`), or with ``new_edits=False`` (revisions that exist
        are skipped).
        """
        body = {"docs": docs, **data}
        if data.get("new_edits") is False:
            repetition = Repetition.SAFE
        elif all(isinstance(doc, dict) and doc.get("_id") for doc in docs):
            repetition = Repetition.CHECKED
        else:
            return list(await self._send("POST", "/_bulk_docs", data=body, expect=ARRAY_OF_OBJECTS))
        attempt_log = AttemptLog()
        items = list(
            await self._send(
                "POST",
                "/_bulk_docs",
                data=body,
                expect=ARRAY_OF_OBJECTS,
                repetition=repetition,
                attempt_log=attempt_log,
            )
        )
        if attempt_log.uncertain:
            items = await _write_confirmation.bulk_writes(self._remote, self.id, docs, items)
        return items

    async def _post_document(self, id: str, body: bytes) -> RequestResult:
        """POST /{db} with ``body``, a new document encoded as JSON whose ``_id`` is ``id``.

        Repeated after a lost answer: a repeat of an applied POST gets 409, which becomes
        the success it was if the document is the one sent (see :mod:`._write_confirmation`).
        """
        attempt_log = AttemptLog()
        try:
            return await self._remote._request(
                "POST",
                self.endpoint,
                data=body,
                headers=JSON_CONTENT_TYPE,
                subject=f"document '{id}' in {self._subject}",
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError:
            rev = None
            if attempt_log.uncertain:
                path = _paths.document_path(self.id, id)
                rev = await _write_confirmation.document_write(
                    self._remote, path, _json.loads(body), f"document '{id}' in {self._subject}"
                )
            if rev is None:
                raise
            return _confirmed(201, id, rev)

    async def _find(self, selector: Any, **data: Any) -> JsonDict:
        """POST /{db}/_find with body ``{"selector": selector, **data}``."""
        body = {"selector": selector, **data}
        return dict(await self._send("POST", "/_find", data=body, repetition=Repetition.SAFE))

    async def _index(self, index: Any, **data: Any) -> JsonDict:
        """POST /{db}/_index with body ``{"index": index, **data}``."""
        # The same definition again is answered "exists": repeating makes no second index.
        body = {"index": index, **data}
        return dict(await self._send("POST", "/_index", data=body, repetition=Repetition.SAFE))

    async def _get_security(self) -> JsonDict:
        """GET /{db}/_security."""
        return dict(await self._send("GET", "/_security"))

    async def _put_security(self, doc: JsonDict) -> JsonDict:
        """PUT /{db}/_security."""
        # CouchDB answers a non-admin's write with 500 (every shard refuses it). The
        # object is replaced whole, without revisions: a repeat leaves the same state.
        return dict(
            await self._send(
                "PUT",
                "/_security",
                data=doc,
                overrides={500: ForbiddenError},
                repetition=Repetition.SAFE,
            )
        )

    async def _purge(self, docs: Mapping[str, list[str]], **params: Any) -> JsonDict:
        """POST /{db}/_purge with body ``{docid: [revs]}``."""
        return dict(await self._send("POST", "/_purge", params=params, data=dict(docs)))

    async def _changes(self, **params: Any) -> JsonDict:
        """GET /{db}/_changes (a normal or longpoll feed, decoded whole)."""
        return dict(await self._send("GET", "/_changes", params=params))


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
        attempt_log = AttemptLog()
        try:
            return await self._remote._request(
                "PUT",
                self.endpoint,
                data=body,
                headers=JSON_CONTENT_TYPE,
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError:
            rev = None
            if attempt_log.uncertain:
                rev = await _write_confirmation.document_write(
                    self._remote, self.endpoint, _json.loads(body), self._subject
                )
            if rev is None:
                raise
            return _confirmed(201, self.id, rev)

    async def _delete(self, rev: str, **params: Any) -> RequestResult:
        """DELETE /{db}/{docid}?rev=rev.

        Repeated after a lost answer: a repeat of an applied DELETE gets 409, which becomes
        the success it was if a deletion was written on ``rev``.
        """
        attempt_log = AttemptLog()
        try:
            return await self._remote._request(
                "DELETE",
                self.endpoint,
                params={"rev": rev, **params},
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError:
            deletion = None
            if attempt_log.uncertain:
                deletion = await _write_confirmation.document_deletion(
                    self._remote, self.endpoint, rev, self._subject
                )
            if deletion is None:
                raise
            return _confirmed(200, self.id, deletion)

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


class RemoteAttachment:
    """An attachment: requests to ``/{db}/{docid}/{name}``."""

    def __init__(self, document: Any, id: str) -> None:
        self._document = document
        self.id = id

    @property
    def endpoint(self) -> str:
        """The quoted path of the attachment."""
        return _paths.attachment_path(self._document._database.id, self._document.id, self.id)

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
            response, _ = await self._remote._request("HEAD", self.endpoint, subject=self._subject)
        except _TypedResponseError as exc:
            if exc.status == 404:
                return False, None
            raise
        return True, response.headers.get("Content-Type")

    async def _get(self, **params: Any) -> tuple[bytes, str | None]:
        """GET the attachment; returns (bytes, content type)."""
        response, body = await self._remote._request(
            "GET", self.endpoint, params=params, return_json=False, subject=self._subject
        )
        return body, response.headers.get("Content-Type")

    async def _put(self, rev: str | None, data: bytes, content_type: str) -> JsonDict:
        """PUT the attachment ``?rev=rev`` with a raw body.

        Repeated after a lost answer: a repeat of an applied PUT gets 409, which becomes
        the success it was if a child of ``rev`` holds this attachment, written in it.
        """
        attempt_log = AttemptLog()
        data = bytes(data)
        try:
            _, result = await self._remote._request(
                "PUT",
                self.endpoint,
                params={"rev": rev},
                data=data,
                headers={"Content-Type": content_type},
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError:
            written = None
            if attempt_log.uncertain:
                written = await _write_confirmation.attachment_write(
                    self._remote,
                    self._document.endpoint,
                    self.id,
                    rev,
                    data,
                    content_type,
                    self._subject,
                )
            if written is None:
                raise
            return {"ok": True, "id": self._document.id, "rev": written}
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
                params={"rev": rev},
                subject=self._subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError:
            written = None
            if attempt_log.uncertain:
                written = await _write_confirmation.attachment_deletion(
                    self._remote, self._document.endpoint, self.id, rev, self._subject
                )
            if written is None:
                raise
            return {"ok": True, "id": self._document.id, "rev": written}
        return dict(result)


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
            f"{_paths.database_path(self._database.id)}/_design/"
            f"{_paths.quote_segment(self.design_doc)}/_view/{_paths.quote_segment(self.id)}"
        )

    @property
    def _remote(self) -> RemoteServer:
        remote: RemoteServer = self._database._remote
        return remote

    @property
    def _subject(self) -> str:
        return f"view '{self.design_doc}/{self.id}' in database '{self._database.id}'"

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
