"""All a user can print of objects, for tests that no credential shows anywhere in it."""

from __future__ import annotations

import traceback
from collections.abc import Mapping

import aiohttp

__all__ = ["exposed_text"]

# The attributes of an exception that carry what it says about its request and answer.
_EXCEPTION_PARTS = ("args", "request_info", "headers", "history", "reason", "message")


def exposed_text(*objects: object) -> str:
    """All a user can print of ``objects``: str and repr, and for exceptions their args,
    formatted traceback, request_info (URL and headers), headers, history (each response
    with its own request_info and headers), reason, message, cause and context."""
    parts: list[str] = []
    seen: set[int] = set()

    def visit(value: object) -> None:
        if value is None or id(value) in seen:
            return
        seen.add(id(value))
        parts.extend((str(value), repr(value)))
        if isinstance(value, BaseException):
            parts.append("".join(traceback.format_exception(type(value), value, None)))
            for name in _EXCEPTION_PARTS:
                visit(getattr(value, name, None))
            visit(value.__cause__)
            visit(value.__context__)
        elif isinstance(value, aiohttp.RequestInfo):
            for part in (value.url, value.real_url, value.headers):
                visit(part)
        elif isinstance(value, aiohttp.ClientResponse):
            visit(value.request_info)
            visit(value.headers)
        elif isinstance(value, Mapping):
            parts.extend(f"{name}: {item}" for name, item in value.items())
        elif isinstance(value, (tuple, list)):
            for item in value:
                visit(item)

    for value in objects:
        visit(value)
    return "\n".join(parts)
