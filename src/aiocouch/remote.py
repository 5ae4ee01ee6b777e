"""The request layer of the public classes: one ``Remote*`` class per CouchDB resource.

Each private method sends one request through :class:`aiocouch._client.HTTPClient` (which
may repeat it, see :mod:`aiocouch.retry`) and returns the decoded answer. The public classes
(``Database``, ``Document``, ...) derive from these and hold the state. The classes live in
one module per resource (``_remote_server``, ``_remote_database``, ``_remote_document``,
``_remote_view``); this module keeps aiocouch 4.0.1's import path for them.
"""

from __future__ import annotations

from . import _paths
from ._params import stringify_params
from ._remote_database import RemoteDatabase
from ._remote_document import RemoteAttachment, RemoteDocument
from ._remote_server import RemoteServer
from ._remote_view import RemoteView
from ._response import HTTPResponse, RequestResult
from ._row_stream import RowStream

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

_quote_id = _paths.quote_segment
_stringify_params = stringify_params
