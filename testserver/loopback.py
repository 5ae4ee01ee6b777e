"""What the test suite's loopback servers (scripted servers, the TLS proxy) share."""

from __future__ import annotations

import asyncio

__all__ = ["shut_down"]


async def shut_down(server: asyncio.AbstractServer, tasks: set[asyncio.Task[None]]) -> None:
    """Stops accepting, ends the connections' ``tasks`` and waits for them and ``server``."""
    server.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()
