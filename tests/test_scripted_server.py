"""The scripted test server itself: exact bytes out, requests recorded, resets seen as resets."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from testserver.scripted_server import (
    ReceivedRequest,
    ScriptedConnection,
    ScriptedServer,
    chunked,
    http_response,
)


async def test_answers_with_the_scripted_bytes_and_records_the_request() -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(
            http_response(200, headers=[("Transfer-Encoding", "chunked")], length=False)
            + chunked(b'{"a":', b"1}")
        )

    async with ScriptedServer(handler) as server, aiohttp.ClientSession() as session:
        response = await session.put(server.url + "/db/doc", data=b'{"x":1}')
        assert await response.json() == {"a": 1}
    [request] = server.requests
    assert (request.method, request.target, request.body) == ("PUT", "/db/doc", b'{"x":1}')
    assert request.header("content-length") == "7"


async def test_a_reset_reaches_the_client_as_a_connection_error() -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        connection.reset()

    async with ScriptedServer(handler) as server, aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(server.url + "/")
    assert server.count("GET", "/") >= 1


async def test_several_requests_on_one_connection_are_numbered() -> None:
    async def handler(request: ReceivedRequest, connection: ScriptedConnection) -> None:
        await connection.send(http_response(200, b"{}"))

    async with ScriptedServer(handler) as server, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(server.url + "/") as response:
                await response.read()
        await asyncio.sleep(0)
    assert [(r.connection, r.index) for r in server.requests] == [(0, 0), (0, 1), (0, 2)]
