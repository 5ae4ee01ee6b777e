"""Documents of the CouchDB transcript (shared/couchdb/couchdb-3.4.3.md) that several
test modules query, and how a test writes them so that its queries see them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiocouch import Database

__all__ = ["TRANSCRIPT_DOCUMENTS", "every_copy", "write_to_every_copy"]

TRANSCRIPT_DOCUMENTS: list[dict[str, Any]] = [
    {"_id": "apple", "type": "fruit", "value": 3, "color": "red"},
    {"_id": "banana", "type": "fruit", "value": 1, "color": "yellow"},
    {"_id": "cherry", "type": "fruit", "value": 5, "color": "red"},
    {"_id": "leek", "type": "veg", "value": 2, "color": "green"},
    {"_id": "pear", "type": "fruit", "value": 4, "color": "green"},
    {"_id": "tomato", "type": "veg", "value": 6, "color": "red"},
]
"""The six documents of transcript 6.2, which its Mango (6) and view (7) blocks query."""


async def every_copy(database: Database) -> dict[str, int]:
    """``{"w": n}`` on CouchDB (a write every copy holds, so that a query right after it
    sees it on a cluster), ``{}`` where there is no cluster: GET /{db}."""
    cluster = (await database.info()).get("cluster")
    return {"w": cluster["n"]} if isinstance(cluster, dict) else {}


async def write_to_every_copy(database: Database, documents: Iterable[dict[str, Any]]) -> None:
    """Writes ``documents`` in one POST /{db}/_bulk_docs that every copy holds; asserts
    that each was written."""
    result = await database._bulk_docs(list(documents), **await every_copy(database))
    assert all("rev" in item for item in result), result
