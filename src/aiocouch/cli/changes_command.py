"""``aiocouch changes``: a database's changes as JSON lines, once or followed."""

from __future__ import annotations

from typing import Any

import click

from ..couchdb import CouchDB
from ..database import Database
from ..event import BaseChangeEvent
from ..typing import JsonDict
from ._connection import Connection
from ._output import JsonOutput

HEARTBEAT = 10.0
"""Seconds between the server's keep-alive newlines while following (at most a third of
``--timeout``, so that a live but quiet feed never counts as silent)."""


@click.command()
@click.argument("db")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing new changes until Ctrl-C; resumes by itself after a dropped "
    "connection or a server restart.",
)
@click.option(
    "--since",
    metavar="SEQ",
    help="Only changes after this sequence ('now': only new ones). Default: all.",
)
@click.option("--include-docs", is_flag=True, help="Each change holds its document.")
@click.option(
    "--doc-id",
    "doc_ids",
    multiple=True,
    metavar="ID",
    help="Only the changes of this document (repeat for several).",
)
@click.option(
    "--limit", type=click.IntRange(min=0), help="At most this many changes (without --follow)."
)
@click.pass_obj
def changes(
    connection: Connection,
    db: str,
    follow: bool,
    since: str | None,
    include_docs: bool,
    doc_ids: tuple[str, ...],
    limit: int | None,
) -> None:
    """The changes of DB, one JSON object a line (GET /DB/_changes).

    Each line is a row of CouchDB's changes feed: {"seq": ..., "id": ..., "changes":
    [{"rev": ...}], "deleted": true?}. Resume later with --since and the last "seq".
    """
    if follow and limit is not None:
        raise click.UsageError("--limit is for one pass over the changes, not with --follow")

    async def once(couchdb: CouchDB) -> None:
        params: dict[str, Any] = {"since": since, "include_docs": include_docs or None}
        if doc_ids:
            params.update(filter="_doc_ids", doc_ids=list(doc_ids))
        feed = Database(couchdb, db).changes(limit=limit, **params)
        await JsonOutput().lines(feed, _row_of)

    async def followed(couchdb: CouchDB) -> None:
        heartbeat = HEARTBEAT
        if connection.timeout is not None:
            heartbeat = min(heartbeat, connection.timeout / 3)
        follower = Database(couchdb, db).follow(
            since=since,
            include_docs=include_docs,
            doc_ids=list(doc_ids) if doc_ids else None,
            heartbeat=heartbeat,
        )
        output = JsonOutput()
        async with follower:
            async for batch in follower.batches():
                for event in batch:
                    output.line(event.json)
                output.flush()

    connection.run(followed if follow else once)


def _row_of(event: BaseChangeEvent) -> JsonDict:
    """The row of the changes feed that an event stands for."""
    return event.json
