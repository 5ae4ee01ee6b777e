"""aiocouch: an asyncio client library for Apache CouchDB."""

from .auth import JWTAuth, ProxyAuth, SessionAuth
from .couchdb import CouchDB
from .database import Database
from .document import Document, SecurityDocument
from .exception import (
    BadRequestError,
    ConflictError,
    ConnectTimeoutError,
    ExpectationFailedError,
    ForbiddenError,
    IncompleteResponseError,
    InvalidResponseError,
    NotFoundError,
    PreconditionFailedError,
    ReadTimeoutError,
    RemoteResponseError,
    TimeLimitError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from .follower import ChangesFollower
from .mango import (
    ExecutionStats,
    IndexDeletions,
    Mango,
    MangoIndex,
    MangoQuery,
    MangoWarning,
    QueryPlan,
)
from .remote import HTTPResponse
from .retry import RetryPolicy
from .view import View
from .view_query import DesignDocumentInfo, ViewQuery, ViewResults, ViewRows

__version__ = "4.1.0"

__all__ = [
    "BadRequestError",
    "ChangesFollower",
    "ConflictError",
    "ConnectTimeoutError",
    "CouchDB",
    "Database",
    "DesignDocumentInfo",
    "Document",
    "ExecutionStats",
    "ExpectationFailedError",
    "ForbiddenError",
    "HTTPResponse",
    "IncompleteResponseError",
    "IndexDeletions",
    "InvalidResponseError",
    "JWTAuth",
    "Mango",
    "MangoIndex",
    "MangoQuery",
    "MangoWarning",
    "NotFoundError",
    "PreconditionFailedError",
    "ProxyAuth",
    "QueryPlan",
    "ReadTimeoutError",
    "RemoteResponseError",
    "RetryPolicy",
    "SecurityDocument",
    "SessionAuth",
    "TimeLimitError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "View",
    "ViewQuery",
    "ViewResults",
    "ViewRows",
    "__version__",
]
