"""The memory a test's client holds, as ``tracemalloc`` sees it."""

from __future__ import annotations

import tracemalloc

__all__ = ["held_by_aiocouch"]


def held_by_aiocouch(snapshot: tracemalloc.Snapshot) -> int:
    """The bytes of ``snapshot`` allocated by aiocouch's own code and still held (not the
    test's servers' in the same process, nor the test's own)."""
    own = snapshot.filter_traces([tracemalloc.Filter(True, "*/aiocouch/*")])
    return sum(stat.size for stat in own.statistics("filename"))
