"""``aiocouch replicate``: copy a database to another, showing progress until done."""

from __future__ import annotations

import asyncio
import contextlib

import click

from .._replication_endpoints import replication_body
from .._replication_status import display_url
from ..couchdb import CouchDB
from ..database import Database
from ..document import Document
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
@click.option(
    "--cancel",
    is_flag=True,
    help="Stop the replications of SOURCE to TARGET instead (delete their _replicator "
    "documents; with --id, only that one).",
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
    cancel: bool,
) -> None:
    """Replicates SOURCE to TARGET through a _replicator document.

    SOURCE and TARGET are database names on this server (the server replicates with
    your credentials) or URLs (http://user:password@host:5984/db). Prints the outcome as
    JSON: the document's id, the state, and docs_read, docs_written, doc_write_failures.
    A one-shot replication's document is deleted once it completed; Ctrl-C cancels it.
    With --cancel, stops the replications of SOURCE to TARGET and prints each one's id.
    """
    secrets = [*_passwords(source), *_passwords(target)]
    if cancel:
        if continuous or wait is not None or create_target:
            raise click.UsageError(
                "--cancel stops replications: not with --continuous, --wait or --create-target"
            )
        connection.run(lambda couchdb: _cancel(couchdb, source, target, doc_id), secrets=secrets)
        return
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

    connection.run(work, secrets=secrets)


async def _cancel(couchdb: CouchDB, source: str, target: str, doc_id: str | None) -> None:
    """Deletes the _replicator documents that replicate ``source`` to ``target`` (only
    ``doc_id``, if given), printing each one's id: GET /_replicator/_all_docs?
    include_docs=true (or GET /_replicator/{doc_id}), then GET and DELETE each document.

    The endpoints are compared as URLs without credentials. Raises CommandError
    (NOT_FOUND) when there is no such replication.
    """
    wanted = replication_body(
        couchdb._server._http,
        source,
        target,
        continuous=False,
        create_target=False,
        doc_ids=None,
        selector=None,
        filter=None,
        query_params=None,
        options={},
    )[2]
    replicator = Database(couchdb, "_replicator")
    matching = []
    if doc_id is not None:
        if _replicates(await replicator.get(doc_id), wanted):
            matching.append(doc_id)
    else:
        matching = [
            document.id async for document in replicator.docs() if _replicates(document, wanted)
        ]
    if not matching:
        which = f"'{doc_id}' " if doc_id is not None else ""
        raise CommandError(
            f"No replication {which}of {_shown(source)} to {_shown(target)} in _replicator",
            ExitCode.NOT_FOUND,
        )
    output = JsonOutput()
    for found in matching:
        job = couchdb.replications.document(found)
        await job.cancel()
        output.value({"id": job.id, "replicator_db": job.replicator_db, "cancelled": True})


def _replicates(document: Document, endpoints: tuple[str | None, str | None]) -> bool:
    """Whether a _replicator document replicates between ``endpoints`` (as shown: URLs
    without credentials)."""
    shown = (display_url(document.get("source")), display_url(document.get("target")))
    return shown == endpoints


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
