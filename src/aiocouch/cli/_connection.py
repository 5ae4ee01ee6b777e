"""Where the command finds its server and credentials, and the client it makes of them.

The server: ``--url``, else ``COUCHDB_URL``, else http://localhost:5984. The name: the
URL's, else ``--user``, else ``COUCHDB_USER``. The password: the URL's, else
``COUCHDB_PASSWORD``, else a prompt (with ``--password``, or when a name has no password
and stdin is a terminal) that does not echo. Credentials are taken out of the URL before
it is used or shown, and masked in every message.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import click

from ..couchdb import CouchDB
from ._errors import INTERRUPTED, CommandError, ExitCode, basic_tokens, reported_errors

DEFAULT_URL = "http://localhost:5984"

_T = TypeVar("_T")


@dataclass
class Connection:
    """The server, credentials and limits given on the command line and in the environment.

    ``connection.run(work)`` prompts for a missing password if needed, opens a client,
    awaits ``work(client)``, closes the client, and turns failures into messages and
    exit codes (:mod:`aiocouch.cli._errors`).
    """

    url: str
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ask_password: bool = False
    quiet: bool = False
    timeout: float | None = None

    @classmethod
    def from_options(
        cls,
        url: str | None,
        user: str | None,
        ask_password: bool,
        quiet: bool,
        timeout: float | None,
    ) -> Connection:
        """Combines the global options with the environment (no prompt, no request)."""
        given = url or os.environ.get("COUCHDB_URL", "").strip() or DEFAULT_URL
        with reported_errors():
            bare, url_user, url_password = split_credentials(given)
        return cls(
            url=bare,
            user=url_user or user or os.environ.get("COUCHDB_USER") or None,
            # --password asks even where the URL or the environment holds one
            password=None
            if ask_password
            else url_password or os.environ.get("COUCHDB_PASSWORD") or None,
            ask_password=ask_password,
            quiet=quiet,
            timeout=timeout,
        )

    @property
    def secrets(self) -> list[str]:
        """What no output may show."""
        if not self.password:
            return []
        return [self.password, *basic_tokens(self.user, self.password)]

    def client_timeout(self) -> aiohttp.ClientTimeout | None:
        """``--timeout`` as the client's limits: to connect, and of silence (no total, so
        that long streams such as a followed changes feed go on)."""
        if self.timeout is None:
            return None
        return aiohttp.ClientTimeout(
            total=None, connect=self.timeout, sock_connect=self.timeout, sock_read=self.timeout
        )

    def run(
        self,
        work: Callable[[CouchDB], Awaitable[_T]],
        *,
        secrets: Collection[str] = (),
        interrupted: str = INTERRUPTED,
    ) -> _T:
        """Awaits ``work`` with a client of this server; exits with a message on failure.

        ``secrets``: more text no message may show (the passwords of other servers).
        ``interrupted``: the message on Ctrl-C (work that resumes says how).
        """
        self._complete_password()
        with reported_errors([*self.secrets, *secrets], interrupted=interrupted):
            return asyncio.run(self._with_client(work))

    async def _with_client(self, work: Callable[[CouchDB], Awaitable[_T]]) -> _T:
        async with CouchDB(
            self.url, user=self.user, password=self.password, timeout=self.client_timeout()
        ) as couchdb:
            return await work(couchdb)

    def _complete_password(self) -> None:
        if self.password:
            return
        if self.ask_password or (self.user and _is_terminal()):
            if not self.user:
                self.user = click.prompt("User name", err=True)
            self.password = click.prompt(
                f"Password for {self.user}",
                hide_input=True,
                err=True,
                default="",
                show_default=False,
            )
        elif self.user:
            raise CommandError(
                f"no password for user '{self.user}': set COUCHDB_PASSWORD or use --password",
                ExitCode.INVALID_INPUT,
            )


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user info, and the name and password it held (decoded).

    Raises ValueError (without the URL, which may hold a password) when it is no
    http(s) URL with a host.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the server URL must look like http://host:5984 or https://host")
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    host = parts.netloc.rpartition("@")[2]
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare.rstrip("/"), user, password


def _is_terminal() -> bool:
    return sys.stdin.isatty()
