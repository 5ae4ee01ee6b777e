"""aiocouch: an asyncio client library for Apache CouchDB."""

from .auth import JWTAuth, ProxyAuth, SessionAuth
from .couchdb import CouchDB
from .database import Database
from .document import Document, SecurityDocument
from .exception import (
    BadRequestError,
    ConflictError,
    ExpectationFailedError,
    ForbiddenError,
    NotFoundError,
    PreconditionFailedError,
    RemoteResponseError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from .remote import HTTPResponse
from .view import View

__version__ = "4.1.0"

__all__ = [
    "BadRequestError",
    "ConflictError",
    "CouchDB",
    "Database",
    "Document",
    "ExpectationFailedError",
    "ForbiddenError",
    "HTTPResponse",
    "JWTAuth",
    "NotFoundError",
    "PreconditionFailedError",
    "ProxyAuth",
    "RemoteResponseError",
    "SecurityDocument",
    "SessionAuth",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "View",
    "__version__",
]
