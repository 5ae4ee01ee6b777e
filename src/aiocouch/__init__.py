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
from .local_document import LocalDocument
from .queries import QueryResult, QueryResults
from .remote import HTTPResponse
from .retry import RetryPolicy
from .revisions import RevisionInfo, RevisionResult, RevsDiff
from .update_function import UpdateFunction, UpdateResult
from .view import View

__version__ = "4.1.0"

__all__ = [
    "BadRequestError",
    "ChangesFollower",
    "ConflictError",
    "ConnectTimeoutError",
    "CouchDB",
    "Database",
    "Document",
    "ExpectationFailedError",
    "ForbiddenError",
    "HTTPResponse",
    "IncompleteResponseError",
    "InvalidResponseError",
    "JWTAuth",
    "LocalDocument",
    "NotFoundError",
    "PreconditionFailedError",
    "ProxyAuth",
    "QueryResult",
    "QueryResults",
    "ReadTimeoutError",
    "RemoteResponseError",
    "RetryPolicy",
    "RevisionInfo",
    "RevisionResult",
    "RevsDiff",
    "SecurityDocument",
    "SessionAuth",
    "TimeLimitError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "UpdateFunction",
    "UpdateResult",
    "View",
    "__version__",
]
