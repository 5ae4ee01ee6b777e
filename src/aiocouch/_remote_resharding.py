"""Requests below ``/_reshard``: the resharder's state and its shard splitting jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _paths
from ._answers import ARRAY_OF_OBJECTS, OBJECT, STATE, AnswerShape
from ._transport import NO_BODY
from .retry import Repetition
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["RemoteResharding"]

_JOBS_ANSWER = AnswerShape(
    "a JSON object with a list of objects 'jobs'",
    lambda value: (
        isinstance(value, dict)
        and ARRAY_OF_OBJECTS.matches(value.get("jobs"))
        and all(isinstance(job.get("id"), str) for job in value["jobs"])
    ),
)
_JOB_ANSWER = AnswerShape(
    "a JSON object with a string 'id' and 'job_state'",
    lambda value: (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and isinstance(value.get("job_state"), str)
    ),
)


class RemoteResharding:
    """The resharder of the cluster: requests below ``/_reshard``."""

    def __init__(self, remote: RemoteServer) -> None:
        self._remote = remote

    async def _send(
        self,
        method: str,
        path: str,
        expect: AnswerShape,
        *,
        data: Any = NO_BODY,
        repetition: Repetition | None = None,
    ) -> Any:
        """Sends ``method /_reshard{path}``; returns the decoded answer (``expect``-ed shape)."""
        return await self._remote._answer(
            method, "/_reshard" + path, expect, data=data, repetition=repetition
        )

    async def _summary(self) -> JsonDict:
        """GET /_reshard."""
        summary: JsonDict = await self._send("GET", "", STATE)
        return summary

    async def _state(self, job_id: str | None = None) -> JsonDict:
        """GET /_reshard/state, or /_reshard/jobs/{id}/state."""
        state: JsonDict = await self._send("GET", _state_path(job_id), STATE)
        return state

    async def _set_state(self, state: str, reason: str | None, job_id: str | None = None) -> None:
        """PUT /_reshard/state, or /_reshard/jobs/{id}/state, {"state", "reason"}.

        Setting a state twice leaves the same state, so it may be repeated.
        """
        body: JsonDict = {"state": state}
        if reason is not None:
            body["reason"] = reason
        await self._send("PUT", _state_path(job_id), OBJECT, data=body, repetition=Repetition.SAFE)

    async def _jobs(self) -> list[JsonDict]:
        """GET /_reshard/jobs."""
        answer = await self._send("GET", "/jobs", _JOBS_ANSWER)
        jobs: list[JsonDict] = answer["jobs"]
        return jobs

    async def _create_jobs(self, body: JsonDict) -> list[JsonDict]:
        """POST /_reshard/jobs; one result per shard copy (a repeat could start more jobs)."""
        results: list[JsonDict] = await self._send("POST", "/jobs", ARRAY_OF_OBJECTS, data=body)
        return results

    async def _job(self, job_id: str) -> JsonDict:
        """GET /_reshard/jobs/{id}."""
        job: JsonDict = await self._send("GET", _job_path(job_id), _JOB_ANSWER)
        return job

    async def _delete_job(self, job_id: str) -> None:
        """DELETE /_reshard/jobs/{id} (a repeat after a lost answer would find no job)."""
        await self._send("DELETE", _job_path(job_id), OBJECT)


def _job_path(job_id: str) -> str:
    return "/jobs/" + _paths.quote_segment(job_id)


def _state_path(job_id: str | None) -> str:
    return "/state" if job_id is None else _job_path(job_id) + "/state"
