"""A griffe extension for the API reference: docstrings written for Sphinx read as Markdown.

The docstrings name other objects with Sphinx roles (``:meth:`fetch```,
``:class:`~aiocouch.retry.RetryPolicy```); Markdown has no such thing, so each becomes
the inline code of the name it shows (``fetch``, ``RetryPolicy``). Optional query
parameters are written in brackets (``GET /{db}/{docid}[?rev=][&r=]``), which Markdown
would take for a reference link: those brackets are escaped.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_QUERY_BRACKET = re.compile(r"\[(?=[?&])")
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`([^`]+)`")


def _shown(match: re.Match[str]) -> str:
    target = match[1].strip()
    if target.endswith(">") and "<" in target:  # :meth:`text <target>`
        return f"`{target[: target.index('<')].strip()}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring: roles as inline code, query brackets escaped."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(_shown, obj.docstring.value)
            obj.docstring.value = _QUERY_BRACKET.sub(r"\\[", text)
