"""What a request helper returns: the response (status, headers, ETag) and its body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from ._transport import RawResponse

__all__ = ["HTTPResponse", "RequestResult", "ResponseHeaders", "confirmed_result"]


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
        self._response = resp
        """Where the headers come from, read only when asked for (see RawResponse)."""
        self._headers: ResponseHeaders | None = None
        self._body: bytes = getattr(resp, "body", b"")
        """The undecoded body (a document's JSON text, kept as its synced state)."""

    @property
    def headers(self) -> ResponseHeaders:
        """The HTTP headers of the response (look-ups ignore case)."""
        if self._headers is None:
            self._headers = ResponseHeaders(self._response.headers)
        return self._headers

    @property
    def accepted(self) -> bool:
        """True for 202 Accepted: a cluster took the write, but fewer copies than its write
        quorum (``w``) confirmed it; it may be missing from reads for a while."""
        return self.status == 202

    @property
    def etag(self) -> str | None:
        """The ETag header without its quotes (for documents: the revision), or None."""
        value = self.headers.get("ETag")
        return value.strip('"') if value is not None else None

    def __repr__(self) -> str:
        return f"<HTTPResponse status={self.status} etag={self.etag!r}>"


RequestResult = tuple[HTTPResponse, Any]
"""What the private request helpers return: the response and its decoded body."""


def confirmed_result(status: int, id: str, rev: str) -> RequestResult:
    """The result a write's lost answer would have carried, once the write is confirmed."""
    headers = CIMultiDictProxy(CIMultiDict({"ETag": f'"{rev}"'}))
    response = HTTPResponse(RawResponse(status, headers, b""))
    return response, {"ok": True, "id": id, "rev": rev}
