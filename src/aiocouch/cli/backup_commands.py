"""``aiocouch backup DB FILE`` and ``aiocouch restore FILE DB`` (see :mod:`aiocouch.backup`).

Each prints a JSON summary on stdout, progress on stderr (a bar on a terminal, plain
lines otherwise, nothing with ``--quiet``) and, on failure, one line ``aiocouch: ...`` on
stderr with an exit code that names the kind of failure: 0 ok, 1 a failure of the server
or a refused revision, 2 invalid input (such as an existing FILE), 3 no such database,
4 bad credentials, 6 server unreachable, 9 corrupt backup file (nothing written),
130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

import aiohttp
import click

from .. import backup as backup_module
from ..couchdb import CouchDB
from ..database import Database
from ..exception import NotFoundError, UnauthorizedError
from ._progress import Progress

__all__ = ["backup", "restore"]

_T = TypeVar("_T")

EXIT_FAILURE = 1
EXIT_INVALID_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_BAD_CREDENTIALS = 4
EXIT_UNREACHABLE = 6
EXIT_CORRUPT_BACKUP = 9
EXIT_INTERRUPTED = 130


@dataclass
class _Server:
    """The server and credentials of a command (never shown)."""

    url: str
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def _server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--url``, ``--user``, ``--password`` (ask for it), ``--quiet``; the password comes
    from ``COUCHDB_PASSWORD`` or a prompt, never from the command line (which others
    may read)."""
    options = [
        click.option(
            "--url",
            envvar="COUCHDB_URL",
            default="http://localhost:5984",
            show_default=True,
            help="The server (default: $COUCHDB_URL).",
        ),
        click.option("--user", envvar="COUCHDB_USER", help="Default: $COUCHDB_USER."),
        click.option(
            "--password",
            "ask_password",
            is_flag=True,
            help="Ask for the password (not echoed). Default: $COUCHDB_PASSWORD, else "
            "asked for when --user is given.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress output, only errors."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@click.argument("db")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--gzip/--no-gzip",
    "compress",
    default=None,
    help="Compress the file (default: if FILE ends in .gz).",
)
@click.option("--overwrite", is_flag=True, help="Replace FILE if it is a finished backup.")
@click.option("--restart", is_flag=True, help="Ignore the checkpoint of an interrupted backup.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--in-flight", type=click.IntRange(min=1), default=4, show_default=True)
@_server_options
def backup(
    db: str,
    file: Path,
    compress: bool | None,
    overwrite: bool,
    restart: bool,
    batch_size: int,
    in_flight: int,
    url: str,
    user: str | None,
    ask_password: bool,
    quiet: bool,
) -> None:
    """Write every document of DB (winning and conflicting revisions, deletions, history,
    attachments) into FILE as JSON lines. Interrupted, run it again to continue."""
    server = _server(url, user, ask_password)

    async def work(couchdb: CouchDB) -> Any:
        with _progress_bars(f"backup {db}", quiet) as progress:
            return await backup_module.backup(
                Database(couchdb, db),
                file,
                gzip=compress,
                batch_size=batch_size,
                in_flight=in_flight,
                resume=not restart,
                overwrite=overwrite or restart,
                progress=progress,
            )

    summary = _run(server, work)
    click.echo(json.dumps({**asdict(summary), "path": str(summary.path)}))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("db")
@click.option("--create", is_flag=True, help="Create DB if it does not exist.")
@click.option("--restart", is_flag=True, help="Ignore the checkpoint of an interrupted restore.")
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--in-flight", type=click.IntRange(min=1), default=4, show_default=True)
@_server_options
def restore(
    file: Path,
    db: str,
    create: bool,
    restart: bool,
    batch_size: int,
    in_flight: int,
    url: str,
    user: str | None,
    ask_password: bool,
    quiet: bool,
) -> None:
    """Write the backup FILE into DB, revisions as they are, design documents last.

    FILE is checked whole first: if it is corrupt, the line is named and nothing is
    written. Interrupted, run it again to continue."""
    server = _server(url, user, ask_password)

    async def work(couchdb: CouchDB) -> Any:
        with _progress_bars(f"restore {db}", quiet) as progress:
            return await backup_module.restore(
                file,
                Database(couchdb, db),
                batch_size=batch_size,
                in_flight=in_flight,
                resume=not restart,
                create=create,
                progress=progress,
            )

    summary = _run(server, work)
    click.echo(json.dumps({**asdict(summary), "path": str(summary.path)}))


def _server(url: str, user: str | None, ask_password: bool) -> _Server:
    """The server and credentials: the password from $COUCHDB_PASSWORD, else asked for
    (not echoed) with ``--password`` or when a user is named."""
    password = os.environ.get("COUCHDB_PASSWORD") or None
    if password is None and (ask_password or user):
        password = click.prompt(
            f"Password for {user or 'the server'}", hide_input=True, err=True, default=""
        )
    return _Server(url, user, password)


@contextlib.contextmanager
def _progress_bars(
    label: str, quiet: bool
) -> Iterator[Callable[[backup_module.BackupProgress], None]]:
    """A progress callback drawing one bar on stderr, from its first report on; the work
    an interrupted run did before is left out of the count (and of the rate)."""
    with contextlib.ExitStack() as stack:
        bar: Progress | None = None
        start = 0

        def show(progress: backup_module.BackupProgress) -> None:
            nonlocal bar, start
            if bar is None:
                start = progress.done
                bar = stack.enter_context(Progress(None, label, quiet))
            bar.set_total(None if progress.total is None else progress.total - start)
            bar.advance(progress.done - start - bar.completed)

        yield show


def _run(server: _Server, work: Callable[[CouchDB], Awaitable[_T]]) -> _T:
    """Awaits ``work`` with a client of ``server``; failures become a message and an exit."""

    async def with_client() -> _T:
        async with CouchDB(server.url, user=server.user, password=server.password) as couchdb:
            return await work(couchdb)

    try:
        return asyncio.run(with_client())
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to continue", EXIT_INTERRUPTED)
    except backup_module.BackupFormatError as exc:
        _fail(f"corrupt backup, nothing written: {exc}", EXIT_CORRUPT_BACKUP)
    except FileExistsError as exc:
        _fail(str(exc), EXIT_INVALID_INPUT)
    except NotFoundError as exc:
        _fail(f"not found: {exc}", EXIT_NOT_FOUND)
    except UnauthorizedError:
        _fail("the server refused the user name and password", EXIT_BAD_CREDENTIALS)
    except (aiohttp.ClientConnectorError, asyncio.TimeoutError) as exc:
        _fail(f"the server is unreachable ({type(exc).__name__})", EXIT_UNREACHABLE)
    except (backup_module.RestoreError, ValueError, OSError) as exc:
        _fail(str(exc), EXIT_FAILURE)
    except Exception as exc:
        _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"aiocouch: {message}", err=True)
    raise SystemExit(code)
