"""Several nodes behind one client: each attempt goes to a healthy node (see :mod:`.cluster`).

:class:`NodeSet` offers the two calls of a transport over one transport per node, between
the retry loop (and the authentication) above and the transports below. It passes over a
node that could not be connected to within the same attempt; every other failure goes up
to the retry loop unchanged, which decides as with one node whether the call is repeated,
and the repeat goes to a healthy node.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, suppress
from typing import Any

import aiohttp
from yarl import URL

from . import _json
from ._async_context import async_context_manager
from ._transport import RawResponse, StreamedResponse, Transport
from .cluster import Failover, NodeStatus
from .exception import ForbiddenError, NotFoundError, RemoteResponseError, UnauthorizedError
from .retry import RetryPolicy

__all__ = ["NodeSet", "node_urls"]

_log = logging.getLogger("aiocouch")


def node_urls(server: str | Sequence[str]) -> list[str]:
    """The URLs a client was given: one ``str``, or a non-empty sequence of distinct ones.

    Raises TypeError or ValueError naming the problem (before any request).
    """
    if isinstance(server, str):
        return [server]
    if not isinstance(server, Sequence):
        raise TypeError(
            f"server must be a URL (str) or a sequence of URLs, not {type(server).__name__}"
        )
    urls = list(server)
    if not urls:
        raise ValueError("server must name at least one URL")
    seen: set[str] = set()
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f"Each server URL must be a str, not {type(url).__name__}")
        bare = str(URL(url).with_user(None)).rstrip("/")
        if bare in seen:
            raise ValueError(f"The server URL {bare} is given twice")
        seen.add(bare)
    return urls


class _Failure(enum.Enum):
    NOT_SENT = "not sent"  # no connection: the next node may have the same attempt
    NODE = "node"  # the node broke the exchange, or answered that it cannot serve


def _node_failure(error: BaseException, policy: RetryPolicy) -> _Failure | None:
    """What ``error`` says about the node that raised it (None: nothing bad)."""
    if isinstance(error, aiohttp.ClientSSLError):
        return None  # a TLS set-up problem: raised, as with one node
    if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return _Failure.NOT_SENT
    if isinstance(error, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        return _Failure.NODE
    if (
        isinstance(error, RemoteResponseError)
        and error.status >= 500
        and error.status in policy.statuses
    ):
        return _Failure.NODE
    return None


class _Node:
    """One node: its transport and its health as this client sees it."""

    __slots__ = ("checking", "due", "failed_at", "failures", "healthy", "transport")

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.healthy = True
        self.failures = 0
        self.failed_at = 0.0
        self.due = 0.0
        """When the next health check may start (while unhealthy)."""
        self.checking: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.transport.base_url

    def status(self) -> NodeStatus:
        return NodeStatus(self.url, self.healthy, self.failures)


class NodeSet:
    """Sends each attempt to a healthy node of ``transports`` (in order of preference)."""

    def __init__(
        self, transports: Sequence[Transport], failover: Failover, policy: RetryPolicy
    ) -> None:
        self._nodes = [_Node(transport) for transport in transports]
        self._failover = failover
        self._policy = policy
        self._closed = False

    @property
    def base_url(self) -> str:
        """The nodes' URLs, without credentials, comma-separated (names the client)."""
        return ", ".join(node.url for node in self._nodes)

    @property
    def preferred(self) -> Transport:
        """The transport of the node that the next attempt goes to (no check started)."""
        return next((node for node in self._nodes if node.healthy), self._nodes[0]).transport

    def statuses(self) -> tuple[NodeStatus, ...]:
        """Every node's health, in order of preference."""
        return tuple(node.status() for node in self._nodes)

    async def request(
        self, method: str, path: str, *, timeout: aiohttp.ClientTimeout, **options: Any
    ) -> RawResponse:
        """One attempt: on the first healthy node, or the next one if none could connect."""
        started = time.monotonic()
        tried: list[_Node] = []
        while True:
            node = self._choose(tried)
            try:
                response = await node.transport.request(
                    method, path, timeout=_left(timeout, started, tried), **options
                )
            except Exception as error:
                if not self._failed(node, error, tried):
                    raise
                continue
            self._found_healthy(node)
            return response

    @async_context_manager
    async def stream(
        self, method: str, path: str, *, timeout: aiohttp.ClientTimeout, **options: Any
    ) -> AsyncIterator[StreamedResponse]:
        """One streamed attempt, opened as :meth:`request` sends one; a node that breaks
        the stream midway is marked unhealthy."""
        started = time.monotonic()
        tried: list[_Node] = []
        async with AsyncExitStack() as stack:
            while True:
                node = self._choose(tried)
                try:
                    pieces = await stack.enter_async_context(
                        node.transport.stream(
                            method, path, timeout=_left(timeout, started, tried), **options
                        )
                    )
                except Exception as error:
                    if not self._failed(node, error, tried):
                        raise
                    continue
                break
            self._found_healthy(node)
            try:
                yield pieces
            except Exception as error:
                self._failed(node, error, None)
                raise

    async def close(self) -> None:
        """Stops the health checks and closes every node's transport."""
        self._closed = True
        checks = [node.checking for node in self._nodes if node.checking is not None]
        for check in checks:
            check.cancel()
        await asyncio.gather(*checks, return_exceptions=True)
        # The last first: a connector= given to the client is owned by the first node.
        for node in reversed(self._nodes):
            await node.transport.close()

    def _choose(self, tried: list[_Node]) -> _Node:
        """The first healthy node not ``tried``, else the one that failed longest ago.

        Starts the health checks that are due.
        """
        now = time.monotonic()
        for node in self._nodes:
            if not node.healthy and node.checking is None and now >= node.due and not self._closed:
                node.checking = asyncio.ensure_future(self._check(node))
        untried = [node for node in self._nodes if node not in tried]
        healthy = next((node for node in untried if node.healthy), None)
        if healthy is not None:
            return healthy
        return min(untried, key=lambda node: node.failed_at)

    def _failed(self, node: _Node, error: BaseException, tried: list[_Node] | None) -> bool:
        """Notes what ``error`` says about ``node``; True if the attempt goes to another node.

        Only an attempt that never reached its node (``tried`` lists the nodes it tried)
        moves on, while some node is left to try. Any other answer (a 404, a 409...)
        shows the node healthy.
        """
        failure = _node_failure(error, self._policy)
        if failure is None:
            self._found_healthy(node)
            return False
        self._mark_unhealthy(node, error)
        if failure is not _Failure.NOT_SENT or tried is None:
            return False
        tried.append(node)
        return len(tried) < len(self._nodes)

    def _mark_unhealthy(self, node: _Node, error: BaseException) -> None:
        now = time.monotonic()
        node.failures += 1
        if node.healthy:
            _log.warning("%s failed (%s); calls go to another node", node.url, _describe(error))
            node.healthy = False
            node.failed_at = now
        node.due = now + self._failover.recheck

    def _found_healthy(self, node: _Node) -> None:
        """Marks ``node`` healthy: it answered (a call, or a health check)."""
        if node.healthy:
            return
        _log.info("%s is healthy again", node.url)
        node.healthy = True
        node.failures = 0

    async def _check(self, node: _Node) -> None:
        """One health check of ``node`` (see :func:`_answers_health_check`)."""
        try:
            healthy = await _answers_health_check(node.transport, self._failover.check_timeout)
        except Exception as error:
            _log.debug("Health check of %s failed (%s)", node.url, _describe(error))
            healthy = False
        finally:
            node.checking = None
        if healthy:
            self._found_healthy(node)
        else:
            node.failures += 1
            node.due = time.monotonic() + self._failover.recheck


async def _answers_health_check(transport: Transport, seconds: float) -> bool:
    """Whether the node is healthy: GET /_up, and GET / where there is no ``/_up``.

    Raises what the transport raises when the node does not answer.
    """
    timeout = aiohttp.ClientTimeout(
        total=seconds, connect=seconds, sock_connect=seconds, sock_read=seconds
    )
    subject = f"the health check of {transport.base_url}"
    try:
        response = await transport.request("GET", "/_up", subject=subject, timeout=timeout)
    except (UnauthorizedError, ForbiddenError):
        return True  # it answers; only the anonymous check is refused
    except NotFoundError as exc:
        if exc.error != "not_found":
            return False  # CouchDB's 404 {"status": "maintenance_mode"} (or nolb, seeding)
        # No /_up endpoint (pouchdb-server's 404 no_db_file): an answer to GET / will do.
        with suppress(UnauthorizedError, ForbiddenError):
            await transport.request("GET", "/", subject=subject, timeout=timeout)
        return True
    try:
        answer = _json.loads(response.body)
    except ValueError:
        return False
    return not isinstance(answer, Mapping) or answer.get("status", "ok") == "ok"


def _left(
    timeout: aiohttp.ClientTimeout, started: float, tried: list[_Node]
) -> aiohttp.ClientTimeout:
    """``timeout`` with its ``total`` reduced by the time since ``started``, once a node
    was passed over: its connection attempt counts against the attempt's limit."""
    if not tried or timeout.total is None:
        return timeout
    spent = time.monotonic() - started
    return aiohttp.ClientTimeout(
        total=max(timeout.total - spent, 0.001),
        connect=timeout.connect,
        sock_read=timeout.sock_read,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


def _describe(error: BaseException) -> str:
    """The kind of ``error`` and its status, never its text (it may name a URL's user)."""
    status = getattr(error, "status", None)
    return type(error).__name__ + (f" {status}" if isinstance(status, int) and status else "")
