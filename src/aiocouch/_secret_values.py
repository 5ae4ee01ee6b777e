"""Secrets that travel in a request body (passwords, replication credentials), kept out of
everything an exception shows.

:mod:`._redaction` removes credential *headers* from exceptions; a password in a JSON body
is invisible to it. A server may still echo the body in its ``reason`` (or an HTML error
page in an invalid answer's excerpt), so the calls that send such a body hide each secret
value in whatever exception leaves them: its message, ``args``, ``reason`` and its chained
causes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import quote

__all__ = ["SECRET_MARK", "SHORTEST_HIDDEN_PART", "basic_secrets", "hide", "secrets_hidden"]

SECRET_MARK = "***"
"""What stands in place of a hidden secret."""
SHORTEST_HIDDEN_PART = 4
"""The fewest characters of a secret's beginning that are hidden on their own."""


def basic_secrets(user: str, password: str) -> list[str]:
    """The forms in which basic credentials can show: the password (plain and
    percent-encoded), ``user:password`` and its base64 token."""
    if not password:
        return []
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return [password, quote(password, safe=""), f"{user}:{password}", token]


def hide(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by :data:`SECRET_MARK`, and
    of its beginnings of :data:`SHORTEST_HIDDEN_PART` characters or more: an excerpt of a
    body (an invalid answer's) may cut a secret short."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        for end in range(len(secret), min(len(secret), SHORTEST_HIDDEN_PART) - 1, -1):
            if secret[:end] in text:
                text = text.replace(secret[:end], SECRET_MARK)
    return text


@contextmanager
def secrets_hidden(secrets: Iterable[str]) -> Iterator[None]:
    """Within the block, an exception that leaves shows none of ``secrets``."""
    values = [secret for secret in secrets if secret]
    try:
        yield
    except BaseException as exc:
        if values:
            _hide_in(exc, values, set())
        raise


def _hide_in(exc: BaseException, secrets: list[str], seen: set[int]) -> None:
    if id(exc) in seen:
        return
    seen.add(id(exc))
    exc.args = tuple(_hidden(arg, secrets) for arg in exc.args)
    for name in ("message", "reason"):
        value = getattr(exc, name, None)
        if isinstance(value, str):
            # Some classes keep these as read-only properties: leave those as they are.
            with suppress(AttributeError):
                setattr(exc, name, hide(value, secrets))
    for chained in (exc.__cause__, exc.__context__):
        if chained is not None:
            _hide_in(chained, secrets, seen)


def _hidden(value: object, secrets: list[str]) -> object:
    return hide(value, secrets) if isinstance(value, str) else value
