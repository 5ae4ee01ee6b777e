"""Clusters: a client of several nodes that fails over, and the write and read quorum.

**Several nodes.** ``CouchDB(["http://a:5984", "http://b:5984"], user, password)`` takes
the nodes of a cluster, or a primary and a fallback, in order of preference (a single URL,
a ``str``, works as in aiocouch 4.0.1). Each attempt of a call goes to the first node
that is healthy. A node becomes unhealthy when an attempt on it fails in a way that
concerns the node: no connection, a connection that broke or went silent, an answer cut
short, or an answer with a 5xx status of the client's retry policy (502, 503, 504 by
default; CouchDB's 500 is the answer to a request that fails on every node, so it is not
a node failure unless added to :attr:`~aiocouch.retry.RetryPolicy.statuses`). Then:

- a node that could not be connected to (nothing was sent) is passed over at once:
  the same attempt goes to the next node, healthy ones first, then the others, the one
  that failed longest ago first;
- after any other failure the call is repeated as the retry policy allows, exactly as
  with one node (a write whose answer was lost is repeated only where that cannot apply
  it twice, and a 409 after it is checked the same way), on the next healthy node;
- a stream (``docs()``, views, ``find()``, changes, a follower) opens on a healthy node,
  and one that breaks midway resumes on one;
- an unhealthy node is checked again in the background, with ``GET /_up``, once
  :attr:`Failover.recheck` seconds have passed since it failed (lazily: when a call is
  made after then), and is used again as soon as a check finds it healthy. When no node
  is healthy, calls go to the node that failed longest ago.

Health: ``GET /_up`` answered 200 (``"status": "ok"``), or 401/403 (the node answers,
but asks credentials of a health check: ``[chttpd] require_valid_user``). CouchDB answers
404 with ``"status": "maintenance_mode"``, ``"nolb"`` or ``"seeding"`` when it asks
clients to keep away: unhealthy. A server without ``/_up`` (pouchdb-server answers 404
``not_found``) is healthy when ``GET /`` is answered.

Authentication is shared by the nodes: basic, JWT and proxy credentials go to each. A
cookie session (:class:`~aiocouch.auth.SessionAuth`) logs in once on whichever node
serves, and its cookie goes to every node: a CouchDB cluster accepts it on every node
when they share ``[chttpd_auth] secret`` (and the ``_users`` database, as clustered
databases are), which the cluster set-up requires. A node that refuses the cookie (a
fallback server outside the cluster, with another secret) answers 401, the client logs in
there and repeats the request once, as with one server.

**Write and read quorum.** On a CouchDB cluster each document has ``n`` copies (3 by
default). A write answers once ``w`` of them hold it (a majority by default); with fewer,
it answers **202 Accepted** (``HTTPResponse.accepted``; in ``_bulk_docs`` items
``"accepted": true``, :attr:`~aiocouch.bulk.BulkOperation.accepted`) and the write may
not be readable everywhere yet. A document read asks ``r`` copies (a majority). Views,
``_all_docs``, ``_changes`` and Mango indexes read one copy of each shard, so they may
miss a write that has just answered, unless it was written with ``w`` equal to ``n``.
:class:`Quorum` sets ``w`` and ``r`` for every call of a client; the calls that take
``w=``/``r=`` override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Failover", "NodeStatus", "Quorum"]


@dataclass(frozen=True)
class Failover:
    """How a client of several nodes checks a node that failed (see the module)."""

    recheck: float = 5.0
    """Seconds after a node's failure (or its last failed check) before it is checked."""
    check_timeout: float = 5.0
    """The longest one health check may take, in seconds (a node that takes longer is
    unhealthy)."""

    def __post_init__(self) -> None:
        for name in ("recheck", "check_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")


@dataclass(frozen=True)
class NodeStatus:
    """One node of a client, as the client sees it now (no request)."""

    url: str
    """The node's URL, without credentials."""
    healthy: bool
    """False from a failure of the node until a check or a call finds it healthy again."""
    failures: int
    """Failures (calls and checks) since the node was last found healthy."""


@dataclass(frozen=True)
class Quorum:
    """The write and read quorum a client sends with every document write and read.

    ``w``: how many copies must hold a write before it answers 201 (else 202); sent as
    ``?w=`` with document writes (``save()``, ``delete()``, ``post()``, attachments,
    ``copy()``) and ``_bulk_docs``. ``r``: how many copies a document read asks; sent as
    ``?r=`` with document reads (``get()``, ``fetch()``, ``info()``) and as ``"r"`` in
    the body of ``find()``. None (the default): not sent, the database's own quorum
    applies (a majority of its ``n`` copies). Make both equal to ``n`` to read your own
    writes through any read, views and ``_changes`` included.
    """

    w: int | None = None
    r: int | None = None

    def __post_init__(self) -> None:
        check_quorum("w", self.w)
        check_quorum("r", self.r)

    def _write(self, w: int | None = None) -> dict[str, Any]:
        """The query parameters of a write: ``w`` if given, else this default, else none."""
        return _quorum_parameter("w", self.w if w is None else check_quorum("w", w))

    def _read(self, r: int | None = None) -> dict[str, Any]:
        """The query parameters of a read: ``r`` if given, else this default, else none."""
        return _quorum_parameter("r", self.r if r is None else check_quorum("r", r))


def check_quorum(name: str, value: int | None) -> int | None:
    """``value`` if it is None or an int of at least 1; else ValueError naming ``name``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be None or an int of at least 1, got {value!r}")
    return value


def _quorum_parameter(name: str, value: int | None) -> dict[str, Any]:
    return {} if value is None else {name: value}
