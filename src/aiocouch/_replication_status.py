"""What the server says about replications, as typed values (see :mod:`aiocouch.replication`).

Sources and targets are shown without credentials: CouchDB strips them in the scheduler,
and anything else that holds them keeps them out of its ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from .typing import JsonDict

__all__ = [
    "ReplicationProgress",
    "ReplicationResult",
    "SchedulerDocument",
    "SchedulerJob",
    "display_url",
]

_FINAL_STATES = frozenset({"completed", "failed"})
# The latest event of a scheduler job's history says what the job does now.
_STATE_OF_EVENT = {"started": "running", "crashed": "crashing"}


def display_url(url: Any) -> str | None:
    """``url`` (a source or target) as it may be shown: without user and password."""
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str):
        return None
    try:
        parsed = URL(url)
    except ValueError:
        return "<unparsable URL>"
    if parsed.user is None and parsed.password is None:
        return url
    return str(parsed.with_user(None))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ReplicationProgress:
    """Where a replication stands: its state and how many documents it has copied.

    ``state`` is the scheduler's (``initializing``, ``pending``, ``running``,
    ``crashing``, ``error``, ``failed``, ``completed``), or, where there is no scheduler,
    the state the replicator wrote into the replication document (pouchdb-server:
    ``triggered``, ``completed``, ``error``); None while the server has not taken the
    replication up yet. The counts are None where the server did not say.
    ``error`` is the server's reason for ``crashing``, ``error`` or ``failed``.
    """

    state: str | None
    docs_read: int | None = None
    docs_written: int | None = None
    doc_write_failures: int | None = None
    changes_pending: int | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """True once the replication has ended: ``completed`` or ``failed``."""
        return self.state in _FINAL_STATES

    @property
    def caught_up(self) -> bool:
        """True when it runs and no change of the source waits to be copied."""
        return self.state == "running" and self.changes_pending == 0

    @classmethod
    def from_stats(cls, state: str | None, stats: Any, error: Any = None) -> ReplicationProgress:
        """Built from a state and a statistics object (scheduler ``info``, a replication
        document's ``_replication_stats``, or a ``_replicate`` history entry)."""
        stats = stats if isinstance(stats, dict) else {}
        return cls(
            state=state,
            docs_read=_count(stats.get("docs_read")),
            docs_written=_count(stats.get("docs_written")),
            doc_write_failures=_count(stats.get("doc_write_failures")),
            changes_pending=_count(stats.get("changes_pending")),
            error=_text(error) if error is not None else _text(stats.get("error")),
        )

    @classmethod
    def from_replication_document(cls, doc: JsonDict) -> ReplicationProgress:
        """Built from a ``_replicator`` document (the state the replicator wrote into it,
        None before it did)."""
        return cls.from_stats(
            _text(doc.get("_replication_state")),
            doc.get("_replication_stats"),
            doc.get("_replication_state_reason"),
        )


@dataclass(frozen=True)
class ReplicationResult:
    """The answer to a one-shot ``POST /_replicate``: what this replication copied.

    The counts are this run's: CouchDB answers ``no_changes`` (all zero) when nothing was
    new, and its ``history`` lists earlier runs too (``raw`` holds the whole answer).
    """

    ok: bool
    docs_read: int | None
    docs_written: int | None
    doc_write_failures: int | None
    no_changes: bool
    session_id: str | None
    source_last_seq: Any = field(repr=False)
    history: list[JsonDict] = field(repr=False)
    raw: JsonDict = field(repr=False)

    @classmethod
    def from_answer(cls, answer: JsonDict) -> ReplicationResult:
        """Built from the answer of CouchDB (counts in its latest ``history`` entry) or of
        a server that answers flat counts (pouchdb-server)."""
        history = [entry for entry in answer.get("history") or () if isinstance(entry, dict)]
        session_id = _text(answer.get("session_id"))
        no_changes = answer.get("no_changes") is True
        if no_changes:
            stats: Any = {"docs_read": 0, "docs_written": 0, "doc_write_failures": 0}
        elif "docs_written" in answer:
            stats = answer
        elif history and session_id is not None and history[0].get("session_id") == session_id:
            stats = history[0]
        else:
            stats = {}
        progress = ReplicationProgress.from_stats("completed", stats)
        return cls(
            ok=answer.get("ok") is True,
            docs_read=progress.docs_read,
            docs_written=progress.docs_written,
            doc_write_failures=progress.doc_write_failures,
            no_changes=no_changes,
            session_id=session_id,
            source_last_seq=answer.get("source_last_seq", answer.get("last_seq")),
            history=history,
            raw=answer,
        )

    @property
    def progress(self) -> ReplicationProgress:
        """The result as a final progress (state ``completed``)."""
        return ReplicationProgress(
            state="completed",
            docs_read=self.docs_read,
            docs_written=self.docs_written,
            doc_write_failures=self.doc_write_failures,
            changes_pending=0,
        )


@dataclass(frozen=True)
class SchedulerJob:
    """A replication the scheduler runs now (an entry of ``GET /_scheduler/jobs``).

    ``id`` is the replication id; ``database`` and ``doc_id`` name its ``_replicator``
    document (None for one started with ``POST /_replicate``); ``info`` holds its counts;
    ``history`` its events, newest first.
    """

    id: str
    source: str | None
    target: str | None
    database: str | None
    doc_id: str | None
    user: str | None
    node: str | None
    start_time: str | None
    info: JsonDict | None = field(repr=False)
    history: list[JsonDict] = field(repr=False)
    raw: JsonDict = field(repr=False)

    @classmethod
    def from_row(cls, row: JsonDict) -> SchedulerJob:
        """Built from one entry of ``jobs``."""
        info, history = row.get("info"), row.get("history")
        events = [e for e in history if isinstance(e, dict)] if isinstance(history, list) else []
        return cls(
            id=str(row.get("id")),
            source=display_url(row.get("source")),
            target=display_url(row.get("target")),
            database=_text(row.get("database")),
            doc_id=_text(row.get("doc_id")),
            user=_text(row.get("user")),
            node=_text(row.get("node")),
            start_time=_text(row.get("start_time")),
            info=info if isinstance(info, dict) else None,
            history=events,
            raw=row,
        )

    @property
    def progress(self) -> ReplicationProgress:
        """Its state (from the latest event: ``running``, ``crashing`` or ``pending``) and
        counts."""
        latest = self.history[0] if self.history else {}
        event = latest.get("type")
        state = _STATE_OF_EVENT.get(event, "pending") if isinstance(event, str) else "pending"
        return ReplicationProgress.from_stats(state, self.info, latest.get("reason"))


@dataclass(frozen=True)
class SchedulerDocument:
    """The scheduler's view of a ``_replicator`` document (``GET /_scheduler/docs...``).

    ``id`` is the replication id (None once a one-shot replication completed); ``info``
    holds the counts, or the error of a ``crashing`` or ``failed`` replication.
    """

    database: str | None
    doc_id: str | None
    id: str | None
    state: str | None
    source: str | None
    target: str | None
    error_count: int | None
    start_time: str | None
    last_updated: str | None
    node: str | None
    info: JsonDict | None = field(repr=False)
    raw: JsonDict = field(repr=False)

    @classmethod
    def from_row(cls, row: JsonDict) -> SchedulerDocument:
        """Built from one entry of ``docs`` (or the answer about one document)."""
        info = row.get("info")
        return cls(
            database=_text(row.get("database")),
            doc_id=_text(row.get("doc_id")),
            id=_text(row.get("id")),
            state=_text(row.get("state")),
            source=display_url(row.get("source")),
            target=display_url(row.get("target")),
            error_count=_count(row.get("error_count")),
            start_time=_text(row.get("start_time")),
            last_updated=_text(row.get("last_updated")),
            node=_text(row.get("node")),
            info=info if isinstance(info, dict) else None,
            raw=row,
        )

    @property
    def progress(self) -> ReplicationProgress:
        """Its state and counts."""
        return ReplicationProgress.from_stats(self.state, self.info)
