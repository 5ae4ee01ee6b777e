"""Count the HTTP requests an :class:`aiohttp.ClientSession` sends, for tests.

::

    counter = RequestCounter()
    async with CouchDB(url, user=..., password=..., trace_configs=counter.trace_configs) as c:
        ...
    assert counter.requests == [("PUT", "/db"), ("GET", "/db/doc")]

Each request is recorded when aiohttp starts it (``on_request_start``), as the method and
the path with query string exactly as sent on the wire (``yarl.URL.raw_path_qs``, so a
``/`` inside a document id shows as ``%2F`` and JSON query values stay percent-encoded),
less the query parameters given as ``unrecorded`` (such as the ``w=3`` and ``r=3`` that a
cluster run adds to the requests of the suite's client).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace

import aiohttp

__all__ = ["RequestCounter"]


class RequestCounter:
    """Records ``(method, raw path + query)`` of every request made with :attr:`trace_configs`."""

    def __init__(self, unrecorded: Iterable[str] = ()) -> None:
        """``unrecorded``: query parameters (``"w=3"``, as sent) left out of the paths."""
        self._unrecorded = frozenset(unrecorded)
        #: The recorded requests, oldest first.
        self.requests: list[tuple[str, str]] = []
        #: The headers each of them carried (session defaults included), same order.
        self.headers: list[tuple[str, str, dict[str, str]]] = []
        trace_config = aiohttp.TraceConfig()
        trace_config.on_request_start.append(self._on_request_start)
        #: Pass as ``trace_configs=`` to :class:`aiohttp.ClientSession` (or to ``CouchDB``).
        self.trace_configs: list[aiohttp.TraceConfig] = [trace_config]

    async def _on_request_start(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        method, path = params.method.upper(), params.url.raw_path_qs
        if self._unrecorded and "?" in path:
            path, _, query = path.partition("?")
            kept = [part for part in query.split("&") if part not in self._unrecorded]
            path += "?" + "&".join(kept) if kept else ""
        self.requests.append((method, path))
        self.headers.append((method, path, dict(params.headers)))

    @property
    def count(self) -> int:
        """How many requests were recorded since creation or the last :meth:`reset`."""
        return len(self.requests)

    def reset(self) -> None:
        """Forget the requests recorded so far."""
        self.requests.clear()
        self.headers.clear()

    def __repr__(self) -> str:
        return f"<RequestCounter count={self.count}>"
