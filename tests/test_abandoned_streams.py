"""A streamed iteration left unfinished (``break``, an exception) is closed cleanly.

Python does not close an async generator that a loop leaves; asyncio closes the abandoned
ones when it collects them or when the loop shuts down, all at once and in any order. A
stream built of several generators must then close without an error, whichever of its
parts asyncio closes first. Each scenario runs in an event loop of its own (``asyncio.run``
in a thread), so that the loop's shutdown, and every error it reports, is part of the test.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from aiocouch import CouchDB, Database
from testserver.scripted_server import (
    CHUNKED_HEAD,
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunk,
    hold,
)

CHANGE = b'{"seq":"%d-a","id":"d%d","changes":[{"rev":"1-a"}]},\n'
ROW = b'{"id":"d%d","key":"d%d","value":{"rev":"1-a"}},\n'


def endless(opening: bytes, row: bytes) -> Callable[[ReceivedRequest, ScriptedConnection], Any]:
    """An answer that begins with ``opening`` and 100 rows, then keeps coming (heartbeats)."""

    async def answer(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        rows = b"".join(row % (i, i) for i in range(100))
        await connection.send(CHUNKED_HEAD + chunk(opening + rows))
        await hold(connection)

    return answer


FEEDS: dict[str, tuple[bytes, bytes, Callable[[Database], AsyncIterator[Any]]]] = {
    "changes": (b'{"results":[\n', CHANGE, lambda db: db.changes()),
    "docs": (b'{"total_rows":100,"offset":0,"rows":[\n', ROW, lambda db: db.akeys()),
}


def loop_errors(scenario: Callable[[], Any]) -> list[dict[str, Any]]:
    """What the event loop reported while ``scenario`` ran in it and while it shut down."""
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        await scenario()

    asyncio.run(main())
    return errors


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
@pytest.mark.parametrize("feed", sorted(FEEDS))
@pytest.mark.parametrize("collected", [False, True], ids=["at-shutdown", "collected"])
async def test_a_stream_left_by_break_closes_without_an_error(
    feed: str, transport: str, collected: bool
) -> None:
    opening, row, iterate = FEEDS[feed]
    server = ScriptedServer(endless(opening, row))
    seen: list[Any] = []

    async def scenario() -> None:
        async with server:
            options: dict[str, Any] = {"retry": False}
            if transport == "aiohttp":
                options["connector"] = aiohttp.TCPConnector()
            async with CouchDB(server.url, **options) as client:
                async for item in iterate(Database(client, "db")):
                    seen.append(item)
                    if len(seen) == 3:
                        break
                if collected:
                    gc.collect()
                    for _ in range(5):
                        await asyncio.sleep(0)

    errors = await asyncio.to_thread(loop_errors, scenario)
    assert len(seen) == 3
    assert [context.get("message") for context in errors] == []
