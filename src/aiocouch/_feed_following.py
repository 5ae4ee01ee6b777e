"""The machinery of a follower: a feed read again and again, through every break.

A :class:`FeedSource` says what to read (a path, its parameters and body, what its rows
are); a :class:`FeedFollower` reads it in a background task, asks again ``since`` the last
event after a dropped connection, a silence of :data:`SILENT_HEARTBEATS` heartbeats, a
429/502/503/504 answer or a restart, and hands out the events in the server's order, at
least once. :class:`aiocouch.follower.ChangesFollower` (``/{db}/_changes``) and
:class:`aiocouch.db_updates.DbUpdatesFollower` (``/_db_updates``) are built on it.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, Union

import aiohttp

from ._rows import LineParser, RowParser, parsed_pieces
from ._transport import NO_BODY
from .exception import _TypedResponseError
from .retry import NO_RETRY
from .typing import JsonDict

if TYPE_CHECKING:
    from ._remote_server import RemoteServer

__all__ = [
    "FEEDS",
    "FIRST_RETRY_DELAY",
    "SILENT_HEARTBEATS",
    "FeedEvent",
    "FeedFollower",
    "FeedSource",
    "check_options",
]

# Named after the public module whose followers log through it.
logger = logging.getLogger("aiocouch.follower")

FEEDS = ("continuous", "longpoll")
"""The feeds a follower reads: one endless answer, or one answer per batch of changes."""
SILENT_HEARTBEATS = 3
"""A server silent for longer than this many heartbeats counts as a dropped connection."""
FIRST_RETRY_DELAY = 0.1
"""Seconds before the first new attempt; each failed one in a row doubles it (jittered)."""

# Parameters the follower sets itself; a follower never ends, so no limit or descending.
_OWN_PARAMETERS = frozenset(
    {
        "feed",
        "since",
        "last-event-id",
        "heartbeat",
        "timeout",
        "filter",
        "doc_ids",
        "selector",
        "view",
        "include_docs",
        "limit",
        "descending",
    }
)
# Errors after which asking again may succeed: connection refused, lost or reset, body cut
# short (IncompleteResponseError is a ClientPayloadError), silence (ReadTimeoutError).
_TRANSIENT_ERRORS = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    OSError,
)
# Statuses of a server (or a proxy) that is restarting or overloaded.
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
_READ_AHEAD = 2
# How many recently read changes a resume compares the new ones with, to count repeats.
_REPEAT_WINDOW = 10_000


class FeedEvent(Protocol):
    """What a follower hands out: an event made from one row of the feed."""

    json: JsonDict


_E = TypeVar("_E", bound=FeedEvent)
_F = TypeVar("_F", bound="FeedFollower[Any]")


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_Item = Union[tuple[list[_E], Any], _Failure, None]
"""What the reader hands the consumer: events and the seq after them, an error, or the end."""


class FeedSource(abc.ABC, Generic[_E]):
    """A feed a follower reads: its request (but for ``since``) and what its rows are.

    Each row of the feed is a JSON object with ``marker`` (``"id"`` for a change) and a
    ``seq``; a continuous answer may end with a ``{"last_seq": ...}`` line, a longpoll
    answer holds the rows in ``results`` beside ``last_seq``.
    """

    marker: str
    """The field every row of the feed has."""

    def __init__(
        self,
        remote: RemoteServer,
        path: str,
        subject: str,
        *,
        params: Mapping[str, Any],
        body: Any = NO_BODY,
    ) -> None:
        self.remote = remote
        self.path = path
        self.subject = subject
        self.params = dict(params)
        self.body = body
        self.method = "GET" if body is NO_BODY else "POST"

    @abc.abstractmethod
    def event(self, row: JsonDict) -> _E:
        """The event that ``row`` of the feed stands for."""

    @abc.abstractmethod
    def key(self, row: JsonDict) -> Hashable:
        """What tells a row from the others, to count the rows sent again after a resume."""


class _FeedReader(Generic[_E]):
    """Reads the feed into a queue until cancelled, asking again after transient errors."""

    def __init__(
        self,
        source: FeedSource[_E],
        *,
        since: Any,
        heartbeat: float,
        max_retry_delay: float,
        error_tolerance: float | None,
    ) -> None:
        self._source = source
        self._feed = source.params["feed"]
        self._path = source.path
        self._subject = source.subject
        self._heartbeat = heartbeat
        self._max_retry_delay = max_retry_delay
        self._error_tolerance = error_tolerance
        http = source.remote._http
        self._http = http
        silence = SILENT_HEARTBEATS * heartbeat
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=http.stream_timeout.connect,
            sock_connect=http.stream_timeout.sock_connect,
            sock_read=silence,
        )
        self._now_timeout = aiohttp.ClientTimeout(
            total=http.timeout.total,
            connect=http.timeout.connect,
            sock_connect=http.timeout.sock_connect,
            sock_read=silence,
        )
        self.queue: asyncio.Queue[_Item[_E]] = asyncio.Queue(_READ_AHEAD)
        self.since = since
        self.start_seq: Any = since
        self.ready = asyncio.Event()
        self.failure: BaseException | None = None
        self.resumes = 0
        self.duplicates = 0
        self.last_error: BaseException | None = None
        self._progress = False
        self._recent: deque[list[Hashable]] = deque()
        self._recent_count = 0
        self._earlier: set[Hashable] = set()
        self._watch_left = 0

    async def run(self) -> None:
        """Follows the feed until cancelled; a fatal error goes to the queue."""
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
            self.ready.set()
            await self.queue.put(_Failure(exc))

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        failing_since: float | None = None
        while True:
            started = loop.time()
            self._progress = False
            error: BaseException | None = None
            try:
                if self.since == "now":
                    self.since = self.start_seq = await self._current_seq()
                self.ready.set()
                await self._read_answer()
            except _TRANSIENT_ERRORS as exc:
                error = exc
            except _TypedResponseError as exc:
                if exc.status not in _TRANSIENT_STATUSES:
                    raise
                error = exc
            if self._progress or loop.time() - started >= self._heartbeat:
                failures, failing_since = 0, None
                if error is None and self._feed == "longpoll":
                    continue
            failures += 1
            if error is not None:
                self.last_error = error
                now = loop.time()
                failing_since = now if failing_since is None else failing_since
                if (
                    self._error_tolerance is not None
                    and now - failing_since > self._error_tolerance
                ):
                    raise error
            delay = random.uniform(0.5, 1.0) * min(
                self._max_retry_delay, FIRST_RETRY_DELAY * 2 ** (failures - 1)
            )
            logger.warning(
                "%s: %s; asking again since %r in %.2f s",
                self._subject,
                f"{type(error).__name__}: {error}" if error else "the server ended the feed",
                self.since,
                delay,
            )
            self.resumes += 1
            self._watch_for_repeats()
            await asyncio.sleep(delay)

    async def _current_seq(self) -> Any:
        """The feed's current sequence: GET {path}?since=now (no results)."""
        answer = await self._http.request(
            "GET",
            self._path,
            params={"since": "now"},
            subject=self._subject,
            timeout=self._now_timeout,
        )
        decoded = answer.json()
        if not isinstance(decoded, dict) or "last_seq" not in decoded:
            raise ValueError(f"GET {self._path}?since=now answered without last_seq: {decoded!r}")
        return decoded["last_seq"]

    async def _read_answer(self) -> None:
        """One answer of the feed, ``since`` where the last one ended; returns at its end."""
        request = self._source
        params = request.params
        if self.since is not None:
            params = {**params, "since": self.since}
        async with self._http.stream(
            request.method,
            self._path,
            params=params,
            json=request.body,
            subject=self._subject,
            timeout=self._timeout,
            retry=NO_RETRY,  # the follower's own loop waits out failures, without end
        ) as pieces:
            invalid = functools.partial(
                request.remote._invalid_stream,
                request.method,
                self._path,
                params,
                None,
                self._subject,
            )
            if self._feed == "continuous":
                async for changes in parsed_pieces(pieces, LineParser(), invalid):
                    await self._hand_over(changes)
                return
            rows = RowParser("results")
            async for batch in parsed_pieces(pieces, rows, invalid):
                await self._hand_over([change for change, _ in batch])
            try:
                meta = rows.meta()
            except ValueError as exc:
                raise invalid(exc) from exc
            await self._hand_over([], meta.get("last_seq"))

    async def _hand_over(self, changes: list[Any], last_seq: Any = None) -> None:
        """Queues the events of ``changes``; the feed continues after them (or ``last_seq``)."""
        source = self._source
        events: list[_E] = []
        for change in changes:
            if not isinstance(change, dict) or source.marker not in change:
                if isinstance(change, dict) and "last_seq" in change:
                    last_seq = change["last_seq"]  # the line that ends a continuous answer
                    continue
                raise ValueError(f"The feed sent neither an event nor its end: {change!r}")
            events.append(source.event(change))
            seq = change.get("seq")
            if seq is not None:
                self.since = seq
        if last_seq is not None and last_seq != self.since:
            self.since = last_seq
        elif not events:
            return
        self._progress = True
        if events:
            self._note(events)
        await self.queue.put((events, self.since))

    def _note(self, events: list[_E]) -> None:
        """Remembers recent changes; after a resume, counts the ones that come again."""
        keys = [self._source.key(event.json) for event in events]
        if self._watch_left > 0:
            for key in keys:
                if key in self._earlier:
                    self.duplicates += 1
                    self._earlier.discard(key)
            self._watch_left -= len(keys)
            if self._watch_left <= 0:
                self._earlier = set()
        self._recent.append(keys)
        self._recent_count += len(keys)
        while self._recent_count - len(self._recent[0]) >= _REPEAT_WINDOW:
            self._recent_count -= len(self._recent.popleft())

    def _watch_for_repeats(self) -> None:
        """Starts comparing the next changes with the ones read before this resume."""
        self._earlier |= {key for keys in self._recent for key in keys}
        self._watch_left = _REPEAT_WINDOW


class FeedFollower(Generic[_E]):
    """Follows a feed until stopped: ``async for event in follower``.

    The base of :class:`ChangesFollower` and of :class:`aiocouch.db_updates.DbUpdatesFollower`.
    It reads the feed of its :class:`FeedSource` again and again: after a dropped
    connection, a silence longer than :data:`SILENT_HEARTBEATS` heartbeats, a
    429/502/503/504 answer or a server restart, ``since`` the last event read, after a
    pause that doubles with each failure in a row (from :data:`FIRST_RETRY_DELAY` up to
    ``max_retry_delay`` seconds, jittered). It raises the server's error for any other
    status, and the last transient error once errors lasted ``error_tolerance`` seconds
    without a working answer in between (never, by default).

    Iterate it for one event at a time, or :meth:`batches` for a list of the events that
    arrived together. Stop it with :meth:`aclose`, by leaving ``async with``, or by
    cancelling the task that iterates it (which closes it too); its connection is
    closed then. Store :attr:`last_seq` after handling an event and pass it as ``since``
    to follow on later without a gap.
    """

    def __init__(
        self,
        source: FeedSource[_E],
        *,
        since: Any,
        heartbeat: float,
        max_retry_delay: float,
        error_tolerance: float | None,
    ) -> None:
        # Made on start: its queue and events belong to the running event loop.
        self._new_reader: Callable[[], _FeedReader[_E]] = functools.partial(
            _FeedReader,
            source,
            since=since,
            heartbeat=heartbeat,
            max_retry_delay=max_retry_delay,
            error_tolerance=error_tolerance,
        )
        self.last_seq: Any = since
        """Where the events handed out so far end: pass it as ``since`` to go on from there.

        ``"now"`` is replaced by the server's sequence once the follower started.
        """
        self._reader: _FeedReader[_E] | None = None
        self._task: asyncio.Task[None] | None = None
        self._events: deque[_E] = deque()
        self._seq_after: Any = None
        self._closed = False

    @property
    def resumes(self) -> int:
        """How many times the feed was asked for again after a break or an end."""
        return self._reader.resumes if self._reader is not None else 0

    @property
    def duplicates(self) -> int:
        """How many changes came again after a resume (handed out again, not dropped)."""
        return self._reader.duplicates if self._reader is not None else 0

    @property
    def last_error(self) -> BaseException | None:
        """The last transient error the follower recovered from, or None."""
        return self._reader.last_error if self._reader is not None else None

    async def start(self) -> None:
        """Starts following; with ``since="now"``, fixes "now" first (GET ?since=now).

        Iteration starts the follower too; start it earlier to see every change made
        after this call. Raises the error that stopped it, if it could not start.
        """
        if self._closed:
            return
        if self._reader is None:
            self._reader = self._new_reader()
            self._task = asyncio.get_running_loop().create_task(self._reader.run())
        reader = self._reader
        try:
            await reader.ready.wait()
        except asyncio.CancelledError:
            self._stop()
            raise
        if reader.failure is not None:
            self._stop()
            raise reader.failure
        if self.last_seq == "now":
            self.last_seq = reader.start_seq

    async def aclose(self) -> None:
        """Stops following and closes the connection; an iteration in progress ends."""
        self._stop()
        task, self._task = self._task, None
        if task is not None and not task.done():
            await asyncio.wait({task})
        reader = self._reader
        if reader is not None:
            reader.ready.set()
            while not reader.queue.empty():
                reader.queue.get_nowait()
            reader.queue.put_nowait(None)

    def _stop(self) -> None:
        self._closed = True
        self._events.clear()
        if self._task is not None:
            self._task.cancel()

    async def __aenter__(self: _F) -> _F:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self: _F) -> _F:
        return self

    async def __anext__(self) -> _E:
        """The next change event."""
        if not self._events:
            await self._wait_for_events()
        event = self._events.popleft()
        if self._events:
            seq = event.json.get("seq")
            if seq is not None:
                self.last_seq = seq
        else:
            self.last_seq = self._seq_after
        return event

    def batches(self) -> AsyncIterator[list[_E]]:
        """The events in lists, each holding what arrived together (for high rates)."""
        return _Batches(self)

    async def _next_batch(self) -> list[_E]:
        if not self._events:
            await self._wait_for_events()
        batch = list(self._events)
        self._events.clear()
        self.last_seq = self._seq_after
        return batch

    async def _wait_for_events(self) -> None:
        """Waits until the reader handed over events; raises StopAsyncIteration once closed."""
        while not self._events:
            if self._closed:
                raise StopAsyncIteration
            await self.start()
            reader = self._reader
            if self._closed or reader is None:
                raise StopAsyncIteration
            try:
                item = await reader.queue.get()
            except asyncio.CancelledError:
                self._stop()
                raise
            if item is None:
                raise StopAsyncIteration
            if isinstance(item, _Failure):
                self._stop()
                raise item.error
            events, seq_after = item
            if events:
                self._events.extend(events)
                self._seq_after = seq_after
            else:
                self.last_seq = seq_after

    def __del__(self) -> None:
        # A follower dropped without aclose() must not keep reading in the background.
        task = getattr(self, "_task", None)
        if task is not None and not task.done() and not task.get_loop().is_closed():
            task.cancel()


class _Batches(Generic[_E]):
    """The async iterator of :meth:`FeedFollower.batches`."""

    def __init__(self, follower: FeedFollower[_E]) -> None:
        self._follower = follower

    def __aiter__(self) -> _Batches[_E]:
        return self

    async def __anext__(self) -> list[_E]:
        return await self._follower._next_batch()


def check_options(
    *,
    since: Any,
    feed: str,
    doc_ids: Sequence[str] | None,
    selector: JsonDict | None,
    filter: str | None,
    view: str | None,
    heartbeat: float,
    max_retry_delay: float,
    error_tolerance: float | None,
    params: Mapping[str, Any],
) -> None:
    """Raises ValueError or TypeError for options that cannot make a follower."""
    if feed not in FEEDS:
        raise ValueError(f"feed must be one of {', '.join(FEEDS)}, not {feed!r}")
    if since is not None and (isinstance(since, bool) or not isinstance(since, (str, int))):
        raise TypeError(f"since must be a sequence (str or int) or 'now', not {since!r}")
    for name, value in (("heartbeat", heartbeat), ("max_retry_delay", max_retry_delay)):
        if not _positive(value):
            raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    if error_tolerance is not None and not (_positive(error_tolerance) or error_tolerance == 0):
        raise ValueError(f"error_tolerance must be None or seconds, not {error_tolerance!r}")
    filters = [
        name
        for name, value in (("doc_ids", doc_ids), ("selector", selector), ("view", view))
        if value is not None
    ]
    if filter is not None and not (view is not None and filter == "_view"):
        filters.append("filter")
    if len(filters) > 1:
        raise ValueError(f"Only one filter at a time: {', '.join(filters)}")
    if doc_ids is not None and (
        isinstance(doc_ids, (str, bytes)) or not all(isinstance(i, str) for i in doc_ids)
    ):
        raise TypeError("doc_ids must be a list of document ids (str)")
    if selector is not None and not isinstance(selector, dict):
        raise TypeError(f"selector must be a dict, not {type(selector).__name__}")
    if view is not None and (not isinstance(view, str) or view.count("/") != 1):
        raise ValueError(f"view must name a view as 'design_doc/view', not {view!r}")
    if filter is not None and (not isinstance(filter, str) or not filter):
        raise ValueError(f"filter must name a filter ('design_doc/filter'), not {filter!r}")
    taken = sorted(set(params) & _OWN_PARAMETERS)
    if taken:
        raise ValueError(
            f"The follower sets {', '.join(taken)} itself; use its own arguments instead"
        )


def _positive(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
