"""Requests below ``/_node/{node-name}``: a node's information, statistics and configuration."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _paths
from ._answers import OBJECT, AnswerShape
from ._transport import NO_BODY
from .retry import Repetition

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = ["LOCAL_NODE", "RemoteNode", "check_name"]

LOCAL_NODE = "_local"
"""The name that stands for the node that answers the request."""

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _is_text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


CONFIG_ANSWER = AnswerShape(
    "a JSON object of sections, each an object of strings",
    lambda value: isinstance(value, dict) and all(_is_text_map(item) for item in value.values()),
)
SECTION_ANSWER = AnswerShape("a JSON object of strings", _is_text_map)
STRING = AnswerShape("a JSON string", lambda value: isinstance(value, str))


def check_name(what: str, value: object) -> str:
    """Returns ``value`` if it can name a node, section, key or job, else raises
    TypeError or ValueError (empty, or with control characters)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value or _CONTROL_CHARACTERS.search(value):
        raise ValueError(f"{what} must be non-empty, without control characters: {value!r}")
    return value


class RemoteNode:
    """A node of the cluster: requests below ``/_node/{node-name}``."""

    def __init__(self, remote: RemoteServer, name: str) -> None:
        check_name("A node name", name)
        if name != LOCAL_NODE and "@" not in name:
            raise ValueError(
                f"A node name is '{LOCAL_NODE}' or 'name@host' (see couchdb.membership()), "
                f"not {name!r}"
            )
        self._remote = remote
        self.name = name

    @property
    def endpoint(self) -> str:
        """The quoted path of the node, ``/_node/{node-name}``."""
        return "/_node/" + _paths.quote_segment(self.name)

    async def _send(
        self,
        method: str,
        segments: tuple[str, ...] = (),
        *,
        expect: AnswerShape = OBJECT,
        data: Any = NO_BODY,
        headers: Mapping[str, str] | None = None,
        repetition: Repetition | None = None,
    ) -> Any:
        """Sends ``method /_node/{node-name}/{segments...}``; returns the decoded answer."""
        path = self._path(segments)
        _, value = await self._remote._request(
            method,
            path,
            data=data,
            headers=headers,
            subject=self._subject(segments),
            expect=expect,
            repetition=repetition,
        )
        return value

    async def _text(self, segments: tuple[str, ...], content_type: str) -> str:
        """GET ``/_node/{node-name}/{segments...}`` accepting ``content_type``; its text."""
        path = self._path(segments)
        subject = self._subject(segments)
        headers = {"Accept": content_type}
        _, body = await self._remote._request(
            "GET", path, headers=headers, subject=subject, return_json=False
        )
        try:
            text: str = body.decode()
        except UnicodeDecodeError as exc:
            raise self._remote._http.invalid_answer(
                f"the body is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                "GET",
                path,
                None,
                headers,
                subject,
                status=200,
            ) from None
        return text

    def _path(self, segments: tuple[str, ...]) -> str:
        return "/".join((self.endpoint, *(_paths.quote_segment(s) for s in segments)))

    def _subject(self, segments: tuple[str, ...]) -> str:
        what = "/".join(segments)
        return f"{what} of node '{self.name}'" if what else f"node '{self.name}'"

    async def _config(self, *segments: str, expect: AnswerShape) -> Any:
        """GET /_node/{node-name}/_config[/{section}[/{key}]]."""
        return await self._send("GET", ("_config", *segments), expect=expect)

    async def _set_config(self, section: str, key: str, value: str, *, persist: bool) -> str:
        """PUT /_node/{node-name}/_config/{section}/{key} "value"; the old value.

        Repeated only when it provably was not applied: a repeat would answer the new
        value as the old one.
        """
        old: str = await self._send(
            "PUT",
            ("_config", section, key),
            expect=STRING,
            data=value,
            headers=_persist_header(persist),
        )
        return old

    async def _delete_config(self, section: str, key: str, *, persist: bool) -> str:
        """DELETE /_node/{node-name}/_config/{section}/{key}; the old value."""
        old: str = await self._send(
            "DELETE",
            ("_config", section, key),
            expect=STRING,
            headers=_persist_header(persist),
        )
        return old

    async def _reload_config(self) -> None:
        """POST /_node/{node-name}/_config/_reload."""
        await self._send("POST", ("_config", "_reload"), repetition=Repetition.SAFE)


def _persist_header(persist: bool) -> Mapping[str, str] | None:
    return None if persist else {"X-Couch-Persist": "false"}
