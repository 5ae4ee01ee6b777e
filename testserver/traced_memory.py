"""The memory a test's client holds, as ``tracemalloc`` sees it."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import aiocouch
from aiocouch import Database, Document

__all__ = ["held_after_reads", "held_by_aiocouch"]


def held_by_aiocouch(snapshot: tracemalloc.Snapshot) -> int:
    """The bytes of ``snapshot`` allocated by aiocouch's own code and still held (not the
    test's servers' in the same process, nor the test's own)."""
    package = str(Path(aiocouch.__file__).parent)
    own = snapshot.filter_traces([tracemalloc.Filter(True, f"{package}/*")])
    return sum(stat.size for stat in own.statistics("filename"))


async def held_after_reads(db: Database, doc_id: str, count: int) -> tuple[list[Document], int]:
    """``count`` GETs of ``doc_id`` at once (a connection each, kept in the pool after):
    the documents read, and what aiocouch allocated meanwhile and still holds."""
    tracemalloc.start()
    try:
        docs = await asyncio.gather(*(db.get(doc_id) for _ in range(count)))
        return docs, held_by_aiocouch(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
