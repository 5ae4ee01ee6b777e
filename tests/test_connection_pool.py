"""The lean transport's connection pool (``aiocouch._http.ConnectionPool``) over real sockets.

At most ``limit`` connections are in use at once; a request beyond that waits for a slot,
gets the one freed first in the order it came, and gives up with ConnectTimeoutError at
its deadline. A waiter that gives up (deadline, cancellation) takes no slot with it.
"""

from __future__ import annotations

import asyncio

import pytest

from aiocouch._connect import Endpoint
from aiocouch._http import ConnectionPool, HTTPConnection
from aiocouch.exception import ConnectTimeoutError
from testserver.scripted_server import ScriptedServer, answering, http_response

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def pool_of(server: ScriptedServer, limit: int) -> ConnectionPool:
    port = int(server.url.rsplit(":", 1)[1])
    return ConnectionPool(Endpoint("http", "127.0.0.1", port), limit=limit)


async def get(pool: ConnectionPool, deadline: float | None = None) -> HTTPConnection:
    """A connection of ``pool`` that has read one whole answer (ready to be kept)."""
    connection, _ = await pool.acquire(deadline=deadline, sock_connect=5)
    connection.send(REQUEST, expect_body=True)
    await connection.read_head()
    assert await connection.read_body() == b"{}"
    return connection


async def queued(pool: ConnectionPool, waiters: int) -> None:
    """Returns once ``waiters`` requests wait for a slot of ``pool``."""
    while len(pool._waiters) < waiters:
        await asyncio.sleep(0.01)


async def test_a_request_beyond_the_limit_waits_for_a_freed_connection_in_turn() -> None:
    async with ScriptedServer(answering(http_response(200, b"{}"))) as server:
        pool = pool_of(server, 2)
        first, second = await get(pool), await get(pool)
        third = asyncio.ensure_future(get(pool))
        await asyncio.wait_for(queued(pool, 1), 5)
        fourth = asyncio.ensure_future(get(pool))
        await asyncio.wait_for(queued(pool, 2), 5)
        assert not third.done() and not fourth.done()
        pool.release(first)
        reused = await asyncio.wait_for(third, 5)
        assert reused is first and not fourth.done()
        pool.release(second)
        assert await asyncio.wait_for(fourth, 5) is second
        pool.release(reused)
        pool.release(second)
        # Kept alive and reused: no third connection was opened.
        assert server.connections == 2
        assert pool.take_idle() is not None and pool.take_idle() is not None
        assert pool.take_idle() is None  # both slots in use
        pool.close()


async def test_a_waiter_past_its_deadline_raises_and_takes_no_slot() -> None:
    async with ScriptedServer(answering(http_response(200, b"{}"))) as server:
        pool = pool_of(server, 1)
        held = await get(pool)
        loop = asyncio.get_running_loop()
        with pytest.raises(ConnectTimeoutError, match="No free connection"):
            await get(pool, deadline=loop.time() + 0.2)
        pool.release(held)
        again = await asyncio.wait_for(get(pool, deadline=loop.time() + 5), 5)
        assert again is held
        pool.release(again)
        pool.close()


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    async with ScriptedServer(answering(http_response(200, b"{}"))) as server:
        pool = pool_of(server, 1)
        held = await get(pool)
        waiting = asyncio.ensure_future(get(pool))
        await asyncio.wait_for(queued(pool, 1), 5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        pool.release(held)
        assert pool.take_idle() is held
        pool.release(held)
        pool.close()


async def test_a_slot_handed_to_a_waiter_cancelled_before_it_ran_goes_to_the_next() -> None:
    async with ScriptedServer(answering(http_response(200, b"{}"))) as server:
        pool = pool_of(server, 1)
        held = await get(pool)
        doomed = asyncio.ensure_future(get(pool))
        await asyncio.wait_for(queued(pool, 1), 5)
        patient = asyncio.ensure_future(get(pool))
        await asyncio.wait_for(queued(pool, 2), 5)
        pool.release(held)  # hands the slot to ``doomed``...
        doomed.cancel()  # ...which ends before it could use it
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert await asyncio.wait_for(patient, 5) is held
        pool.release(held)
        pool.close()
