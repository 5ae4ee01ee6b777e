"""The server's requests: every request of the public classes passes through here."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Callable

import aiohttp

from ._answers import (
    ARRAY,
    ARRAY_OF_OBJECTS,
    OBJECT,
    STATE,
    AnswerShape,
    UnexpectedAnswer,
    decode_json,
    describe_problem,
)
from ._body import StreamedBody
from ._client import HTTPClient
from ._response import HTTPResponse, RequestResult
from ._resume import Continuation, StreamRequest
from ._row_stream import ObjectParser, RowStream
from ._rows import LineParser, parsed_pieces
from ._transport import NO_BODY, StreamedResponse, Transport
from .auth import Authentication
from .cluster import Quorum
from .exception import InvalidResponseError, _TypedResponseError
from .retry import AttemptLog, Repetition
from .server import (
    DBS_INFO_ANSWER,
    MEMBERSHIP_ANSWER,
    UP_ANSWER,
    UUIDS_ANSWER,
    ClusterSetupState,
    DatabaseInfoRow,
    Membership,
    UpStatus,
)
from .session import Login, SessionInfo
from .typing import JsonDict

__all__ = ["RemoteServer"]


class RemoteServer:
    """The server: sends requests for every resource below it."""

    def __init__(
        self,
        server: str | Sequence[str],
        *,
        user: str | None = None,
        password: str | None = None,
        cookie: str | None = None,
        auth: aiohttp.BasicAuth | Authentication | None = None,
        quorum: Quorum | None = None,
        **kwargs: Any,
    ) -> None:
        if quorum is not None and not isinstance(quorum, Quorum):
            raise TypeError(f"quorum must be a Quorum, not {type(quorum).__name__}")
        self._quorum = quorum or Quorum()
        """The write and read quorum of document writes and reads (see :mod:`.cluster`)."""
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
        by default GET and HEAD are reads, anything else may write). ``data`` is a JSON
        value, or the raw body: bytes, or a :class:`~._body.StreamedBody` sent piece by
        piece (repeated only if it can start again).
        """
        raw_body: bytes | StreamedBody | None = None
        # (NO_BODY and dicts first: isinstance of the abstract StreamedBody costs more)
        if (
            data is not NO_BODY
            and type(data) is not dict
            and isinstance(data, (bytes, bytearray, StreamedBody))
        ):
            raw_body = bytes(data) if isinstance(data, bytearray) else data
            data = NO_BODY
        raw = await self._http.request(
            method,
            path,
            params=params,
            json=data,
            data=raw_body,
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
                headers=raw.read_headers,
                allow_empty=method == "HEAD" or raw.status == 204,
                expect=expect,
            )
        except UnexpectedAnswer as problem:
            raise self._http.invalid_answer(
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

    async def _session_info(self) -> SessionInfo:
        """GET /_session, as a :class:`SessionInfo`."""
        answer = await self._check_session()
        try:
            return SessionInfo.from_answer(answer)
        except ValueError as exc:
            raise self._http.invalid_answer(
                str(exc), "GET", "/_session", None, None, "the session", status=200
            ) from None

    async def _login(self, name: str, password: str) -> Login:
        """POST /_session {name, password}, without the client's changing authentication.

        A cookie session (:class:`~aiocouch.auth.SessionAuth`) would otherwise take the
        new cookie from the answer and go on as that user.
        """
        subject = f"the login as '{name}'"
        raw = await self._http.request(
            "POST",
            "/_session",
            json={"name": name, "password": password},
            subject=subject,
            authenticated=False,
        )
        try:
            answer = decode_json(raw.body, headers=raw.headers, allow_empty=False, expect=OBJECT)
            return Login.from_answer(
                answer, raw.headers.getall("Set-Cookie", []), raw.headers.get("Date")
            )
        except ValueError as exc:
            raise self._http.invalid_answer(
                str(exc),
                "POST",
                "/_session",
                None,
                None,
                subject,
                status=raw.status,
                response_headers=raw.headers,
            ) from None

    async def _logout(self) -> None:
        """DELETE /_session."""
        await self._request(
            "DELETE",
            "/_session",
            subject="the session",
            expect=OBJECT,
            repetition=Repetition.SAFE,
        )

    async def _answer(
        self,
        method: str,
        path: str,
        expect: AnswerShape,
        *,
        params: Mapping[str, Any] | None = None,
        data: Any = NO_BODY,
        repetition: Repetition | None = None,
    ) -> Any:
        """The decoded answer to ``method path``, of the ``expect``-ed shape."""
        _, value = await self._request(
            method,
            path,
            params=params,
            data=data,
            subject=path,
            expect=expect,
            repetition=repetition,
        )
        return value

    async def _up(self) -> UpStatus:
        """GET /_up."""
        status: UpStatus = await self._answer("GET", "/_up", UP_ANSWER)
        return status

    async def _uuids(self, count: int) -> list[str]:
        """GET /_uuids?count=..."""
        answer = await self._answer("GET", "/_uuids", UUIDS_ANSWER, params={"count": count})
        uuids: list[str] = answer["uuids"]
        return uuids

    async def _membership(self) -> Membership:
        """GET /_membership."""
        membership: Membership = await self._answer("GET", "/_membership", MEMBERSHIP_ANSWER)
        return membership

    async def _active_tasks(self) -> list[JsonDict]:
        """GET /_active_tasks."""
        tasks: list[JsonDict] = await self._answer("GET", "/_active_tasks", ARRAY_OF_OBJECTS)
        return tasks

    async def _dbs_info_page(self, params: Mapping[str, Any]) -> list[DatabaseInfoRow]:
        """GET /_dbs_info?params."""
        rows: list[DatabaseInfoRow] = await self._answer(
            "GET", "/_dbs_info", DBS_INFO_ANSWER, params=params
        )
        return rows

    async def _dbs_info_of(self, names: list[str]) -> list[DatabaseInfoRow]:
        """POST /_dbs_info {"keys": names} (a read)."""
        rows: list[DatabaseInfoRow] = await self._answer(
            "POST",
            "/_dbs_info",
            DBS_INFO_ANSWER,
            data={"keys": names},
            repetition=Repetition.SAFE,
        )
        return rows

    async def _cluster_setup(self, params: Mapping[str, Any]) -> ClusterSetupState:
        """GET /_cluster_setup?params."""
        state: ClusterSetupState = await self._answer(
            "GET", "/_cluster_setup", STATE, params=params
        )
        return state

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
        timeout: aiohttp.ClientTimeout | None = None,
        parser: Callable[[], ObjectParser] | None = None,
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
            timeout=timeout,
            parser=parser,
        )

    def _stream(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        subject: str,
    ) -> AbstractAsyncContextManager[StreamedResponse]:
        """GET ``path``; yields the answer (status, headers) and its raw body piece by piece.

        A failure while the answer opens is repeated as the retry policy allows; a body
        broken later raises (IncompleteResponseError, ReadTimeoutError...).
        """
        return self._http.stream("GET", path, params=params, headers=headers, subject=subject)

    async def _lines(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        subject: str,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> AsyncIterator[Any]:
        """GET ``path`` as newline-delimited JSON objects (a continuous feed), one by one.

        Every request asks for an uncompressed body, which matters most here: a
        compressing server (pouchdb-server, a gzip proxy) buffers a compressed feed, so
        its lines would arrive late or never. A line that is not a JSON object raises
        InvalidResponseError (``status`` 0: not known here).
        """
        async with self._http.stream(
            "GET", path, params=params, subject=subject, timeout=timeout
        ) as pieces:
            invalid = functools.partial(self._invalid_stream, "GET", path, params, None, subject)
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
        return self._http.invalid_answer(
            describe_problem(exc), method, path, params, headers, subject
        )

    async def close(self) -> None:
        """Closes the HTTP session."""
        await self._http.close()
