"""The shapes of Mango's whole answers: the index list, a query plan, a bulk index deletion.

An answer of another shape raises InvalidResponseError (see :mod:`._answers`), so the
classes of :mod:`aiocouch.mango` can read these without checking each field again.
"""

from __future__ import annotations

from typing import Any

from ._answers import AnswerShape

__all__ = ["INDEX_DELETIONS", "INDEX_LIST", "QUERY_PLAN", "is_index_definition"]


def is_index_definition(value: Any) -> bool:
    """True for an index as ``GET /{db}/_index`` lists it: ``ddoc``, ``name``, ``type``, ``def``."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and isinstance(value.get("type"), str)
        and isinstance(value.get("def"), dict)
        and (value.get("ddoc") is None or isinstance(value["ddoc"], str))
        and (value.get("partitioned") is None or isinstance(value["partitioned"], bool))
    )


def _is_index_list(value: Any) -> bool:
    indexes = value.get("indexes") if isinstance(value, dict) else None
    return isinstance(indexes, list) and all(is_index_definition(index) for index in indexes)


def _is_query_plan(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and is_index_definition(value.get("index"))
        and isinstance(value.get("selector"), dict)
    )


def _are_deletions(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    lists = (value.get("success"), value.get("fail"))
    return all(
        isinstance(items, list)
        and all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in items)
        for items in lists
    )


INDEX_LIST = AnswerShape("a JSON object whose 'indexes' are index definitions", _is_index_list)
QUERY_PLAN = AnswerShape(
    "a JSON object with the 'index' (an index definition) and the 'selector' of the query",
    _is_query_plan,
)
INDEX_DELETIONS = AnswerShape(
    "a JSON object whose 'success' and 'fail' are lists of objects with an 'id'",
    _are_deletions,
)
