"""Decoding of 2xx answers, and the error for an answer that is not what was asked.

A whole answer is decoded here, once; a streamed one by the parsers of :mod:`._rows`,
whose complaints (``ValueError``) become the same :class:`InvalidResponseError`. Its
message names the request and what was wrong with the answer; its ``request_info``
carries no credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from typing_extensions import TypeGuard

from . import _json
from ._transport import public_request_info
from .exception import InvalidResponseError

__all__ = [
    "ARRAY",
    "ARRAY_OF_OBJECTS",
    "COUNT",
    "DESIGN_INFO",
    "DOCUMENT_SHARD",
    "OBJECT",
    "PURGE_RESULT",
    "SHARD_MAP",
    "STATE",
    "VIEW_RESULT",
    "AnswerShape",
    "UnexpectedAnswer",
    "decode_json",
    "describe_problem",
    "invalid_answer",
    "is_document",
    "is_strings",
    "kind_of",
]

_EXCERPT_BYTES = 60


class AnswerShape:
    """What a 2xx answer must decode to, e.g. a JSON object."""

    def __init__(self, name: str, matches: Callable[[Any], bool]) -> None:
        self.name = name
        self.matches = matches

    def __repr__(self) -> str:
        return f"<AnswerShape {self.name}>"


def is_document(value: Any) -> bool:
    """True if ``value`` is a JSON object with a string ``_id``."""
    return type(value) is dict and type(value.get("_id")) is str


def _is_array_of_objects(value: Any) -> TypeGuard[list[dict[str, Any]]]:
    # (the set of the items' types: one pass in C over a bulk answer's many items)
    return isinstance(value, list) and set(map(type, value)) <= {dict}


def _is_view_result(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    rows = value.get("rows")
    return _is_array_of_objects(rows) and all(
        row.get("doc") is None or is_document(row["doc"]) for row in rows
    )


OBJECT = AnswerShape("a JSON object", lambda value: isinstance(value, dict))
ARRAY = AnswerShape("a JSON array", lambda value: isinstance(value, list))
ARRAY_OF_OBJECTS = AnswerShape("a JSON array of objects", _is_array_of_objects)
VIEW_RESULT = AnswerShape(
    "a JSON object whose 'rows' are objects (each 'doc' a document or null)",
    _is_view_result,
)


def is_strings(value: Any) -> TypeGuard[list[str]]:
    """True if ``value`` is a JSON array of strings."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _maps_to_strings(value: Any) -> bool:
    return isinstance(value, dict) and all(is_strings(item) for item in value.values())


COUNT = AnswerShape("a non-negative JSON integer", lambda value: type(value) is int and value >= 0)
PURGE_RESULT = AnswerShape(
    "a JSON object whose 'purged' maps ids to arrays of revisions",
    lambda value: isinstance(value, dict) and _maps_to_strings(value.get("purged")),
)
SHARD_MAP = AnswerShape(
    "a JSON object whose 'shards' maps ranges to arrays of node names",
    lambda value: isinstance(value, dict) and _maps_to_strings(value.get("shards")),
)
STATE = AnswerShape(
    "a JSON object with a string 'state'",
    lambda value: isinstance(value, dict) and isinstance(value.get("state"), str),
)
DOCUMENT_SHARD = AnswerShape(
    "a JSON object with a string 'range' and an array of node names 'nodes'",
    lambda value: (
        isinstance(value, dict)
        and type(value.get("range")) is str
        and is_strings(value.get("nodes"))
    ),
)
DESIGN_INFO = AnswerShape(
    "a JSON object with the design document's 'name' and its 'view_index' object",
    lambda value: (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and isinstance(value.get("view_index"), dict)
    ),
)


class UnexpectedAnswer(ValueError):
    """What is wrong with a 2xx answer (turned into an InvalidResponseError by the caller)."""


def kind_of(value: Any) -> str:
    """``value``'s JSON type, as a message shows it."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return _json.dumps(value).decode()
    return "a number"


def decode_json(
    body: bytes,
    *,
    headers: Mapping[str, str] | Callable[[], Mapping[str, str]],
    allow_empty: bool,
    expect: AnswerShape | None,
) -> Any:
    """The JSON value of a whole 2xx ``body``; None for an allowed empty body.

    Raises UnexpectedAnswer if the body is empty (unless allowed), not UTF-8, not JSON,
    or not of the ``expect``-ed shape; ``headers`` (the answer's, or a function making
    them, called only then) name its Content-Type.
    """
    if not body:
        if allow_empty:
            return None
        raise UnexpectedAnswer(f"the body is empty, expected {_name(expect)}")
    try:
        value = _json.loads(body)
    except ValueError as exc:
        if callable(headers):
            headers = headers()
        raise UnexpectedAnswer(_not_json(body, headers.get("Content-Type"), exc)) from exc
    if expect is not None and not expect.matches(value):
        raise UnexpectedAnswer(f"expected {expect.name}, got {kind_of(value)}")
    return value


def describe_problem(exc: ValueError) -> str:
    """What a parser's ``ValueError`` says about a streamed body."""
    if isinstance(exc, UnicodeDecodeError):
        return f"the body is not valid UTF-8 ({exc.reason})"
    return str(exc)


def invalid_answer(
    problem: str,
    *,
    method: str,
    path: str,
    subject: str,
    url: Any,
    request_headers: Mapping[str, str],
    status: int = 0,
    headers: Any | None = None,
) -> InvalidResponseError:
    """The error for an answer to ``method path`` (about ``subject``) that has ``problem``.

    ``url`` is the request's URL without credentials; ``Authorization`` and ``Cookie``
    are left out of ``request_headers``.
    """
    about = "" if subject in (path, "the request") else f" ({subject})"
    return InvalidResponseError(
        f"Invalid answer to {method} {path}{about}: {problem}",
        public_request_info(url, method, request_headers),
        status=status,
        headers=headers,
    )


def _name(expect: AnswerShape | None) -> str:
    return "JSON" if expect is None else expect.name


def _not_json(body: bytes, content_type: str | None, exc: ValueError) -> str:
    try:
        body.decode()
    except UnicodeDecodeError as error:
        problem = f"the body is not valid UTF-8 ({error.reason} at byte {error.start})"
    else:
        problem = f"the body is not valid JSON ({exc})"
    excerpt = body[:_EXCERPT_BYTES].decode(errors="replace")
    return f"{problem}; Content-Type {content_type!r}, starting {excerpt!r}"
