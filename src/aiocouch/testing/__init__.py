"""Helpers for testing code that uses aiocouch: throwaway servers and a pytest plugin.

The pytest plugin (:mod:`aiocouch.testing.pytest_plugin`) is registered through the
``pytest11`` entry point and gives tests a ``couchdb`` client and a fresh ``database``;
:mod:`aiocouch.testing.servers` starts a private pouchdb-server, or names the server of
``COUCHDB_URL``.
"""

from .servers import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CouchServer,
    ExternalCouchServer,
    LocalCouchServer,
    ServerStartError,
    external_server_from_environment,
    server_from_environment,
)

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "CouchServer",
    "ExternalCouchServer",
    "LocalCouchServer",
    "ServerStartError",
    "external_server_from_environment",
    "server_from_environment",
]
