"""Where an interrupted streamed query continues: the request for exactly the rows not yet out.

A streamed answer (``_all_docs``, a view, a normal ``_changes`` feed, a ``_find`` page) may
break after some rows were handed to the caller. Sending the query again would hand those
rows out twice. A :class:`Continuation` watches the rows as they are handed out and builds
the request that asks for the rest, or raises :class:`NotResumable` where no request can
ask for exactly the rest:

- nothing handed out yet: the same request again (any query);
- ``_all_docs`` and views by key: from the last row's key (and document id), with
  the rows equal to the last ones dropped on arrival rather than skipped by the server
  (``skip=`` would skip a different row if the last one was deleted meanwhile); ``limit``
  reduced by what was handed out; a multi-key query continues with the keys left;
- reduced views: after the last group key (a descending query may first see the part of
  that group below the key; it is dropped the same way);
- a normal ``_changes`` feed: ``since`` the last handed-out change's ``seq``.

Not resumable once rows are out: ``_find`` (its bookmark comes at the end of a page), views
queried with ``sorted=false``, multi-key view queries that repeat a key or go
``descending``, changes feeds that are ``descending`` or whose last change had no ``seq``
(``seq_interval``), and ``longpoll`` feeds ``since=now`` that handed nothing out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import _json
from ._transport import NO_BODY

__all__ = [
    "ChangesContinuation",
    "Continuation",
    "NotResumable",
    "StreamRequest",
    "ViewContinuation",
]

Rows = list[tuple[Any, str]]
"""Rows as :class:`~aiocouch._rows.RowParser` returns them: each with its JSON text."""

_START_PARAMS = frozenset(
    {"key", "startkey", "start_key", "startkey_docid", "start_key_doc_id", "skip", "limit"}
)


_KEYS_AND_END_PARAMS = frozenset(
    {"keys", "endkey", "end_key", "endkey_docid", "end_key_doc_id", "inclusive_end"}
)


class NotResumable(Exception):
    """No request asks for exactly the rows that were not handed out yet."""


@dataclass(frozen=True)
class StreamRequest:
    """One request of a streamed query (its path never changes)."""

    method: str
    params: Mapping[str, Any] | None = None
    json: Any = NO_BODY


class Continuation:
    """Counts the rows handed out; sends the query again only if none were.

    Subclasses know more queries: they override :meth:`take` (to watch the rows, and to
    drop repeated ones from a resumed answer) and :meth:`resume`.
    """

    def __init__(self, request: StreamRequest) -> None:
        self.request = request
        self.delivered = 0

    def take(self, rows: Rows) -> Rows:
        """The rows of ``rows`` to hand out (all, unless repeated); notes them as handed out."""
        self.delivered += len(rows)
        return rows

    def resume(self) -> StreamRequest | None:
        """The request for the rows not handed out yet, None if there are none.

        Raises NotResumable if no request asks for exactly those.
        """
        if self.delivered == 0:
            return self.request
        raise NotResumable("rows were handed out and this query cannot continue after them")

    def after_end(self) -> StreamRequest | None:
        """The next request once an answer ended completely, or None when the query is done."""
        return None


class ChangesContinuation(Continuation):
    """A normal (or longpoll) ``_changes`` feed: continues ``since`` the last change's seq."""

    def __init__(self, request: StreamRequest) -> None:
        super().__init__(request)
        self._last_seq: Any = None

    def take(self, rows: Rows) -> Rows:
        """All rows; the last one's ``seq`` is where the feed continues."""
        self.delivered += len(rows)
        self._last_seq = rows[-1][0].get("seq")
        return rows

    def resume(self) -> StreamRequest | None:
        """The feed ``since`` the last handed-out change, as a normal feed."""
        params = dict(self.request.params or {})
        if self.delivered == 0:
            # A longpoll since=now sent again could miss a change made in between.
            if params.get("feed") == "longpoll" and "now" in (
                params.get("since"),
                params.get("last-event-id"),
            ):
                raise NotResumable("a longpoll feed since=now cannot be asked for again")
            return self.request
        if _is_true(params.get("descending")):
            raise NotResumable("a descending changes feed cannot continue by sequence")
        if self._last_seq is None:
            raise NotResumable("the last change had no seq (seq_interval)")
        remaining = _remaining(params.get("limit"), self.delivered)
        if remaining == 0:
            return None
        params.pop("last-event-id", None)
        params["since"] = self._last_seq
        if remaining is not None:
            params["limit"] = remaining
        # A longpoll would wait for a new change if the rest was empty; a normal feed
        # answers at once with what followed.
        if params.get("feed") == "longpoll":
            params["feed"] = "normal"
        return replace(self.request, params=params)


class ViewContinuation(Continuation):
    """``_all_docs`` (``by_id``) or a view: continues after the last row's key and id.

    Rows of a view are ordered by (key, document id); one document may emit one key
    several times, so the rows equal to the last one are counted (:attr:`_run`) and that
    many are dropped at the start of the resumed answer. Multi-key queries (``keys``)
    answer key by key in the order given: the rest of the current key's rows come from a
    range request, then the keys left are asked for.
    """

    def __init__(self, request: StreamRequest, *, by_id: bool) -> None:
        super().__init__(request)
        self._by_id = by_id
        self._params = dict(request.params or {})
        self._problem: str | None = None
        self._limit = self._number("limit")
        self._skip = self._number("skip") or 0
        self._key_texts: list[bytes] = []
        self._keys = self._requested_keys()
        self._last: tuple[Any, Any] | None = None
        self._last_text = b""
        self._run = 0
        self._reduced = False
        self._drop = 0
        self._drop_text = b""
        self._key_index = -1
        self._group_complete = False
        self._in_group_request = False
        if _is_false(self._params.get("sorted")):
            self._problem = "the rows were not sorted (sorted=false)"

    def _number(self, name: str) -> int | None:
        value = self._params.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            self._problem = f"{name}={value!r} is not a number"
            return None

    def _requested_keys(self) -> list[Any] | None:
        json = self.request.json
        keys: Any = json.get("keys") if isinstance(json, Mapping) else None
        if keys is None and "keys" in self._params:
            keys = self._params["keys"]
            if isinstance(keys, (str, bytes)):
                try:
                    keys = _json.loads(keys)
                except ValueError:
                    keys = None
        if keys is None:
            return None
        if not isinstance(keys, list):
            self._problem = "keys is not a list"
            return None
        if _is_true(self._params.get("descending")):
            self._problem = "a multi-key query is descending"
        elif not self._by_id:
            self._key_texts = [_json.dumps(key) for key in keys]
            if len(set(self._key_texts)) != len(keys):
                self._problem = "a multi-key view query repeats a key"
        return keys

    def take(self, rows: Rows) -> Rows:
        """The rows to hand out: a resumed answer's repeats of the last rows are dropped."""
        if self._drop:
            dropped = 0
            for row, _ in rows:
                if dropped == self._drop or _row_text(row) != self._drop_text:
                    break
                dropped += 1
            self._drop = 0 if dropped < len(rows) else self._drop - dropped
            rows = rows[dropped:]
        if self._limit is not None and len(rows) > self._limit - self.delivered:
            rows = rows[: max(self._limit - self.delivered, 0)]
        if rows:
            self._watch(rows)
            self.delivered += len(rows)
        return rows

    def _watch(self, rows: Rows) -> None:
        """Notes the last row, how many rows equal to it came last, and its key's index."""
        if self._keys is not None and not self._by_id:
            for row, _ in rows:
                self._walk_keys(row)
        last_row = rows[-1][0]
        text = _row_text(last_row)
        run = 0
        for row, _ in reversed(rows):
            if _row_text(row) != text:
                break
            run += 1
        self._run = self._run + run if run == len(rows) and text == self._last_text else run
        self._last = (last_row.get("key"), last_row.get("id"))
        self._last_text = text
        self._reduced = "id" not in last_row

    def _walk_keys(self, row: Any) -> None:
        """Finds the requested key that ``row`` answers: the current one or a later one."""
        keys = self._key_texts
        text = _json.dumps(row.get("key"))
        index = self._key_index
        if index >= 0 and not self._group_complete and keys[index] == text:
            return
        index += 1
        while index < len(keys) and keys[index] != text:
            index += 1
        if index == len(keys):
            self._problem = "a row's key is none of the keys asked for"
            return
        self._key_index, self._group_complete = index, False

    def resume(self) -> StreamRequest | None:
        """The request for the rest: from the last row on, or the keys left."""
        if self.delivered == 0:
            return self.request
        if self._problem is not None:
            raise NotResumable(self._problem)
        if self._limit is not None and self.delivered >= self._limit:
            return None
        if self._keys is None:
            params = self._base_params(_START_PARAMS)
            if "key" in self._params:
                # key=K is the range from K to K: the start moves, the end stays.
                params["endkey"] = self._params["key"]
            return self._range_after_last(params)
        if self._by_id:
            return self._keys_from(self._skip + self.delivered)
        if self._reduced or self._group_complete:
            return self._keys_from(self._key_index + 1)
        params = self._base_params(_START_PARAMS | _KEYS_AND_END_PARAMS)
        params["endkey"] = _json.dumps(self._keys[self._key_index]).decode()
        self._in_group_request = True
        return self._range_after_last(params)

    def after_end(self) -> StreamRequest | None:
        """After the rest of one key's rows: the keys left."""
        if not self._in_group_request:
            return None
        self._in_group_request = False
        self._group_complete = True
        if self._limit is not None and self.delivered >= self._limit:
            return None
        return self._keys_from(self._key_index + 1)

    def _base_params(self, without: frozenset[str]) -> dict[str, Any]:
        return {name: value for name, value in self._params.items() if name not in without}

    def _range_after_last(self, params: dict[str, Any]) -> StreamRequest:
        """A GET from the last row on; the rows equal to it are dropped as they come."""
        assert self._last is not None
        key, doc_id = self._last
        params["startkey"] = _json.dumps(key).decode()
        if not self._reduced and not self._by_id:
            params["startkey_docid"] = doc_id
        self._drop, self._drop_text = (1 if self._reduced else self._run), self._last_text
        if self._limit is not None:
            params["limit"] = self._limit - self.delivered + self._drop
        return StreamRequest("GET", params)

    def _keys_from(self, index: int) -> StreamRequest | None:
        """A POST for the keys from ``index`` on, None if none are left."""
        assert self._keys is not None
        keys = self._keys[index:]
        if not keys:
            return None
        params = self._base_params(frozenset({"keys", "skip", "limit"}))
        if self._limit is not None:
            params["limit"] = self._limit - self.delivered
        self._drop = 0
        json = dict(self.request.json) if isinstance(self.request.json, Mapping) else {}
        json["keys"] = keys
        return StreamRequest("POST", params, json)


def _row_text(row: Any) -> bytes:
    """What makes two rows the same row: key and id, in JSON (``true`` is not ``1``)."""
    return _json.dumps([row.get("key"), row.get("id")])


def _remaining(limit: Any, delivered: int) -> int | None:
    if limit is None:
        return None
    try:
        return max(int(limit) - delivered, 0)
    except (TypeError, ValueError) as exc:
        raise NotResumable(f"limit={limit!r} is not a number") from exc


def _is_true(value: Any) -> bool:
    return value is True or value == "true"


def _is_false(value: Any) -> bool:
    return value is False or value == "false"
