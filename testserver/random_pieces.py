"""A body cut at random places, as a network might deliver it, for the parsers' tests."""

from __future__ import annotations

import random
from typing import AnyStr

__all__ = ["random_pieces"]


def random_pieces(data: AnyStr, seed: int, max_size: int) -> list[AnyStr]:
    """``data`` cut into pieces of 1 to ``max_size`` characters (or bytes), the same
    pieces for the same ``seed``."""
    rng = random.Random(seed)
    pieces, start = [], 0
    while start < len(data):
        size = rng.randint(1, max_size)
        pieces.append(data[start : start + size])
        start += size
    return pieces
