"""The ``aiocouch`` command: its global options and its commands.

Each command lives in a small module of this package; this one gathers them into the
click group :func:`cli`, the console script's entry point.
"""

from __future__ import annotations

import click

from .. import __version__
from ._connection import Connection
from ._errors import exit_codes_help
from ._output import show_library_messages
from .backup_commands import backup, restore
from .changes_command import changes
from .database_commands import db, dbs, info
from .document_commands import find, get, put, view
from .replicate_command import replicate


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=exit_codes_help())
@click.version_option(__version__, prog_name="aiocouch")
@click.option(
    "--url",
    metavar="URL",
    help="The server, e.g. http://localhost:5984 (may hold user:password@). "
    "Default: $COUCHDB_URL, else http://localhost:5984.",
)
@click.option("--user", "-u", metavar="NAME", help="The user name. Default: $COUCHDB_USER.")
@click.option(
    "--password",
    "ask_password",
    is_flag=True,
    help="Ask for the password (not echoed). Default: $COUCHDB_PASSWORD, or asked when "
    "a user has none and stdin is a terminal.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output, only errors.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up when the server takes longer to connect, or is silent longer, "
    "than this. Default: 30 s to connect, 120 s of silence.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    user: str | None,
    ask_password: bool,
    quiet: bool,
    timeout: float | None,
) -> None:
    """Work with an Apache CouchDB server from the shell: databases, documents, queries,
    changes, replication, backup and restore.

    Output is JSON (one value per line for lists), ready for jq; progress and errors go
    to stderr. Credentials come from the URL, $COUCHDB_USER and $COUCHDB_PASSWORD, or a
    prompt, and never show in any output.
    """
    show_library_messages(quiet)
    ctx.obj = Connection.from_options(url, user, ask_password, quiet, timeout)


for command in (info, dbs, db, get, put, find, view, changes, replicate, backup, restore):
    cli.add_command(command)
