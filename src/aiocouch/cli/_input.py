"""What commands read: JSON arguments, JSON documents from a file or stdin, view options.

Bad input ends the command with :data:`~aiocouch.cli._errors.ExitCode.INVALID_INPUT`
and a message naming the problem, before any request.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ._errors import CommandError, ExitCode


def json_argument(name: str, text: str) -> Any:
    """The JSON value of the argument ``name``; CommandError if it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"{name} is not valid JSON: {error}", ExitCode.INVALID_INPUT) from None


def json_object_from(source: str) -> dict[str, Any]:
    """The JSON object in the file ``source`` (``-``: stdin); CommandError if it is none."""
    where = "stdin" if source == "-" else f"'{source}'"
    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as file:
                raw = file.read()
    except OSError as error:
        raise CommandError(
            f"cannot read {where}: {error.strerror}", ExitCode.INVALID_INPUT
        ) from None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CommandError(
            f"{where} holds no valid JSON: {error}", ExitCode.INVALID_INPUT
        ) from None
    if not isinstance(value, dict):
        raise CommandError(
            f"{where} holds JSON, but not an object (a document is a JSON object)",
            ExitCode.INVALID_INPUT,
        )
    return value


def view_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``name=value`` pairs as view options; each value is JSON (``limit=10``,
    ``key='"a"'``, ``descending=true``), or else taken as a string."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise CommandError(
                f"view options look like name=value (limit=10, key='\"a\"'), not {pair!r}",
                ExitCode.INVALID_INPUT,
            )
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def fail_on_unknown(options: dict[str, Any], known: set[str]) -> None:
    """CommandError naming the first option that is not one of ``known``."""
    for name in options:
        if name not in known:
            raise CommandError(
                f"unknown view option {name!r}; known: {', '.join(sorted(known))}",
                ExitCode.INVALID_INPUT,
            )
