"""The server's own resources: health, membership, uuids, tasks, database infos, set-up state.

:class:`~aiocouch.CouchDB` offers them as methods (``couchdb.up()``, ``couchdb.uuids()``,
``couchdb.membership()``, ``couchdb.active_tasks()``, ``couchdb.dbs_info()``,
``couchdb.cluster_setup()``); this module holds the shapes of their answers and the paging
of ``/_dbs_info``, which lists every database of the server and so can be long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from typing_extensions import TypedDict

from . import _json, _paths
from ._answers import AnswerShape, is_strings
from .exception import BadRequestError
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = [
    "DBS_INFO_PAGE_SIZE",
    "ClusterSetupState",
    "DatabaseInfoRow",
    "Membership",
    "UpStatus",
    "dbs_info",
]

DBS_INFO_PAGE_SIZE = 100
"""Databases per ``/_dbs_info`` request: CouchDB's default ``[chttpd]
max_db_number_for_dbs_info_req``, the most a ``POST /_dbs_info`` may name."""


class UpStatus(TypedDict, total=False):
    """``GET /_up``: ``status`` is ``"ok"``; ``seeds`` the state of the seed nodes, if any."""

    status: str
    seeds: JsonDict


class Membership(TypedDict):
    """``GET /_membership``: the nodes this node knows, and those that form the cluster."""

    all_nodes: list[str]
    cluster_nodes: list[str]


class ClusterSetupState(TypedDict):
    """``GET /_cluster_setup``: ``state`` such as ``"single_node_enabled"``,
    ``"cluster_enabled"``, ``"cluster_finished"`` or ``"cluster_disabled"``."""

    state: str


class DatabaseInfoRow(TypedDict, total=False):
    """One row of ``/_dbs_info``: the database name as ``key``, and its ``info`` (what
    ``GET /{db}`` answers) or, for a database that does not exist, ``error``."""

    key: str
    info: JsonDict
    error: str


async def dbs_info(
    server: RemoteServer,
    names: Iterable[str] | None,
    *,
    start_key: str | None,
    end_key: str | None,
    page_size: int,
) -> AsyncIterator[DatabaseInfoRow]:
    """The rows of :meth:`aiocouch.CouchDB.dbs_info`, a page of ``page_size`` at a time.

    With ``names``: POST /_dbs_info ``{"keys": [...]}`` per page, rows in the order of
    ``names``. Without: GET /_dbs_info?limit=...&start_key=... (names in order, each page
    starting after the last name of the one before, so a database created or deleted
    meanwhile neither repeats nor shifts a row). Raises ValueError, TypeError or
    BadRequestError for arguments that cannot make the requests, before any request.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be a positive int, not {page_size!r}")
    if names is not None:
        if start_key is not None or end_key is not None:
            raise ValueError("dbs_info() takes names or a start_key/end_key range, not both")
        listed = _checked_names(names)
        for first in range(0, len(listed), page_size):
            for row in await server._dbs_info_of(listed[first : first + page_size]):
                yield row
        return
    for bound in (start_key, end_key):
        if bound is not None:
            _checked_names([bound])
    params: dict[str, Any] = {"limit": page_size, "end_key": _json_key(end_key)}
    after = start_key
    skip = 0
    while True:
        page = await server._dbs_info_page(
            {**params, "start_key": _json_key(after), "skip": skip or None}
        )
        for row in page:
            yield row
        if len(page) < page_size:
            return
        after, skip = page[-1]["key"], 1


def _checked_names(names: Iterable[str]) -> list[str]:
    if isinstance(names, (str, bytes)):
        raise TypeError("names must be a list of database names, not a str")
    listed = list(names)
    for name in listed:
        try:
            _paths.validate_database_name(name)
        except ValueError as exc:
            raise BadRequestError(str(exc), error="illegal_database_name") from None
    return listed


def _json_key(name: str | None) -> str | None:
    return None if name is None else _json.dumps(name).decode()


MEMBERSHIP_ANSWER = AnswerShape(
    "a JSON object with lists of node names 'all_nodes' and 'cluster_nodes'",
    lambda value: (
        isinstance(value, dict)
        and all(is_strings(value.get(key)) for key in ("all_nodes", "cluster_nodes"))
    ),
)
UUIDS_ANSWER = AnswerShape(
    "a JSON object with a list of strings 'uuids'",
    lambda value: isinstance(value, dict) and is_strings(value.get("uuids")),
)
DBS_INFO_ANSWER = AnswerShape(
    "a JSON array of objects with a string 'key'",
    lambda value: (
        isinstance(value, list)
        and all(isinstance(row, dict) and isinstance(row.get("key"), str) for row in value)
    ),
)
UP_ANSWER = AnswerShape(
    "a JSON object with a string 'status'",
    lambda value: isinstance(value, dict) and isinstance(value.get("status"), str),
)
