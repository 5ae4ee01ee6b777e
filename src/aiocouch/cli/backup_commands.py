"""``aiocouch backup DB FILE`` and ``aiocouch restore FILE DB`` (see :mod:`aiocouch.backup`).

Both take the server, credentials, ``--quiet`` and ``--timeout`` from the ``aiocouch``
group (:class:`~aiocouch.cli._connection.Connection`); their failures become messages and
exit codes in :mod:`aiocouch.cli._errors` (a corrupt backup file: 9, naming the line).
Each prints a JSON summary on stdout and its progress on stderr.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Union

import click

from .. import backup as backup_module
from ..couchdb import CouchDB
from ..database import Database
from ._connection import Connection
from ._output import JsonOutput
from ._progress import Progress

__all__ = ["backup", "restore"]

RESUME_HINT = "interrupted: run the same command again to continue"

_Summary = Union[backup_module.BackupSummary, backup_module.RestoreSummary]


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
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Documents read per request.",
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Batches in progress at once.",
)
@click.pass_obj
def backup(
    connection: Connection,
    db: str,
    file: Path,
    compress: bool | None,
    overwrite: bool,
    restart: bool,
    batch_size: int,
    in_flight: int,
) -> None:
    """Writes every document of DB into the backup FILE.

    Every document's winning and conflicting revisions and deletions, with their
    histories and attachments, as JSON lines (gzip if FILE ends in .gz). Prints a JSON
    summary. Interrupted, run it again to continue.
    """

    async def work(couchdb: CouchDB) -> backup_module.BackupSummary:
        with _progress_bars(f"backup {db}", connection.quiet) as progress:
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

    _print_summary(connection.run(work, interrupted=RESUME_HINT))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("db")
@click.option("--create", is_flag=True, help="Create DB if it does not exist.")
@click.option("--restart", is_flag=True, help="Ignore the checkpoint of an interrupted restore.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Revisions written per request.",
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Requests in progress at once.",
)
@click.pass_obj
def restore(
    connection: Connection,
    file: Path,
    db: str,
    create: bool,
    restart: bool,
    batch_size: int,
    in_flight: int,
) -> None:
    """Writes the backup FILE into DB, exactly as it was backed up.

    Revisions, conflicts and deletions as they are, design documents last. FILE is
    checked whole first: if it is corrupt, the line is named and nothing is
    written (exit code 9). Prints a JSON summary. Interrupted, run it again to continue.
    """

    async def work(couchdb: CouchDB) -> backup_module.RestoreSummary:
        with _progress_bars(f"restore {db}", connection.quiet) as progress:
            return await backup_module.restore(
                file,
                Database(couchdb, db),
                batch_size=batch_size,
                in_flight=in_flight,
                resume=not restart,
                create=create,
                progress=progress,
            )

    _print_summary(connection.run(work, interrupted=RESUME_HINT))


def _print_summary(summary: _Summary) -> None:
    shown: dict[str, Any] = {**asdict(summary), "path": str(summary.path)}
    JsonOutput().value(shown)


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
