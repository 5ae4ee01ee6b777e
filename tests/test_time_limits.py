"""Time limits of a client: its own, and those of a block of calls (``couchdb.timeouts``).

What each limit means on the wire is tested per transport in tests/test_hostile_server.py;
here: which limits a call gets.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from aiocouch import CouchDB, Database, ReadTimeoutError
from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    http_response,
)

DOC = http_response(200, b'{"_id":"doc","_rev":"1-a"}')


async def stall_on_slow(request: ReceivedRequest, connection: ScriptedConnection) -> None:
    """Answers at once, except requests about ``slow``, which get no answer at all."""
    if "slow" in request.target or b"slow" in request.body:
        await asyncio.sleep(3600)
    await connection.send(DOC)


async def test_calls_in_a_timeouts_block_use_its_limits_and_others_the_clients() -> None:
    async with ScriptedServer(stall_on_slow) as server, CouchDB(server.url, retry=False) as client:
        db = Database(client, "db")
        started = asyncio.get_running_loop().time()
        with client.timeouts(aiohttp.ClientTimeout(sock_read=0.3)), pytest.raises(ReadTimeoutError):
            await db.get("slow")
        assert asyncio.get_running_loop().time() - started < 5
        with client.timeouts(aiohttp.ClientTimeout(sock_read=0.3)), pytest.raises(ReadTimeoutError):
            [doc async for doc in db.docs(ids=["slow"])]

        # Outside the block the client's own limits (120 s of silence) hold again: the
        # stalled call is still waiting when the test gives up on it.
        outside = asyncio.ensure_future(db.get("slow"))
        await asyncio.sleep(0.6)
        assert not outside.done()
        outside.cancel()
        assert (await db.get("doc")).rev == "1-a"


async def test_a_timeouts_block_concerns_only_its_own_client() -> None:
    async with (
        ScriptedServer(stall_on_slow) as server,
        CouchDB(server.url, retry=False) as limited,
        CouchDB(server.url, retry=False) as other,
    ):
        with limited.timeouts(aiohttp.ClientTimeout(sock_read=0.3)):
            waiting = asyncio.ensure_future(Database(other, "db").get("slow"))
            with pytest.raises(ReadTimeoutError):
                await Database(limited, "db").get("slow")
            assert not waiting.done()
            waiting.cancel()
