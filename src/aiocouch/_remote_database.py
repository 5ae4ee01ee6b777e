"""Requests below ``/{db}``: the database itself, bulk operations, Mango, security,
maintenance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _json, _paths, _write_confirmation
from ._answers import (
    ARRAY_OF_OBJECTS,
    COUNT,
    DESIGN_INFO,
    DOCUMENT_SHARD,
    OBJECT,
    PURGE_RESULT,
    SHARD_MAP,
    AnswerShape,
)
from ._mango_answers import INDEX_DELETIONS, INDEX_LIST, QUERY_PLAN
from ._response import RequestResult, confirmed_result
from ._row_stream import RowStream
from ._transport import JSON_CONTENT_TYPE, NO_BODY
from ._write_confirmation import confirm_conflict
from .exception import ConflictError, ForbiddenError, NotFoundError, _TypedResponseError
from .retry import AttemptLog, Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["RemoteDatabase"]


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
        headers: Mapping[str, str] | None = None,
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
            headers=headers,
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
        params = {} if "w" in data else self._remote._quorum._write()
        if data.get("new_edits") is False:
            repetition = Repetition.SAFE
        elif all(isinstance(doc, dict) and doc.get("_id") for doc in docs):
            repetition = Repetition.CHECKED
        else:
            return list(
                await self._send(
                    "POST", "/_bulk_docs", params=params, data=body, expect=ARRAY_OF_OBJECTS
                )
            )
        attempt_log = AttemptLog()
        items = list(
            await self._send(
                "POST",
                "/_bulk_docs",
                params=params,
                data=body,
                expect=ARRAY_OF_OBJECTS,
                repetition=repetition,
                attempt_log=attempt_log,
            )
        )
        if attempt_log.uncertain:
            items = await _write_confirmation.bulk_writes(self._remote, self.id, docs, items)
        return items

    async def _post_document(self, id: str, body: bytes, w: int | None = None) -> RequestResult:
        """POST /{db}[?w=] with ``body``, a new document encoded as JSON whose ``_id`` is
        ``id`` (``w``: the write quorum, by default the client's).

        Repeated after a lost answer: a repeat of an applied POST gets 409, which becomes
        the success it was if the document is the one sent (see :mod:`._write_confirmation`).
        """
        subject = f"document '{id}' in {self._subject}"
        attempt_log = AttemptLog()
        try:
            return await self._remote._request(
                "POST",
                self.endpoint,
                params=self._remote._quorum._write(w),
                data=body,
                headers=JSON_CONTENT_TYPE,
                subject=subject,
                expect=OBJECT,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except ConflictError as conflict:
            return await confirm_conflict(
                conflict,
                attempt_log,
                lambda: _write_confirmation.document_write(
                    self._remote, _paths.document_path(self.id, id), _json.loads(body), subject
                ),
                lambda rev: confirmed_result(201, id, rev),
            )

    async def _find(self, selector: Any, **data: Any) -> JsonDict:
        """POST /{db}/_find with body ``{"selector": selector, **data}``."""
        body = {"selector": selector, **data}
        return dict(await self._send("POST", "/_find", data=body, repetition=Repetition.SAFE))

    async def _index(self, index: Any, **data: Any) -> JsonDict:
        """POST /{db}/_index with body ``{"index": index, **data}``."""
        # The same definition again is answered "exists": repeating makes no second index.
        body = {"index": index, **data}
        return dict(await self._send("POST", "/_index", data=body, repetition=Repetition.SAFE))

    async def _explain(self, body: JsonDict) -> JsonDict:
        """POST /{db}/_explain with a ``_find`` body: the plan of the query."""
        return dict(
            await self._send(
                "POST", "/_explain", data=body, expect=QUERY_PLAN, repetition=Repetition.SAFE
            )
        )

    async def _indexes(self) -> JsonDict:
        """GET /{db}/_index: every Mango index (and the special ``_all_docs`` one)."""
        return dict(await self._send("GET", "/_index", expect=INDEX_LIST))

    async def _delete_index(self, ddoc: str, type: str, name: str) -> None:
        """DELETE /{db}/_index/{ddoc}/{type}/{name}, ``ddoc`` without ``_design/``.

        Repeated after a lost answer: a repeat of an applied deletion gets 404, which then
        is the success it was.
        """
        path = "/".join(_paths.quote_segment(part) for part in ("_index", ddoc, type, name))
        attempt_log = AttemptLog()
        try:
            await self._send(
                "DELETE",
                "/" + path,
                repetition=Repetition.CHECKED,
                attempt_log=attempt_log,
            )
        except NotFoundError:
            if not attempt_log.uncertain:
                raise

    async def _bulk_delete_indexes(self, ddocs: list[str], **data: Any) -> JsonDict:
        """POST /{db}/_index/_bulk_delete with ``{"docids": ddocs, **data}``."""
        body = {"docids": ddocs, **data}
        return dict(
            await self._send("POST", "/_index/_bulk_delete", data=body, expect=INDEX_DELETIONS)
        )

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
        """POST /{db}/_purge with body ``{docid: [revs]}`` (aiocouch 4.0.1's, any object)."""
        return dict(await self._send("POST", "/_purge", params=params, data=dict(docs)))

    async def _purge_revisions(self, docs: dict[str, list[str]], w: int | None) -> JsonDict:
        """POST /{db}/_purge[?w=] with body ``{docid: [revs]}``; the answer lists the purged."""
        return dict(
            await self._send("POST", "/_purge", params={"w": w}, data=docs, expect=PURGE_RESULT)
        )

    def _purged_infos(self) -> RowStream:
        """GET /{db}/_purged_infos, its ``purged_infos`` streamed."""
        return self._remote._rows(
            "GET",
            f"{self.endpoint}/_purged_infos",
            "purged_infos",
            subject=f"_purged_infos of {self._subject}",
        )

    async def _get_limit(self, name: str) -> int:
        """GET /{db}/{name} (``_revs_limit``, ``_purged_infos_limit``): a bare integer."""
        limit: int = await self._send("GET", f"/{name}", expect=COUNT)
        return limit

    async def _put_limit(self, name: str, limit: int) -> None:
        """PUT /{db}/{name} (``_revs_limit``, ``_purged_infos_limit``) with body ``limit``."""
        # The value is replaced: a repeat leaves the same state.
        await self._send("PUT", f"/{name}", data=limit, repetition=Repetition.SAFE)

    async def _command(self, endpoint: str) -> JsonDict:
        """POST /{db}{endpoint} without a body, labelled JSON as CouchDB demands (415 else).

        For requests that start work which runs once however often it is asked for
        (compaction, view cleanup, shard sync, commit): repeated after a lost answer.
        """
        return dict(
            await self._send(
                "POST", endpoint, data=b"", headers=JSON_CONTENT_TYPE, repetition=Repetition.SAFE
            )
        )

    async def _compact(self, design_doc: str | None = None) -> None:
        """POST /{db}/_compact, or /{db}/_compact/{ddoc} for the views of ``_design/{ddoc}``."""
        if design_doc is None:
            await self._command("/_compact")
        else:
            await self._command(f"/_compact/{_paths.quote_segment(design_doc)}")

    async def _design_info(self, design_doc: str) -> JsonDict:
        """GET /{db}/_design/{ddoc}/_info."""
        path = _paths.document_path(self.id, f"_design/{design_doc}")
        _, info = await self._remote._request(
            "GET",
            f"{path}/_info",
            subject=f"_info of design document '{design_doc}' in {self._subject}",
            expect=DESIGN_INFO,
        )
        return dict(info)

    async def _shards(self) -> JsonDict:
        """GET /{db}/_shards."""
        return dict(await self._send("GET", "/_shards", expect=SHARD_MAP))

    async def _document_shard(self, doc_id: str) -> JsonDict:
        """GET /{db}/_shards/{docid}, the id quoted as one segment (``/`` too)."""
        return dict(
            await self._send(
                "GET", f"/_shards/{_paths.quote_segment(doc_id)}", expect=DOCUMENT_SHARD
            )
        )

    async def _changes(self, **params: Any) -> JsonDict:
        """GET /{db}/_changes (a normal or longpoll feed, decoded whole)."""
        return dict(await self._send("GET", "/_changes", params=params))
