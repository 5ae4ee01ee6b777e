"""Sources and targets of a replication: what the request holds, and the secrets in it.

A source or target is a database name on the client's own server, a
:class:`~aiocouch.Database` (of any client), a URL, a :class:`ReplicationEndpoint`, or
CouchDB's endpoint object (a dict), see :mod:`aiocouch.replication`. Each becomes what the
body of ``POST /_replicate`` (or a ``_replicator`` document) holds, together with the
secret values in it, which no exception may show, and how it may be shown.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from yarl import URL

from . import _paths
from ._authenticated import AuthenticatedSender
from ._replication_status import display_url
from ._secret_values import basic_secrets
from ._transport import _basic_authorization, check_headers
from .auth import SessionAuth
from .database import Database
from .typing import JsonDict

if TYPE_CHECKING:
    from ._client import HTTPClient

__all__ = ["Endpoint", "ReplicationEndpoint", "replication_body"]

_PLAIN_CREDENTIAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_CREDENTIAL_HEADERS = ("authorization", "cookie", "x-auth-couchdb")
_SECRET_HEADERS = frozenset({"authorization", "cookie", "x-auth-couchdb-token"})
_RESERVED_OPTIONS = frozenset({"source", "target", "cancel", "replication_id", "_id", "_rev"})


class ReplicationEndpoint:
    """A database to replicate from or to, at ``url``, with the credentials the server
    uses for it: ``user`` and ``password`` (basic authentication, or in the URL) and/or
    other ``headers``. Sends no request.

    Raises ValueError for a URL that is not ``http(s)://host/...``, credentials given both
    in the URL and as ``user``/``password``, or a header that cannot be sent.
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parsed = _check_url(url)
        given = user is not None or password is not None
        if given and parsed.user is not None:
            raise ValueError("Give the credentials once: in the URL or as user and password")
        if given and not (isinstance(user, str) and isinstance(password, str) and password):
            raise ValueError("user and password go together: a str each, the password not empty")
        self._headers = dict(headers or {})
        check_headers(self._headers)
        self._user = user if given else parsed.user
        self._password = password if given else parsed.password
        self._url = parsed.with_user(None)

    @property
    def url(self) -> str:
        """The database's URL, without credentials."""
        return str(self._url)

    def __repr__(self) -> str:
        shown = " with credentials" if self._password or self._headers else ""
        return f"<ReplicationEndpoint {self.url}{shown}>"

    def _secrets(self) -> list[str]:
        found = basic_secrets(self._user or "", self._password or "")
        found += _header_secrets(self._headers)
        return found

    def _body(self) -> str | JsonDict:
        return _endpoint_body(self._url, self._user, self._password, self._headers)


Endpoint = Union[str, Database, ReplicationEndpoint, Mapping[str, Any]]
"""What a source or target can be (see the module's docstring)."""


def replication_body(
    http: HTTPClient,
    source: Endpoint,
    target: Endpoint,
    *,
    continuous: bool,
    create_target: bool,
    doc_ids: Sequence[str] | None,
    selector: JsonDict | None,
    filter: str | None,
    query_params: JsonDict | None,
    options: Mapping[str, Any],
) -> tuple[JsonDict, list[str], tuple[str | None, str | None]]:
    """The body of a replication from ``source`` to ``target`` (names on ``http``'s
    server), the secrets in it, and how source and target may be shown.

    Raises ValueError or TypeError for an endpoint or option that cannot be sent.
    """
    reserved = _RESERVED_OPTIONS.intersection(options)
    if reserved:
        raise ValueError(f"Not a replication option here: {', '.join(sorted(reserved))}")
    for name, flag in (("continuous", continuous), ("create_target", create_target)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, not {type(flag).__name__}")
    body: JsonDict = {}
    secrets: list[str] = []
    shown: list[str | None] = []
    for role, endpoint in (("source", source), ("target", target)):
        body[role], endpoint_secrets, display = _endpoint(http, role, endpoint)
        secrets += endpoint_secrets
        shown.append(display)
    if continuous:
        body["continuous"] = True
    if create_target:
        body["create_target"] = True
    if doc_ids is not None:
        if isinstance(doc_ids, str) or not all(isinstance(i, str) for i in doc_ids):
            raise TypeError("doc_ids must be a sequence of str")
        body["doc_ids"] = list(doc_ids)
    if selector is not None:
        if not isinstance(selector, dict):
            raise TypeError(f"selector must be a dict, not {type(selector).__name__}")
        body["selector"] = selector
    if filter is not None:
        if not isinstance(filter, str) or not filter:
            raise TypeError("filter must be a non-empty str ('ddoc/name')")
        body["filter"] = filter
    if query_params is not None:
        body["query_params"] = dict(query_params)
    body.update(options)
    return body, secrets, (shown[0], shown[1])


def _endpoint(http: HTTPClient, role: str, endpoint: Endpoint) -> tuple[Any, list[str], str | None]:
    """``(what the body holds, its secrets, how it may be shown)`` for one endpoint."""
    if isinstance(endpoint, ReplicationEndpoint):
        return endpoint._body(), endpoint._secrets(), endpoint.url
    if isinstance(endpoint, Database):
        return _database_endpoint(endpoint._remote._http, endpoint.endpoint)
    if isinstance(endpoint, str):
        if "://" in endpoint:
            url = _check_url(endpoint)
            secrets = basic_secrets(url.user or "", url.password or "")
            if url.raw_password:
                secrets.append(url.raw_password)
            return endpoint, secrets, display_url(endpoint)
        try:
            path = _paths.database_path(endpoint)
        except ValueError as exc:
            raise ValueError(f"Invalid replication {role}: {exc}") from None
        return _database_endpoint(http, path)
    if isinstance(endpoint, Mapping):
        if not isinstance(endpoint.get("url"), str):
            raise ValueError(f"The replication {role} object needs a 'url' (a str)")
        url = _check_url(endpoint["url"])
        secrets = basic_secrets(url.user or "", url.password or "")
        secrets += _nested_strings(endpoint.get("headers")) + _nested_strings(endpoint.get("auth"))
        return dict(endpoint), secrets, display_url(endpoint["url"])
    raise TypeError(
        f"A replication {role} is a database name, a Database, a URL, a "
        f"ReplicationEndpoint or an endpoint dict, not {type(endpoint).__name__}"
    )


def _check_url(url: str) -> URL:
    """``url`` parsed, if it is an ``http(s)`` URL with a host; else ValueError."""
    if not isinstance(url, str):
        raise TypeError(f"A replication URL must be a str, not {type(url).__name__}")
    if any(ord(character) <= 0x20 or character == "\x7f" for character in url):
        raise ValueError("A replication URL must not contain spaces or control characters")
    try:
        parsed = URL(url)
    except ValueError:
        raise ValueError("Invalid replication URL: it cannot be parsed") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"Invalid replication URL {display_url(url)!r}: it must be http(s)://host/db"
        )
    return parsed


def _database_endpoint(http: HTTPClient, path: str) -> tuple[Any, list[str], str]:
    """The endpoint of the database at ``path`` on ``http``'s server, with its credentials."""
    url = URL(http.base_url + path, encoded=True)
    user, password, headers = _client_credentials(http)
    secrets = basic_secrets(user or "", password or "") + _header_secrets(headers)
    return _endpoint_body(url, user, password, headers), secrets, str(url)


def _client_credentials(http: HTTPClient) -> tuple[str | None, str | None, dict[str, str]]:
    """What the client authenticates with: basic ``(user, password)`` and other headers.

    Raises ValueError for an authentication whose credentials change (a token provider):
    the server could not renew them for a replication.
    """
    sender = http._sender
    if isinstance(sender, AuthenticatedSender):
        auth = sender._auth
        if isinstance(auth, SessionAuth):
            return auth.user, auth._password, {}
        raise ValueError(
            f"A replication cannot use the client's {type(auth).__name__} credentials: give "
            "the source and target as URLs or ReplicationEndpoint objects with credentials"
        )
    headers = {
        name: value
        for name, value in http.transport._headers.items()
        if name.lower().startswith(_CREDENTIAL_HEADERS)
    }
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Basic "):
        del headers["Authorization"]
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return user, password, headers
    return None, None, headers


def _endpoint_body(
    url: URL, user: str | None, password: str | None, headers: Mapping[str, str]
) -> str | JsonDict:
    """A source or target as the request holds it.

    Basic credentials go into the URL (the form every server takes; pouchdb-server takes
    no other) when they need no percent-encoding; else, and with other credential
    headers, CouchDB's object form ``{"url", "headers"}``, since servers differ in how
    they decode percent-encoded credentials.
    """
    if not password and not headers:
        return str(url)
    if password and not headers and set(user or "") | set(password) <= _PLAIN_CREDENTIAL:
        return str(url.with_user(user).with_password(password))
    all_headers = dict(headers)
    if password:
        all_headers["Authorization"] = _basic_authorization(user or "", password)
    return {"url": str(url), "headers": all_headers}


def _header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The values of the credential headers among ``headers``, whole and their token."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS:
            found += [value, value.rpartition(" ")[2].rpartition("=")[2]]
    return found


def _nested_strings(value: Any) -> list[str]:
    """Every str inside ``value`` (headers or an ``auth`` object) but user names."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [
            text
            for key, item in value.items()
            if key not in ("username", "user", "name")
            for text in _nested_strings(item)
        ]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _nested_strings(item)]
    return []
