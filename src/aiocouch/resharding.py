"""Shard splitting: the cluster's resharder and its jobs.

``couchdb.resharding()`` is the resharder (``/_reshard``): its state, which it can be
switched to (running or stopped), and its jobs. :meth:`Resharding.split` starts jobs that
split a database's shards in two (one job per shard copy), and :meth:`ReshardJob.watch`
follows a job until it completed or failed. All of it is for server admins; pouchdb-server
has no shards and none of it.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from typing_extensions import TypedDict

from . import _paths
from ._remote_node import check_name
from ._remote_resharding import RemoteResharding
from .exception import BadRequestError, ServerError
from .typing import JsonDict

if TYPE_CHECKING:
    from .couchdb import CouchDB

__all__ = [
    "FINAL_JOB_STATES",
    "ReshardJob",
    "ReshardJobInfo",
    "ReshardState",
    "ReshardSummary",
    "Resharding",
    "SplitFailedError",
]

FINAL_JOB_STATES = frozenset({"completed", "failed"})
"""The job states after which a job changes no more."""
_RANGE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{8}\Z")


class ReshardSummary(TypedDict, total=False):
    """``GET /_reshard``: the resharder's ``state`` and how many jobs are in each state."""

    state: str
    state_reason: str | None
    completed: int
    failed: int
    running: int
    stopped: int
    total: int


class ReshardState(TypedDict, total=False):
    """The state of the resharder or of a job: ``"running"``, ``"stopped"`` (or, for a
    job, ``"new"``, ``"completed"``, ``"failed"``...), and why, if it was said."""

    state: str
    reason: str | None


class ReshardJobInfo(TypedDict, total=False):
    """A job, as ``GET /_reshard/jobs/{jobid}`` describes it."""

    id: str
    type: str
    source: str
    """The shard being split (``shards/00000000-ffffffff/db.1700000000``)."""
    target: list[str]
    """The two shards it is split into."""
    job_state: str
    """``new``, ``running``, ``stopped``, ``completed`` or ``failed``."""
    split_state: str
    """The step the split is at (``initial_copy``, ``topoff1``, ... ``completed``)."""
    state_info: JsonDict
    node: str
    start_time: str
    update_time: str
    history: list[JsonDict]


class SplitFailedError(ServerError):
    """Raised when the server could create some of the jobs of a split but not all.

    :attr:`jobs` holds the jobs it created, :attr:`failures` the results of the others
    (``error``, ``node`` and ``shard`` each).
    """

    jobs: list[ReshardJob]
    failures: list[JsonDict]


class Resharding(RemoteResharding):
    """The cluster's resharder; made by ``couchdb.resharding()``, it sends no request.

    Its methods raise UnauthorizedError or ForbiddenError for a client that is no server
    admin, NotFoundError where there is no resharder (pouchdb-server).
    """

    def __init__(self, couchdb: CouchDB) -> None:
        super().__init__(couchdb._server)

    def __repr__(self) -> str:
        return "<Resharding>"

    async def summary(self) -> ReshardSummary:
        """The resharder's state and its job counts: GET /_reshard."""
        return cast(ReshardSummary, await self._summary())

    async def state(self) -> ReshardState:
        """Whether the resharder runs, and why not: GET /_reshard/state."""
        return cast(ReshardState, await self._state())

    async def start(self) -> None:
        """Lets the resharder run its jobs again: PUT /_reshard/state {"state": "running"}.

        Jobs stopped on their own (:meth:`ReshardJob.stop`) stay stopped.
        """
        await self._set_state("running", None)

    async def stop(self, reason: str | None = None) -> None:
        """Stops every job of the cluster, until :meth:`start`: PUT /_reshard/state
        {"state": "stopped", "reason": ...}."""
        await self._set_state("stopped", _checked_reason(reason))

    async def jobs(self) -> list[ReshardJobInfo]:
        """Every job of the cluster (running, stopped and finished): GET /_reshard/jobs."""
        return cast(list[ReshardJobInfo], await self._jobs())

    def job(self, id: str) -> ReshardJob:
        """The job ``id`` (as :meth:`jobs` or :meth:`split` name it); sends no request."""
        return ReshardJob(self, id)

    async def split(
        self,
        *,
        db: str | None = None,
        shard: str | None = None,
        node: str | None = None,
        range: str | None = None,
    ) -> list[ReshardJob]:
        """Splits shards in two: POST /_reshard/jobs {"type": "split", ...}; the new jobs.

        Name the shards by database (``db``, optionally narrowed to one ``node`` and one
        hash ``range`` such as ``"00000000-7fffffff"``) or one ``shard`` (a shard file's
        name, ``"shards/00000000-ffffffff/db.1700000000"``, optionally on one ``node``);
        there is a job for each copy of each shard named. Raises ValueError or
        BadRequestError for arguments that cannot name shards (before any request),
        BadRequestError from the server for a database that does not exist, and
        :class:`SplitFailedError` when some of the jobs could not be created. The request
        is repeated only when it provably was not sent: a repeat could start jobs twice.
        """
        body: JsonDict = {"type": "split", **_split_target(db, shard, node, range)}
        results = await self._create_jobs(body)
        jobs = [
            ReshardJob(self, result["id"], node=result.get("node"), shard=result.get("shard"))
            for result in results
            if result.get("ok") is True and isinstance(result.get("id"), str)
        ]
        if len(jobs) < len(results):
            failures = [result for result in results if result.get("ok") is not True]
            error = SplitFailedError(
                f"The server created {len(jobs)} of {len(results)} split jobs: "
                + "; ".join(
                    f"{f.get('shard')} on {f.get('node')}: {f.get('error')}" for f in failures
                ),
                status=202,
            )
            error.jobs, error.failures = jobs, failures
            raise error
        return jobs


class ReshardJob:
    """One job of the resharder; sends no request until asked.

    ``node`` and ``shard`` are known for a job :meth:`Resharding.split` created. Its
    methods raise NotFoundError once the job is deleted.
    """

    def __init__(
        self,
        resharding: Resharding,
        id: str,
        *,
        node: str | None = None,
        shard: str | None = None,
    ) -> None:
        self._resharding = resharding
        self.id = check_name("A reshard job id", id)
        self.node = node
        self.shard = shard

    def __repr__(self) -> str:
        return f"<ReshardJob {self.id!r}>"

    async def info(self) -> ReshardJobInfo:
        """The job's shards, state, step and history: GET /_reshard/jobs/{jobid}."""
        return cast(ReshardJobInfo, await self._resharding._job(self.id))

    async def state(self) -> ReshardState:
        """The job's state, and why: GET /_reshard/jobs/{jobid}/state."""
        return cast(ReshardState, await self._resharding._state(self.id))

    async def resume(self) -> None:
        """Lets the job run again: PUT /_reshard/jobs/{jobid}/state {"state": "running"}."""
        await self._resharding._set_state("running", None, self.id)

    async def stop(self, reason: str | None = None) -> None:
        """Stops the job until :meth:`resume`: PUT /_reshard/jobs/{jobid}/state
        {"state": "stopped", "reason": ...}."""
        await self._resharding._set_state("stopped", _checked_reason(reason), self.id)

    async def delete(self) -> None:
        """Removes the job (stopping it first if it runs): DELETE /_reshard/jobs/{jobid}."""
        await self._resharding._delete_job(self.id)

    async def watch(self, interval: float = 1.0) -> AsyncIterator[ReshardJobInfo]:
        """``async for info in job.watch()``: the job each time its state or step changed.

        Sends GET /_reshard/jobs/{jobid} every ``interval`` seconds and hands the job out
        first, then whenever ``job_state`` or ``split_state`` differs from the last one
        handed out; it ends after a final state (``completed`` or ``failed``). A stopped
        job is watched on (until resumed, or until the caller stops iterating). Raises
        ValueError for an interval that is not a positive number (before any request).
        """
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        last: tuple[Any, Any] | None = None
        while True:
            info = await self.info()
            now = (info.get("job_state"), info.get("split_state"))
            if now != last:
                last = now
                yield info
            if now[0] in FINAL_JOB_STATES:
                return
            await asyncio.sleep(interval)


def _checked_reason(reason: str | None) -> str | None:
    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"reason must be a str, not {type(reason).__name__}")
    return reason


def _split_target(
    db: str | None, shard: str | None, node: str | None, range: str | None
) -> JsonDict:
    """The fields that name the shards of a split; raises for names that cannot."""
    target: JsonDict = {}
    if (db is None) == (shard is None):
        raise ValueError("split() takes db= or shard=, exactly one of them")
    if db is not None:
        try:
            target["db"] = _paths.validate_database_name(db)
        except ValueError as exc:
            raise BadRequestError(str(exc), error="illegal_database_name") from None
    if shard is not None:
        if range is not None:
            raise ValueError("split() takes a range with db=, not with shard=")
        if not check_name("A shard name", shard).startswith("shards/"):
            raise ValueError(f"A shard name starts with 'shards/', not {shard!r}")
        target["shard"] = shard
    if node is not None:
        if "@" not in check_name("A node name", node):
            raise ValueError(f"A node name is 'name@host', not {node!r}")
        target["node"] = node
    if range is not None:
        if not isinstance(range, str) or not _RANGE.match(range):
            raise ValueError(
                f"A range is two 8-digit hex bounds, '00000000-7fffffff', not {range!r}"
            )
        target["range"] = range
    return target
