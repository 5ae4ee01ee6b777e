"""Streamed answers that break midway resume after the last row handed out, or raise.

Each test scripts a server (``testserver.scripted_server``) that breaks an answer on
purpose (reset, body cut short, silence) and answers the resume request the way CouchDB
would (rows from ``startkey`` on, inclusive; transcript 5.13-5.23 and 7.2-7.15 for the
shapes). The tests assert what goes over the wire for the resume and that no row is lost
or handed out twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from aiocouch import CouchDB, Database
from aiocouch.exception import NotFoundError
from aiocouch.retry import RetryPolicy
from testserver.scripted_server import (
    CHUNKED_HEAD,
    ReceivedRequest,
    ScriptedConnection,
    chunk,
    chunked,
    error_answer,
    query,
    scripted,
)

LEAN, AIOHTTP = "lean", "aiohttp"
TIMEOUT = 10.0

Answer = Callable[[ReceivedRequest, ScriptedConnection], Awaitable[None]]


def row_of(doc_id: str, key: Any = None, value: Any = None) -> dict[str, Any]:
    return {"id": doc_id, "key": doc_id if key is None else key, "value": value}


def body_of(rows: Sequence[dict[str, Any]], array: str = "rows", **meta: Any) -> bytes:
    """An answer laid out as CouchDB writes it: one row per line, the rest around them."""
    head = b"".join(
        b'"%s":%s,' % (name.encode(), json.dumps(v).encode()) for name, v in meta.items()
    )
    lines = b",\r\n".join(json.dumps(row, separators=(",", ":")).encode() for row in rows)
    return b"{" + head + b'"' + array.encode() + b'":[\r\n' + lines + b"\r\n]}\n"


def prefix_through(body: bytes, marker: str) -> bytes:
    """``body`` up to and including the line that holds ``marker`` (and its newline)."""
    end = body.index(marker.encode())
    return body[: body.index(b"\n", end) + 1]


def whole(rows: Sequence[dict[str, Any]], array: str = "rows", **meta: Any) -> Answer:
    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunked(body_of(rows, array, **meta)))

    return answer


def reset_after(prefix: bytes, handed_out: asyncio.Event) -> Answer:
    """Sends ``prefix``, waits until the client handed those rows out, then resets."""

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(prefix))
        await asyncio.wait_for(handed_out.wait(), TIMEOUT)
        connection.reset()

    return answer


def cut_after(prefix: bytes) -> Answer:
    """Sends ``prefix`` in an unfinished chunked body, then closes the connection."""

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(prefix))
        connection.close()

    return answer


def stall_after(prefix: bytes) -> Answer:
    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(CHUNKED_HEAD + chunk(prefix))
        await asyncio.sleep(3600)

    return answer


def path(request: ReceivedRequest) -> str:
    return urlsplit(request.target).path


async def collect(
    iterator: AsyncIterator[Any], *, after: int = 0, event: asyncio.Event
) -> list[Any]:
    """Everything ``iterator`` yields; ``event`` is set once ``after`` items were handed out."""
    items: list[Any] = []

    async def run() -> None:
        async for item in iterator:
            items.append(item)
            if len(items) == after:
                event.set()

    await asyncio.wait_for(run(), TIMEOUT)
    return items


# --- _all_docs ---


async def test_all_docs_resumes_after_the_last_id_handed_out(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of(doc_id) for doc_id in "abcde"]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(rows, total_rows=5, offset=0), '"id":"c"')
    async with scripted(
        reset_after(first, handed_out), whole(rows[2:], total_rows=5, offset=2)
    ) as server:
        db = Database(client_factory(server.url), "db")
        ids = await collect(db.akeys(), after=3, event=handed_out)
    assert ids == list("abcde")
    first_request, resume = server.requests
    assert path(resume) == "/db/_all_docs"
    assert resume.method == "GET"
    # from "c" on, inclusive; the repeated "c" is dropped on arrival
    assert query(resume) == {"startkey": '"c"'}
    assert query(first_request) == {}


async def test_a_row_cut_in_half_is_not_handed_out_and_is_asked_for_again(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of(doc_id, value={"rev": "1-x"}) for doc_id in "abcd"]
    body = body_of(rows, total_rows=4, offset=0)
    half_of_c = body[: body.index(b'"id":"c"') + 6]
    async with scripted(cut_after(half_of_c), whole(rows[1:], total_rows=4, offset=1)) as server:
        db = Database(client_factory(server.url), "db")
        ids = await collect(db.akeys(), event=asyncio.Event())
    assert ids == list("abcd")
    assert query(server.requests[1]) == {"startkey": '"b"'}


async def test_docs_with_ids_resume_with_the_ids_left(
    client_factory: Callable[..., CouchDB],
) -> None:
    docs = [
        {"id": i, "key": i, "value": {"rev": "1-x"}, "doc": {"_id": i, "_rev": "1-x"}}
        for i in "wxyz"
    ]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(docs, total_rows=9), '"id":"x"')
    async with scripted(reset_after(first, handed_out), whole(docs[2:], total_rows=9)) as server:
        db = Database(client_factory(server.url), "db")
        got = await collect(db.docs(list("wxyz")), after=2, event=handed_out)
    assert [doc.id for doc in got] == list("wxyz")
    resume = server.requests[1]
    assert (resume.method, path(resume)) == ("POST", "/db/_all_docs")
    assert query(resume) == {"include_docs": "true"}
    assert json.loads(resume.body) == {"keys": ["y", "z"]}


# --- views by key ---


async def test_a_document_emitting_one_key_twice_keeps_both_rows_exactly_once(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of("d1", "k", 1), row_of("d1", "k", 1), row_of("d1", "k", 2), row_of("d2", "k", 3)]
    body = body_of(rows, total_rows=4, offset=0)
    second_row_end = body.index(b"\n", body.index(b'"value":1}', body.index(b'"value":1}') + 1)) + 1
    handed_out = asyncio.Event()
    async with scripted(
        reset_after(body[:second_row_end], handed_out), whole(rows, total_rows=4, offset=0)
    ) as server:
        db = Database(client_factory(server.url), "db")
        values = await collect(db.view("d", "v").avalues(), after=2, event=handed_out)
    assert values == [1, 1, 2, 3]
    assert query(server.requests[1]) == {"startkey": '"k"', "startkey_docid": "d1"}


async def test_limit_shrinks_by_the_rows_handed_out_and_other_options_stay(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of(f"d{n}", n, n) for n in range(5, 0, -1)]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(rows), '"id":"d4"')
    async with scripted(reset_after(first, handed_out), whole(rows[1:])) as server:
        db = Database(client_factory(server.url), "db")
        items = await collect(
            db.view("d", "v").aitems(
                descending=True, limit=4, skip=1, endkey="0", include_docs=False
            ),
            after=2,
            event=handed_out,
        )
    assert items == [(5, 5), (4, 4), (3, 3), (2, 2)]
    assert query(server.requests[0])["skip"] == "1"
    assert query(server.requests[1]) == {
        "descending": "true",
        "endkey": "0",
        "include_docs": "false",
        "startkey": "4",
        "startkey_docid": "d4",
        "limit": "3",  # two left, plus the repeated last row
    }


async def test_a_row_deleted_before_the_resume_does_not_cost_the_row_after_it(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of(doc_id) for doc_id in "abcdef"]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(rows), '"id":"b"')
    # "b" was deleted meanwhile: the resumed answer starts at "c" (skip=1 would lose it)
    async with scripted(reset_after(first, handed_out), whole(rows[2:])) as server:
        db = Database(client_factory(server.url), "db")
        ids = await collect(db.akeys(limit=4), after=2, event=handed_out)
    assert ids == list("abcd")
    assert query(server.requests[1]) == {"startkey": '"b"', "limit": "3"}


async def test_key_query_resumes_within_that_key(client_factory: Callable[..., CouchDB]) -> None:
    rows = [row_of(f"d{n}", "k", n) for n in range(4)]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(rows), '"id":"d1"')
    async with scripted(reset_after(first, handed_out), whole(rows[1:])) as server:
        db = Database(client_factory(server.url), "db")
        values = await collect(db.view("d", "v").avalues(key='"k"'), after=2, event=handed_out)
    assert values == [0, 1, 2, 3]
    assert query(server.requests[1]) == {"startkey": '"k"', "endkey": '"k"', "startkey_docid": "d1"}


async def test_multi_key_view_finishes_the_current_key_then_asks_for_the_keys_left(
    client_factory: Callable[..., CouchDB],
) -> None:
    k1 = [row_of("a", "k1"), row_of("b", "k1")]
    k3 = [row_of("c", "k3")]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(k1 + k3, total_rows=3, offset=0), '"id":"a"')
    async with scripted(
        reset_after(first, handed_out), whole(k1, total_rows=3, offset=0), whole(k3, total_rows=3)
    ) as server:
        db = Database(client_factory(server.url), "db")
        view = db.view("d", "v")
        ids = await collect(view.ids(["k1", "k2", "k3"], reduce=False), after=1, event=handed_out)
    assert ids == ["a", "b", "c"]
    first_request, rest_of_key, keys_left = server.requests
    assert json.loads(first_request.body) == {"keys": ["k1", "k2", "k3"]}
    assert (rest_of_key.method, query(rest_of_key)) == (
        "GET",
        {"reduce": "false", "startkey": '"k1"', "endkey": '"k1"', "startkey_docid": "a"},
    )
    assert (keys_left.method, query(keys_left)) == ("POST", {"reduce": "false"})
    assert json.loads(keys_left.body) == {"keys": ["k2", "k3"]}


async def test_grouped_reduce_resumes_after_the_last_group(
    client_factory: Callable[..., CouchDB],
) -> None:
    groups = [{"key": ["a", n], "value": n} for n in range(4)]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(groups), '"key":["a",1]')
    async with scripted(reset_after(first, handed_out), whole(groups[1:])) as server:
        db = Database(client_factory(server.url), "db")
        items = await collect(
            db.view("d", "count").aitems(group_level=2), after=2, event=handed_out
        )
    assert [value for _, value in items] == [0, 1, 2, 3]
    assert query(server.requests[1]) == {"group_level": "2", "startkey": '["a",1]'}


async def test_descending_grouped_reduce_keeps_a_group_below_the_last_key(
    client_factory: Callable[..., CouchDB],
) -> None:
    groups = [{"key": [n], "value": n} for n in (9, 7, 5)]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(groups), '"key":[7]')
    # no key [7] exactly was emitted, only [7, x]: a descending range from [7] starts at [5]
    async with scripted(reset_after(first, handed_out), whole(groups[2:])) as server:
        db = Database(client_factory(server.url), "db")
        items = await collect(
            db.view("d", "count").aitems(group_level=1, descending=True),
            after=2,
            event=handed_out,
        )
    assert [value for _, value in items] == [9, 7, 5]
    assert query(server.requests[1]) == {
        "group_level": "1",
        "descending": "true",
        "startkey": "[7]",
    }


async def test_a_multi_key_view_query_repeating_a_key_raises_instead_of_resuming(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of("a", "k1"), row_of("b", "k2"), row_of("a", "k1")]
    body = body_of(rows)
    async with scripted(cut_after(prefix_through(body, '"id":"b"'))) as server:
        db = Database(client_factory(server.url), "db")
        received: list[Any] = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async for doc_id in db.view("d", "v").ids(["k1", "k2", "k1"]):
                received.append(doc_id)
    assert received == ["a", "b"]
    assert len(server.requests) == 1


# --- _find and changes ---


async def test_find_page_broken_before_its_first_document_is_asked_for_again(
    client_factory: Callable[..., CouchDB],
) -> None:
    docs = [{"_id": i, "_rev": "1-x"} for i in "ab"]
    async with scripted(cut_after(b'{"docs":[\r\n'), whole(docs, "docs")) as server:
        db = Database(client_factory(server.url), "db")
        got = [doc.id async for doc in db.find({"t": 1}, limit=5)]
    assert got == ["a", "b"]
    assert server.requests[0].body == server.requests[1].body


async def test_find_page_broken_after_a_document_raises(
    client_factory: Callable[..., CouchDB],
) -> None:
    body = body_of([{"_id": i, "_rev": "1-x"} for i in "ab"], "docs")
    async with scripted(cut_after(prefix_through(body, '"_id":"a"'))) as server:
        db = Database(client_factory(server.url), "db")
        got: list[str] = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async for doc in db.find({"t": 1}, limit=5):
                got.append(doc.id)
    assert got == ["a"]
    assert len(server.requests) == 1


def change(seq: int, doc_id: str) -> dict[str, Any]:
    return {"seq": f"{seq}-g1AAAA", "id": doc_id, "changes": [{"rev": "1-x"}]}


async def test_normal_changes_feed_resumes_since_the_last_change_handed_out(
    client_factory: Callable[..., CouchDB],
) -> None:
    changes = [change(n, f"c{n}") for n in range(1, 5)]
    handed_out = asyncio.Event()
    first = prefix_through(body_of(changes, "results"), '"id":"c2"')

    async def with_tail(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(
            CHUNKED_HEAD
            + chunked(
                body_of(changes[2:], "results")[:-3] + b'],"last_seq":"4-g1AAAA","pending":0}\n'
            )
        )

    async with scripted(reset_after(first, handed_out), with_tail) as server:
        db = Database(client_factory(server.url), "db")
        feed = db.changes(feed="longpoll", since="0", limit=10, include_docs=False)
        ids = [event.id for event in await collect(feed, after=2, event=handed_out)]
    assert ids == ["c1", "c2", "c3", "c4"]
    assert feed.last_seq == "4-g1AAAA"
    assert query(server.requests[1]) == {
        "feed": "normal",  # a longpoll would wait if nothing followed
        "since": "2-g1AAAA",
        "limit": "8",
        "include_docs": "false",
    }


# --- stalls, budget, statuses ---


@pytest.mark.parametrize("transport", [LEAN, AIOHTTP])
async def test_an_answer_that_goes_silent_resumes_after_sock_read(
    client_factory: Callable[..., CouchDB], transport: str
) -> None:
    rows = [row_of(doc_id) for doc_id in "abc"]
    first = prefix_through(body_of(rows), '"id":"a"')
    async with scripted(stall_after(first), whole(rows)) as server:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=0.3)
        db = Database(client_factory(server.url, transport, timeout=timeout), "db")
        ids = await asyncio.wait_for(_all(db.akeys()), 3)
    assert ids == list("abc")
    assert query(server.requests[1]) == {"startkey": '"a"'}


async def _all(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


async def test_resumes_are_bounded_and_nothing_is_handed_out_twice(
    client_factory: Callable[..., CouchDB],
) -> None:
    ids = [f"d{n:02}" for n in range(20)]

    async def one_row_then_cut(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        start = json.loads(query(request).get("startkey", '""'))
        rest = [row_of(doc_id) for doc_id in ids if doc_id >= start]
        await cut_after(prefix_through(body_of(rest), f'"id":"{rest[1]["id"]}"'))(
            request, connection
        )

    policy = RetryPolicy(attempts=4, backoff=0.01)
    async with scripted(one_row_then_cut) as server:
        db = Database(client_factory(server.url, retry=policy), "db")
        got: list[str] = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async for doc_id in db.akeys():
                got.append(doc_id)
    # the retry policy's attempts bound the resumes: the first request and 3 resumes
    assert len(server.requests) == policy.attempts
    assert got == ids[: len(got)]
    assert len(got) == policy.attempts + 1


async def test_a_resume_answered_503_is_tried_again_and_a_404_raises(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of(doc_id) for doc_id in "abc"]
    first = prefix_through(body_of(rows), '"id":"a"')
    async with scripted(cut_after(first), error_answer(503), whole(rows)) as server:
        db = Database(client_factory(server.url), "db")
        assert await _all(db.akeys()) == list("abc")
    assert len(server.requests) == 3
    async with scripted(cut_after(first), error_answer(404)) as server:
        db = Database(client_factory(server.url), "db")
        with pytest.raises(NotFoundError):
            await _all(db.akeys())
    assert len(server.requests) == 2


# --- what cannot be resumed exactly raises ---


@pytest.mark.parametrize(
    ("params", "changes"),
    [
        # seq_interval: only every n-th change carries its seq; the last one here has none
        ({"seq_interval": 2}, [change(1, "c1"), {**change(2, "c2"), "seq": None}]),
        ({"descending": True}, [change(2, "c2"), change(1, "c1")]),
    ],
    ids=["seq_interval", "descending"],
)
async def test_a_changes_feed_that_cannot_continue_by_sequence_raises(
    client_factory: Callable[..., CouchDB], params: dict[str, Any], changes: list[Any]
) -> None:
    body = body_of([*changes, change(3, "c3")], "results")
    async with scripted(cut_after(prefix_through(body, f'"id":"{changes[-1]["id"]}"'))) as server:
        db = Database(client_factory(server.url), "db")
        received: list[str] = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async for event in db.changes(**params):
                received.append(event.id)
    assert received == [row["id"] for row in changes]
    assert len(server.requests) == 1


async def test_an_unsorted_view_raises_instead_of_resuming(
    client_factory: Callable[..., CouchDB],
) -> None:
    body = body_of([row_of("b"), row_of("a"), row_of("c")])
    async with scripted(cut_after(prefix_through(body, '"id":"a"'))) as server:
        db = Database(client_factory(server.url), "db")
        received: list[str] = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async for doc_id in db.view("d", "v").akeys(sorted=False):
                received.append(doc_id)
    assert received == ["b", "a"]
    assert len(server.requests) == 1


async def test_an_answer_broken_after_its_limit_was_handed_out_just_ends(
    client_factory: Callable[..., CouchDB],
) -> None:
    body = body_of([row_of(doc_id) for doc_id in "ab"])
    async with scripted(cut_after(prefix_through(body, '"id":"b"'))) as server:
        db = Database(client_factory(server.url), "db")
        assert await _all(db.akeys(limit=2)) == ["a", "b"]
    assert len(server.requests) == 1


async def test_all_docs_with_skip_and_ids_resumes_with_the_ids_left(
    client_factory: Callable[..., CouchDB],
) -> None:
    rows = [row_of(doc_id) for doc_id in "wxyz"]
    async with scripted(
        cut_after(prefix_through(body_of(rows[1:]), '"id":"x"')), whole(rows[2:])
    ) as server:
        db = Database(client_factory(server.url), "db")
        assert await _all(db.akeys(ids=list("wxyz"), skip=1)) == list("xyz")
    resume = server.requests[1]
    assert (resume.method, query(resume)) == ("POST", {})
    assert json.loads(resume.body) == {"keys": ["y", "z"]}
