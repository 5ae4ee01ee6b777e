"""What the command says when it fails, and the exit codes (documented in docs/cli.md).

Every command runs inside :func:`reported_errors`: an exception of the library becomes
one line on stderr (``aiocouch: ...``) and an exit code that names its kind, never a
traceback, and never a credential (known secrets are masked in every message).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import os
import sys
import urllib.parse
from collections.abc import Collection, Iterator

import aiohttp
import click

from ..backup import BackupFormatError, RestoreError
from ..exception import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PreconditionFailedError,
    RemoteResponseError,
    TimeLimitError,
    UnauthorizedError,
)
from ..replication import ReplicationError


class ExitCode(enum.IntEnum):
    """The exit status of the ``aiocouch`` command, one per kind of failure."""

    OK = 0
    FAILURE = 1
    """The server answered with an error no other code names (5xx, an invalid answer), or
    refused some revisions of a restore."""
    INVALID_INPUT = 2
    """Wrong arguments, invalid JSON, a finished backup as ``backup``'s FILE (without
    ``--overwrite``), or a request the server refused as bad (400)."""
    NOT_FOUND = 3
    """The database, document, design document or view does not exist (404), or there is
    no replication to cancel."""
    BAD_CREDENTIALS = 4
    """The server refused the name and password (401)."""
    FORBIDDEN = 5
    """The account may not do this (403)."""
    UNREACHABLE = 6
    """No connection to the server, or it did not answer in time."""
    CONFLICT = 7
    """A document update conflict (409), or the database exists already (412)."""
    REPLICATION_FAILED = 8
    """The server gave up on the replication."""
    CORRUPT_BACKUP = 9
    """A backup file cannot be read back (``restore``: which line; nothing is written)."""
    INTERRUPTED = 130
    """Stopped with Ctrl-C."""


EXIT_CODE_MEANINGS = {
    ExitCode.OK: "done",
    ExitCode.FAILURE: "server error, a restore partly refused, or another failure",
    ExitCode.INVALID_INPUT: "invalid input (arguments, JSON, an existing backup, a bad request)",
    ExitCode.NOT_FOUND: "database, document, view or replication not found",
    ExitCode.BAD_CREDENTIALS: "bad credentials",
    ExitCode.FORBIDDEN: "not allowed for this account",
    ExitCode.UNREACHABLE: "server unreachable, or silent too long",
    ExitCode.CONFLICT: "conflict (document revision, existing database)",
    ExitCode.REPLICATION_FAILED: "replication failed",
    ExitCode.CORRUPT_BACKUP: "corrupt backup file (nothing restored)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C; backup and restore continue when run again)",
}


INTERRUPTED = "interrupted"
"""What the command says on Ctrl-C, unless its work says how to resume."""


def exit_codes_help() -> str:
    """The table of exit codes, for ``aiocouch --help`` (``\\b``: click keeps its lines)."""
    rows = [f"  {int(code):<4} {meaning}" for code, meaning in EXIT_CODE_MEANINGS.items()]
    return "\b\nExit codes:\n" + "\n".join(rows)


class CommandError(click.ClickException):
    """A failure a command found itself, with its message and exit code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILURE) -> None:
        super().__init__(message)
        self.code = exit_code

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        # click reads the code from here; it declares it a class constant
        return int(self.code)

    def show(self, file: object = None) -> None:
        click.echo(f"aiocouch: {self.format_message()}", err=True)


def classify(error: BaseException) -> tuple[ExitCode, str]:
    """The exit code of ``error`` and the message that explains it to a user."""
    if isinstance(error, RemoteResponseError):
        return _classify_answer(error)
    if isinstance(error, BackupFormatError):
        # its message names the file and the line; restore checks the file before writing
        return ExitCode.CORRUPT_BACKUP, f"corrupt backup, nothing written: {_detail(error)}"
    if isinstance(error, RestoreError):
        return ExitCode.FAILURE, f"restore incomplete: {_detail(error)}"
    if isinstance(error, ReplicationError):
        return ExitCode.REPLICATION_FAILED, f"replication failed: {_detail(error)}"
    if isinstance(error, (TimeLimitError, asyncio.TimeoutError)):
        return ExitCode.UNREACHABLE, f"the server did not answer in time ({_detail(error)})"
    if isinstance(error, aiohttp.ClientConnectorError):
        return ExitCode.UNREACHABLE, f"cannot connect to the server ({_detail(error)})"
    if isinstance(error, (aiohttp.ClientConnectionError, ConnectionError)):
        return ExitCode.UNREACHABLE, f"the connection to the server failed ({_detail(error)})"
    if isinstance(error, FileExistsError):
        # a backup never writes over a finished backup unless told to
        return ExitCode.INVALID_INPUT, f"invalid input: {_detail(error)}"
    if isinstance(error, OSError) and error.filename is not None:
        # a file given on the command line (backup, restore) cannot be read or written
        return ExitCode.FAILURE, f"file error: {_detail(error)}"
    if isinstance(error, (ValueError, TypeError)):
        # the library refuses input it cannot send before any request, with these
        return ExitCode.INVALID_INPUT, f"invalid input: {_detail(error)}"
    return ExitCode.FAILURE, f"unexpected error: {type(error).__name__}: {_detail(error)}"


def _classify_answer(error: RemoteResponseError) -> tuple[ExitCode, str]:
    if isinstance(error, UnauthorizedError):
        return ExitCode.BAD_CREDENTIALS, f"bad credentials: {_detail(error)}"
    if isinstance(error, ForbiddenError):
        return ExitCode.FORBIDDEN, f"not allowed: {_detail(error)}"
    if isinstance(error, NotFoundError):
        return ExitCode.NOT_FOUND, f"not found: {_detail(error)}"
    if isinstance(error, (ConflictError, PreconditionFailedError)):
        return ExitCode.CONFLICT, f"conflict: {_detail(error)}"
    if isinstance(error, BadRequestError):
        return ExitCode.INVALID_INPUT, f"refused as invalid: {_detail(error)}"
    return ExitCode.FAILURE, f"server error: {_detail(error)}"


def _detail(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        # the library's KeyError classes (NotFoundError...) quote their message as KeyError does
        return str(error.args[0])
    return str(error) or type(error).__name__


def masked(text: str, secrets: Collection[str]) -> str:
    """``text`` with every secret (as given, percent-encoded, or in a basic-auth token)
    replaced by ``***``: a last guard, should any message ever carry one."""
    for secret in secrets:
        if not secret:
            continue
        for form in (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)):
            text = text.replace(form, "***")
    return text


def basic_tokens(user: str | None, password: str | None) -> list[str]:
    """The basic-auth token of ``user:password``, to mask it too."""
    if not user or not password:
        return []
    return [base64.b64encode(f"{user}:{password}".encode()).decode()]


@contextlib.contextmanager
def reported_errors(
    secrets: Collection[str] = (), *, interrupted: str = INTERRUPTED
) -> Iterator[None]:
    """Turns an exception of the block into ``aiocouch: message`` on stderr and an exit.

    Exits with the :class:`ExitCode` of the failure; a closed stdout (``| head``) ends the
    command quietly with 0; Ctrl-C says ``interrupted``.
    """
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except KeyboardInterrupt:
        click.echo(f"aiocouch: {interrupted}", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(ExitCode.OK)
    except Exception as error:
        code, message = classify(error)
        click.echo(f"aiocouch: {masked(message, secrets)}", err=True)
        sys.exit(code)


def _silence_stdout() -> None:
    # Python would otherwise complain once more when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
