"""Commands about documents: ``get``, ``put``, ``find`` and ``view``."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import click

from ..couchdb import CouchDB
from ..database import Database
from ..document import Document
from ..view_query import ViewQuery, ViewRow
from ._connection import Connection
from ._errors import CommandError, ExitCode
from ._input import fail_on_unknown, json_argument, json_object_from, view_options
from ._output import ClosableRows, JsonOutput

_VIEW_OPTIONS = {option.name for option in dataclasses.fields(ViewQuery)}
_DESIGN_PREFIX = "_design/"


@click.command()
@click.argument("db")
@click.argument("doc_id", metavar="ID")
@click.option("--rev", help="This revision instead of the winning one.")
@click.pass_obj
def get(connection: Connection, db: str, doc_id: str, rev: str | None) -> None:
    """Prints the document ID of DB (GET /DB/ID)."""

    async def work(couchdb: CouchDB) -> None:
        document = await Database(couchdb, db).get(doc_id, rev=rev)
        JsonOutput().value(_document_data(document))

    connection.run(work)


@click.command()
@click.argument("db")
@click.argument("doc_id", metavar="ID")
@click.argument("source", metavar="[FILE|-]", default="-")
@click.pass_obj
def put(connection: Connection, db: str, doc_id: str, source: str) -> None:
    """Writes the JSON object in FILE (default: stdin) as the document ID of DB (PUT /DB/ID).

    To update a document, the object must hold its current _rev (as `aiocouch get`
    prints it); without it, an existing document is a conflict.
    """
    body = json_object_from(source)
    if "_id" in body and body["_id"] != doc_id:
        raise CommandError(
            f"the document's _id {body['_id']!r} is not the ID {doc_id!r}", ExitCode.INVALID_INPUT
        )

    async def work(couchdb: CouchDB) -> None:
        document = Document(Database(couchdb, db), doc_id, data=body)
        await document.save()
        JsonOutput().value({"ok": True, "id": doc_id, "rev": document.rev})

    connection.run(work)


@click.command()
@click.argument("db")
@click.argument("selector")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many documents.")
@click.option("--sort", metavar="JSON", help='The sort order, e.g. \'[{"year": "desc"}]\'.')
@click.option("--use-index", metavar="DDOC", help="The index to use (its design document).")
@click.pass_obj
def find(
    connection: Connection,
    db: str,
    selector: str,
    limit: int | None,
    sort: str | None,
    use_index: str | None,
) -> None:
    """The documents of DB matching the Mango SELECTOR (JSON), one a line (POST /DB/_find).

    Example: aiocouch find mydb '{"type": "user", "age": {"$gt": 30}}'
    """
    query = json_argument("SELECTOR", selector)
    if not isinstance(query, dict):
        raise CommandError("SELECTOR must be a JSON object", ExitCode.INVALID_INPUT)
    params: dict[str, Any] = {}
    if sort is not None:
        params["sort"] = json_argument("--sort", sort)
    if use_index is not None:
        params["use_index"] = use_index

    async def work(couchdb: CouchDB) -> None:
        # (an async generator, typed as a plain AsyncIterator by the library)
        documents = Database(couchdb, db).find(query, limit=limit, **params)
        await JsonOutput().lines(cast(ClosableRows[Document], documents), _document_data)

    connection.run(work)


@click.command()
@click.argument("db")
@click.argument("ddoc")
@click.argument("view_name", metavar="VIEW")
@click.argument("options", metavar="[NAME=VALUE]...", nargs=-1)
@click.pass_obj
def view(
    connection: Connection, db: str, ddoc: str, view_name: str, options: tuple[str, ...]
) -> None:
    """The rows of the view VIEW of the design document DDOC, one a line
    (GET /DB/_design/DDOC/_view/VIEW).

    Options are NAME=VALUE, each VALUE JSON (else a string): limit=10, key='"a"',
    startkey='[2024]', include_docs=true, reduce=false, group_level=1, descending=true.
    """
    query = view_options(options)
    fail_on_unknown(query, _VIEW_OPTIONS)
    try:
        ViewQuery(**query)
    except (TypeError, ValueError) as error:
        raise CommandError(f"invalid view options: {error}", ExitCode.INVALID_INPUT) from None
    if ddoc.startswith(_DESIGN_PREFIX):
        ddoc = ddoc[len(_DESIGN_PREFIX) :]

    async def work(couchdb: CouchDB) -> None:
        # (an async generator, typed as a plain AsyncIterator by the library)
        rows = Database(couchdb, db).view(ddoc, view_name).query(**query).__aiter__()
        await JsonOutput().lines(cast(ClosableRows[ViewRow], rows), dict)

    connection.run(work)


def _document_data(document: Document) -> dict[str, Any]:
    """All of a document's fields, ``_id`` and ``_rev`` included."""
    return dict(document.items())
