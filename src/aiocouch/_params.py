"""Encoding of query parameters, the way aiocouch callers pass them.

Strings are sent verbatim (``key='"baz"'`` is already JSON and is never encoded again),
booleans become ``true``/``false``, numbers their decimal form, ``None`` is dropped, and
any other value (a list, a dict) is JSON-encoded, which is what CouchDB expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from . import _json

__all__ = ["encode_query", "stringify_params"]


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return _json.dumps(value).decode()


def stringify_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """aiocouch 4.0.1's helper: drops ``None`` values and spells booleans as JSON."""
    if params is None:
        return None
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else value
        for key, value in params.items()
        if value is not None
    }


def encode_query(params: Mapping[str, Any] | None) -> str:
    """``?a=1&b=%22x%22`` for the non-None parameters, or ``""`` when there are none."""
    if not params:
        return ""
    parts = [
        f"{quote(str(key), safe='')}={quote(_param_value(value), safe='')}"
        for key, value in params.items()
        if value is not None
    ]
    return "?" + "&".join(parts) if parts else ""
