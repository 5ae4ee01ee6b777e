"""Commands about the server and its databases: ``info``, ``dbs``, ``db create|delete|info``."""

from __future__ import annotations

import click

from ..couchdb import CouchDB
from ..database import Database
from ._connection import Connection
from ._output import JsonOutput


@click.command()
@click.pass_obj
def info(connection: Connection) -> None:
    """The server's welcome: its version, vendor and features (GET /)."""

    async def work(couchdb: CouchDB) -> None:
        JsonOutput().value(await couchdb.info())

    connection.run(work)


@click.command()
@click.pass_obj
def dbs(connection: Connection) -> None:
    """The names of the databases, one JSON string a line (GET /_all_dbs)."""

    async def work(couchdb: CouchDB) -> None:
        output = JsonOutput()
        for name in await couchdb.keys():
            output.line(name)
        output.flush()

    connection.run(work)


@click.group()
def db() -> None:
    """Create, delete or describe one database."""


@db.command()
@click.argument("name")
@click.option("--partitioned", is_flag=True, help="Make a partitioned database.")
@click.option("--exists-ok", is_flag=True, help="Succeed if the database exists already.")
@click.pass_obj
def create(connection: Connection, name: str, partitioned: bool, exists_ok: bool) -> None:
    """Creates the database NAME (PUT /NAME)."""

    async def work(couchdb: CouchDB) -> None:
        params = {"partitioned": True} if partitioned else {}
        await couchdb.create(name, exists_ok=exists_ok, **params)
        JsonOutput().value({"ok": True, "db": name})

    connection.run(work)


@db.command()
@click.argument("name")
@click.pass_obj
def delete(connection: Connection, name: str) -> None:
    """Deletes the database NAME and all its documents (DELETE /NAME)."""

    async def work(couchdb: CouchDB) -> None:
        await Database(couchdb, name).delete()
        JsonOutput().value({"ok": True, "db": name})

    connection.run(work)


@db.command(name="info")
@click.argument("name")
@click.pass_obj
def db_info(connection: Connection, name: str) -> None:
    """The information of the database NAME: counts, sizes, update sequence (GET /NAME)."""

    async def work(couchdb: CouchDB) -> None:
        JsonOutput().value(await Database(couchdb, name).info())

    connection.run(work)
