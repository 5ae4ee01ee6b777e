"""The JSON codec: orjson where it is installed, the standard library otherwise."""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["dumps", "dumps_canonical", "loads"]


def _stdlib_dumps(value: Any, *, sort_keys: bool) -> bytes:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    ).encode()


loads: Callable[[bytes | str], Any]
"""Decodes one JSON document from bytes or str."""

try:
    import orjson

    loads = orjson.loads

    _OPTIONS = orjson.OPT_NON_STR_KEYS

    def dumps(value: Any) -> bytes:
        """Encodes ``value`` as compact UTF-8 JSON."""
        try:
            return orjson.dumps(value, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # integers beyond 64 bits and other values only the standard library encodes
            return _stdlib_dumps(value, sort_keys=False)

    def dumps_canonical(value: Any) -> bytes:
        """Encodes ``value`` with sorted keys: equal data gives equal bytes."""
        try:
            return orjson.dumps(value, option=_OPTIONS | orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return _stdlib_dumps(value, sort_keys=True)

except ImportError:  # pragma: no cover - exercised only where orjson has no wheel
    loads = json.loads

    def dumps(value: Any) -> bytes:
        """Encodes ``value`` as compact UTF-8 JSON."""
        return _stdlib_dumps(value, sort_keys=False)

    def dumps_canonical(value: Any) -> bytes:
        """Encodes ``value`` with sorted keys: equal data gives equal bytes."""
        return _stdlib_dumps(value, sort_keys=True)
