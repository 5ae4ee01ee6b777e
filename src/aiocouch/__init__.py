"""aiocouch: an asyncio client library for Apache CouchDB."""

from .attachment import Attachment, AttachmentInfo, AttachmentStream
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
    RangeNotSatisfiableError,
    ReadTimeoutError,
    RemoteResponseError,
    TimeLimitError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from .follower import ChangesFollower
from .remote import HTTPResponse
from .retry import RetryPolicy
from .view import View

__version__ = "4.1.0"

__all__ = [
    "Attachment",
    "AttachmentInfo",
    "AttachmentStream",
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
    "NotFoundError",
    "PreconditionFailedError",
    "ProxyAuth",
    "RangeNotSatisfiableError",
    "ReadTimeoutError",
    "RemoteResponseError",
    "RetryPolicy",
    "SecurityDocument",
    "SessionAuth",
    "TimeLimitError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "View",
    "__version__",
]
