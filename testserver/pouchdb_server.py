"""Throwaway CouchDB-compatible servers for the test suite, the demo and the benchmarks.

The servers themselves are :mod:`aiocouch.testing.servers` (shipped with the package, for
the pytest plugin of its users); this module re-exports them, with this directory's
pouchdb-server (npm package ``pouchdb-server`` 4.2.0, installed with
``cd testserver && npm ci``) as the default program.

When the environment variable ``COUCHDB_URL`` is set, :func:`server_from_environment` uses
that server instead (credentials from ``COUCHDB_USER`` / ``COUCHDB_PASSWORD``) and starts
nothing.

Beware, pouchdb-server 4.2.0 *exits* on two kinds of request (see
``shared/couchdb/DIFF.md``): a ``_changes`` filter other than ``_doc_ids``, and
``PUT /{db}`` by a non-admin. Never send those to it.

Run ``python -m testserver.pouchdb_server`` to start a server by hand; it prints the URL and
the credentials and runs until interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from aiocouch.testing import servers
from aiocouch.testing.servers import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CouchServer,
    ExternalCouchServer,
    ServerStartError,
    external_server_from_environment,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "POUCHDB_SERVER_BIN",
    "CouchServer",
    "ExternalCouchServer",
    "LocalCouchServer",
    "ServerStartError",
    "external_server_from_environment",
    "server_from_environment",
]

#: The executable installed by ``npm ci`` in this directory.
POUCHDB_SERVER_BIN = Path(__file__).resolve().parent / "node_modules" / ".bin" / "pouchdb-server"


class LocalCouchServer(servers.LocalCouchServer):
    """:class:`aiocouch.testing.LocalCouchServer` running this directory's pouchdb-server."""

    def __init__(
        self, *args: Any, executable: str | os.PathLike[str] = POUCHDB_SERVER_BIN, **kwargs: Any
    ) -> None:
        super().__init__(*args, executable=executable, **kwargs)


@contextlib.contextmanager
def server_from_environment(**kwargs: Any) -> Iterator[CouchServer]:
    """Yield the server from ``COUCHDB_URL`` if set, else a fresh :class:`LocalCouchServer`.

    ``kwargs`` are passed to :class:`LocalCouchServer` (and ignored for an external server).
    """
    kwargs.setdefault("executable", POUCHDB_SERVER_BIN)
    with servers.server_from_environment(**kwargs) as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    """Command line: start a server, print how to reach it, run until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m testserver.pouchdb_server",
        description="Run a throwaway pouchdb-server with an admin account until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--user", default=DEFAULT_USER, help="admin name (default: %(default)s)")
    parser.add_argument(
        "--password", default=DEFAULT_PASSWORD, help="admin password (default: %(default)s)"
    )
    parser.add_argument(
        "--in-memory", action="store_true", help="keep databases in memory, not in leveldb"
    )
    args = parser.parse_args(argv)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    server = LocalCouchServer(args.user, args.password, port=args.port, in_memory=args.in_memory)
    try:
        server.start()
    except ServerStartError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        print(f"pouchdb-server is running at {server.url}", flush=True)
        print(f"  admin: {server.user} / {server.password}", flush=True)
        print(f"  data:  {server.workdir}", flush=True)
        print("To run the tests against it:", flush=True)
        print(
            f"  export COUCHDB_URL={server.url} COUCHDB_USER={server.user} "
            f"COUCHDB_PASSWORD={server.password}",
            flush=True,
        )
        print("Press Ctrl-C to stop.", flush=True)
        while server.running:
            time.sleep(0.5)
        print("pouchdb-server exited unexpectedly:", file=sys.stderr)
        print(server.output(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
