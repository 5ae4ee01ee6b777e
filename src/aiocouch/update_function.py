"""Update functions: JavaScript in a design document that turns a request into a write.

``updates: {"stamp": "function(doc, req) { ... return [doc, response]; }"}`` in a design
document makes ``POST /{db}/_design/{ddoc}/_update/stamp`` (``doc`` null) and ``PUT
.../_update/stamp/{docid}`` (``doc`` the current document, or null) run it: it returns
the document to save (or null) and the answer, which may be of any content type. Get one
with :meth:`DesignDocument.update_function
<aiocouch.design_document.DesignDocument.update_function>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _json
from ._remote_document import RemoteUpdateFunction
from ._response import HTTPResponse

__all__ = ["UpdateFunction", "UpdateResult"]

_CHARSET = re.compile(r";\s*charset=\"?([^\";\s]+)", re.IGNORECASE)


@dataclass(frozen=True)
class UpdateResult:
    """What an update function answered: the response, and its body as sent."""

    response: HTTPResponse
    body: bytes

    @property
    def status(self) -> int:
        """The HTTP status: 201 when it saved a document, else 200 (or its own code)."""
        return self.response.status

    @property
    def content_type(self) -> str | None:
        """The answer's ``Content-Type`` (CouchDB's default: ``text/html; charset=utf-8``)."""
        content_type: str | None = self.response.headers.get("Content-Type")
        return content_type

    @property
    def doc_id(self) -> str | None:
        """The id of the document the function saved (``X-Couch-Id``), or None."""
        doc_id: str | None = self.response.headers.get("X-Couch-Id")
        return doc_id

    @property
    def rev(self) -> str | None:
        """The revision the function saved (``X-Couch-Update-NewRev``), or None if it saved
        nothing."""
        rev: str | None = self.response.headers.get("X-Couch-Update-NewRev")
        return rev

    def text(self) -> str:
        """The body decoded with the charset of its Content-Type (UTF-8 if none).

        Raises UnicodeDecodeError if it is not text in that charset.
        """
        match = _CHARSET.search(self.content_type or "")
        return self.body.decode(match.group(1) if match else "utf-8")

    def json(self) -> Any:
        """The body decoded as JSON; ValueError if it is not JSON."""
        return _json.loads(self.body)


class UpdateFunction(RemoteUpdateFunction):
    """The update function ``name`` of a design document; constructing it sends no request.

    ``body`` is sent as the request's body (``req.body``): bytes as they are, a str as
    UTF-8 text, anything else as JSON; ``content_type`` defaults to
    ``application/octet-stream``, ``text/plain; charset=utf-8`` or ``application/json``
    accordingly. ``params`` become the query (``req.query``), encoded as elsewhere (str
    values as given). A call is not repeated unless it provably did not reach the server:
    the function may write each time it runs.
    """

    async def post(
        self,
        body: Any = None,
        *,
        content_type: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> UpdateResult:
        """Runs the function without a document: POST /{db}/_design/{ddoc}/_update/{name}.

        Raises NotFoundError (no such function or design document), TypeError (no
        request) for a body that is not JSON, and what the function throws (e.g.
        ForbiddenError for ``{forbidden: ...}``).
        """
        return await self._run(None, body, content_type, params)

    async def put(
        self,
        doc_id: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> UpdateResult:
        """Runs the function on the document ``doc_id`` (null to it if there is none):
        PUT /{db}/_design/{ddoc}/_update/{name}/{docid}.

        Raises as :meth:`post`, and BadRequestError (no request) for an id CouchDB refuses.
        """
        return await self._run(doc_id, body, content_type, params)

    async def _run(
        self,
        doc_id: str | None,
        body: Any,
        content_type: str | None,
        params: Mapping[str, Any] | None,
    ) -> UpdateResult:
        data, content_type = _encoded(body, content_type)
        response, answer = await self._call(doc_id, data, content_type, params)
        return UpdateResult(response, answer)

    def __repr__(self) -> str:
        return f"<UpdateFunction {self.endpoint}>"


def _encoded(body: Any, content_type: str | None) -> tuple[bytes | None, str | None]:
    """The bytes of ``body`` and the content type they go with (see UpdateFunction)."""
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError(f"content_type must be a str, not {type(content_type).__name__}")
    if body is None:
        return None, content_type
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), content_type or "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), content_type or "text/plain; charset=utf-8"
    return _json.dumps(body), content_type or "application/json"
