"""``aiocouch replicate``: copy a database to another, showing progress until done."""

from __future__ import annotations

import asyncio
import contextlib

import click

from ..couchdb import CouchDB
from ..replication import ReplicationDocument, ReplicationProgress
from ._connection import Connection, split_credentials
from ._errors import CommandError, ExitCode
from ._output import JsonOutput
from ._progress import Progress

POLL_INTERVAL = 1.0
"""Seconds between two looks at the replication's state, at most."""


@click.command()
@click.argument("source")
@click.argument("target")
@click.option(
    "--continuous",
    is_flag=True,
    help="Keep replicating new changes (until its _replicator document is deleted).",
)
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Wait until done (one-shot; the default) or caught up (continuous), with "
    "progress; --no-wait returns once it is started. Default: wait unless --continuous.",
)
@click.option("--create-target", is_flag=True, help="Create TARGET if it does not exist.")
@click.option(
    "--id", "doc_id", metavar="ID", help="The id of its _replicator document (default: new)."
)
@click.pass_obj
def replicate(
    connection: Connection,
    source: str,
    target: str,
    continuous: bool,
    wait: bool | None,
    create_target: bool,
    doc_id: str | None,
) -> None:
    """Replicates SOURCE to TARGET through a _replicator document.

    SOURCE and TARGET are database names on this server (the server replicates with
    your credentials) or URLs (http://user:password@host:5984/db). Prints the outcome as
    JSON: the document's id, the state, and docs_read, docs_written, doc_write_failures.
    A one-shot replication's document is deleted once it completed; Ctrl-C cancels it.
    """
    if wait is None:
        wait = not continuous
    label = f"replicate {_shown(source)} -> {_shown(target)}"

    async def work(couchdb: CouchDB) -> None:
        await _check_databases(couchdb, source, None if create_target else target)
        job = await couchdb.replications.create(
            source, target, id=doc_id, continuous=continuous, create_target=create_target
        )
        output = JsonOutput()
        if not wait:
            output.value({"id": job.id, "replicator_db": job.replicator_db, "state": None})
            return
        try:
            with Progress(None, label, connection.quiet) as progress:
                final = await _watch(job, progress, continuous)
        except (asyncio.CancelledError, Exception):
            if not continuous:
                # an interrupted or failed one-shot replication is not left behind
                with contextlib.suppress(Exception):
                    await job.cancel()
            raise
        if not continuous:
            await job.cancel()
        output.value(
            {
                "id": job.id,
                "replicator_db": job.replicator_db,
                "state": final.state,
                "docs_read": final.docs_read,
                "docs_written": final.docs_written,
                "doc_write_failures": final.doc_write_failures,
            }
        )
        if final.doc_write_failures:
            raise CommandError(
                f"{final.doc_write_failures} document(s) could not be written to the target",
                ExitCode.REPLICATION_FAILED,
            )

    connection.run(work, secrets=[*_passwords(source), *_passwords(target)])


async def _watch(
    job: ReplicationDocument, progress: Progress, continuous: bool
) -> ReplicationProgress:
    """Shows the replication's progress until it completed (or, continuous, caught up)."""
    async for state in job.progress(max_interval=POLL_INTERVAL):
        read = state.docs_read or 0
        if state.changes_pending is not None:
            progress.set_total(read + state.changes_pending)
        if read > progress.completed:
            progress.advance(read - progress.completed)
        if state.finished or (continuous and state.caught_up):
            return state
    raise AssertionError("progress() ends only with a final state")  # pragma: no cover


async def _check_databases(couchdb: CouchDB, source: str, target: str | None) -> None:
    """Raises NotFoundError for a database named (not given by URL) that does not exist:
    the server would retry such a replication for ever (HEAD /{db})."""
    for name in (source, target):
        if name is not None and "://" not in name:
            await couchdb[name]


def _passwords(endpoint: str) -> list[str]:
    """The password an endpoint's URL holds, to mask it in every message."""
    if "://" not in endpoint:
        return []
    with contextlib.suppress(ValueError):
        password = split_credentials(endpoint)[2]
        return [password] if password else []
    return []


def _shown(endpoint: str) -> str:
    if "://" not in endpoint:
        return endpoint
    with contextlib.suppress(ValueError):
        return split_credentials(endpoint)[0]
    return "(URL)"
