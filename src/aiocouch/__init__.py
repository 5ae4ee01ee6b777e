"""aiocouch: an asyncio client library for Apache CouchDB."""

from .attachment import Attachment, AttachmentInfo, AttachmentStream
from .auth import JWTAuth, ProxyAuth, SessionAuth
from .cluster import Failover, NodeStatus, Quorum
from .conflicts import (
    ConflictingRevisions,
    EditFailure,
    EditResults,
    Resolution,
    TooManyConflictsError,
)
from .couchdb import CouchDB
from .database import Database
from .db_updates import DatabaseUpdate, DbUpdatesFeed, DbUpdatesFollower
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
from .local_document import LocalDocument
from .maintenance import DatabaseMaintenance
from .mango import (
    ExecutionStats,
    IndexDeletions,
    Mango,
    MangoIndex,
    MangoQuery,
    MangoWarning,
    QueryPlan,
)
from .node import Node, NodeConfig
from .partition import Partition
from .remote import HTTPResponse
from .replication import (
    Replication,
    ReplicationDocument,
    ReplicationEndpoint,
    ReplicationError,
    ReplicationProgress,
    ReplicationResult,
    Replications,
    SchedulerDocument,
    SchedulerJob,
)
from .resharding import Resharding, ReshardJob, SplitFailedError
from .retry import RetryPolicy
from .revisions import RevisionInfo, RevisionResult, RevsDiff
from .session import Login, SessionInfo
from .update_function import UpdateFunction, UpdateResult
from .users import User, Users
from .view import View
from .view_query import DesignDocumentInfo, ViewQuery, ViewResults, ViewRows

__version__ = "4.1.0"

__all__ = [
    "Attachment",
    "AttachmentInfo",
    "AttachmentStream",
    "BadRequestError",
    "ChangesFollower",
    "ConflictError",
    "ConflictingRevisions",
    "ConnectTimeoutError",
    "CouchDB",
    "Database",
    "DatabaseMaintenance",
    "DatabaseUpdate",
    "DbUpdatesFeed",
    "DbUpdatesFollower",
    "DesignDocumentInfo",
    "Document",
    "EditFailure",
    "EditResults",
    "ExecutionStats",
    "ExpectationFailedError",
    "Failover",
    "ForbiddenError",
    "HTTPResponse",
    "IncompleteResponseError",
    "IndexDeletions",
    "InvalidResponseError",
    "JWTAuth",
    "LocalDocument",
    "Login",
    "Mango",
    "MangoIndex",
    "MangoQuery",
    "MangoWarning",
    "Node",
    "NodeConfig",
    "NodeStatus",
    "NotFoundError",
    "Partition",
    "PreconditionFailedError",
    "ProxyAuth",
    "QueryPlan",
    "Quorum",
    "RangeNotSatisfiableError",
    "ReadTimeoutError",
    "RemoteResponseError",
    "Replication",
    "ReplicationDocument",
    "ReplicationEndpoint",
    "ReplicationError",
    "ReplicationProgress",
    "ReplicationResult",
    "Replications",
    "ReshardJob",
    "Resharding",
    "Resolution",
    "RetryPolicy",
    "RevisionInfo",
    "RevisionResult",
    "RevsDiff",
    "SchedulerDocument",
    "SchedulerJob",
    "SecurityDocument",
    "SessionAuth",
    "SessionInfo",
    "SplitFailedError",
    "TimeLimitError",
    "TooManyConflictsError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "UpdateFunction",
    "UpdateResult",
    "User",
    "Users",
    "View",
    "ViewQuery",
    "ViewResults",
    "ViewRows",
    "__version__",
]
