"""A node of the cluster: its information, statistics and configuration.

``couchdb.node()`` is the node that answers (``_local``), ``couchdb.node("couchdb@host")``
a named one (``couchdb.membership()`` lists them). Its methods send the requests below
``/_node/{node-name}``; :attr:`Node.config` reads and writes its configuration. All of it
is for server admins. pouchdb-server has none of it (it keeps a 1.x configuration at
``/_config``, which CouchDB 3 no longer serves; this module does not use it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ._remote_node import (
    CONFIG_ANSWER,
    LOCAL_NODE,
    SECTION_ANSWER,
    STRING,
    RemoteNode,
    check_name,
)
from .typing import JsonDict

if TYPE_CHECKING:
    from .couchdb import CouchDB

__all__ = ["LOCAL_NODE", "Node", "NodeConfig"]

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class Node(RemoteNode):
    """The node ``name`` (default ``"_local"``: whichever node answers); sends no request.

    Raises TypeError or ValueError for a name that is neither ``"_local"`` nor
    ``name@host``. The methods raise NotFoundError for a node the cluster does not
    know, UnauthorizedError or ForbiddenError for a client that is no server admin.
    """

    def __init__(self, couchdb: CouchDB, name: str = LOCAL_NODE) -> None:
        super().__init__(couchdb._server, name)
        self.config = NodeConfig(self)
        """The node's configuration."""

    def __repr__(self) -> str:
        return f"<Node {self.name!r}>"

    async def info(self) -> JsonDict:
        """GET /_node/{node-name}: for ``_local`` the node's ``name``, for a named node
        its welcome object (``version``, ``uuid``...)."""
        info: JsonDict = await self._send("GET")
        return info

    async def stats(self, *path: str) -> JsonDict:
        """The node's statistics: GET /_node/{node-name}/_stats[/{path...}].

        ``path`` narrows them to a group or one metric, e.g. ``stats("couchdb",
        "request_time")``; each metric has ``value``, ``type`` and ``desc``.
        """
        for segment in path:
            check_name("A statistics path segment", segment)
        stats: JsonDict = await self._send("GET", ("_stats", *path))
        return stats

    async def system(self) -> JsonDict:
        """The Erlang VM's figures (memory, queues, processes): GET /_node/{node-name}/_system."""
        system: JsonDict = await self._send("GET", ("_system",))
        return system

    async def versions(self) -> JsonDict:
        """The versions of Erlang, the JavaScript engine and the collation library:
        GET /_node/{node-name}/_versions."""
        versions: JsonDict = await self._send("GET", ("_versions",))
        return versions

    async def prometheus(self) -> str:
        """The node's statistics in the Prometheus text format: GET /_node/{node-name}/_prometheus.

        CouchDB 3.4 ends each ``# HELP`` line with a bare carriage return; it becomes a
        newline here, so that the text parses line by line. Raises InvalidResponseError
        for a body that is not UTF-8.
        """
        text = await self._text(("_prometheus",), "text/plain")
        return text.replace("\r\n", "\n").replace("\r", "\n")

    async def smoosh_status(self) -> JsonDict:
        """The automatic compaction daemon's channels and queues:
        GET /_node/{node-name}/_smoosh/status."""
        status: JsonDict = await self._send("GET", ("_smoosh", "status"))
        return status


class NodeConfig:
    """The configuration of a node: sections of keys with string values.

    A value written with ``persist=False`` (header ``X-Couch-Persist: false``) lives in
    memory only: it is lost on :meth:`reload` and on a restart. Some sections cannot be
    written over HTTP (ForbiddenError).
    """

    def __init__(self, node: Node) -> None:
        self._node = node

    def __repr__(self) -> str:
        return f"<NodeConfig of node {self._node.name!r}>"

    async def all(self) -> dict[str, dict[str, str]]:
        """Every section with its keys and values: GET /_node/{node-name}/_config."""
        config: dict[str, dict[str, str]] = await self._node._config(expect=CONFIG_ANSWER)
        return config

    async def section(self, section: str) -> dict[str, str]:
        """The keys and values of ``section`` (empty if it has none):
        GET /_node/{node-name}/_config/{section}."""
        check_name("A configuration section", section)
        values: dict[str, str] = await self._node._config(section, expect=SECTION_ANSWER)
        return values

    async def get(self, section: str, key: str) -> str:
        """The value of ``key`` in ``section``: GET /_node/{node-name}/_config/{section}/{key}.

        Raises NotFoundError if it is not set.
        """
        _check_key(section, key)
        value: str = await self._node._config(section, key, expect=STRING)
        return value

    async def set(self, section: str, key: str, value: str, *, persist: bool = True) -> str:
        """Sets ``key`` in ``section`` to ``value``; returns the old value ("" if none):
        PUT /_node/{node-name}/_config/{section}/{key} with the value as a JSON string.

        CouchDB strips surrounding whitespace from the value. ``persist=False`` keeps it
        out of the ini files. The request is repeated only when it provably was not
        applied, since a repeat would report the new value as the old one. Raises
        TypeError or ValueError for a value that is no str or holds control characters
        (before any request), ForbiddenError for a section that cannot be written.
        """
        _check_key(section, key)
        if not isinstance(value, str):
            raise TypeError(f"A configuration value must be a str, not {type(value).__name__}")
        if _CONTROL_CHARACTERS.search(value):
            raise ValueError(f"A configuration value cannot hold control characters: {value!r}")
        return await self._node._set_config(section, key, value, persist=persist)

    async def delete(self, section: str, key: str, *, persist: bool = True) -> str:
        """Removes ``key`` from ``section``; returns its old value:
        DELETE /_node/{node-name}/_config/{section}/{key}.

        Raises NotFoundError if it is not set. ``persist=False`` leaves the ini files as
        they are (the key comes back on :meth:`reload`, if they hold it).
        """
        _check_key(section, key)
        return await self._node._delete_config(section, key, persist=persist)

    async def reload(self) -> None:
        """Reads the ini files again, dropping the values set with ``persist=False``:
        POST /_node/{node-name}/_config/_reload."""
        await self._node._reload_config()


def _check_key(section: str, key: str) -> None:
    check_name("A configuration section", section)
    check_name("A configuration key", key)
