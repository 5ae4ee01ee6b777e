"""Cookie sessions managed by the caller: who the client is, logging in and out.

``couchdb.session()`` asks the server who the client's requests authenticate as
(``GET /_session``). ``couchdb.login(name, password)`` logs a user in (``POST
/_session``) and hands back the ``AuthSession`` cookie, for a caller that manages
sessions itself (``CouchDB(url, cookie=login.cookie)``, or a browser); it does not
change how the client itself authenticates, which :mod:`aiocouch.auth` decides
(:class:`~aiocouch.auth.SessionAuth` logs in and renews its session by itself).
``couchdb.logout()`` sends ``DELETE /_session``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._answers import is_strings
from .auth import _auth_session_cookie
from .typing import JsonDict

__all__ = ["Login", "SessionInfo"]


@dataclass(frozen=True)
class SessionInfo:
    """Who the requests of a client authenticate as: the answer to ``GET /_session``."""

    name: str | None
    """The user's name; None for an anonymous client."""
    roles: list[str]
    """The user's roles; a server admin has ``"_admin"``."""
    authenticated: str | None
    """How the server authenticated the request (``"default"`` for basic authentication,
    ``"cookie"``, ``"jwt"``, ``"proxy"``); None for an anonymous client."""
    authentication_handlers: list[str]
    """The ways of authenticating the server accepts."""
    json: JsonDict = field(repr=False)
    """The whole answer, as the server sent it."""

    @property
    def is_admin(self) -> bool:
        """True for a server admin."""
        return "_admin" in self.roles

    @classmethod
    def from_answer(cls, answer: JsonDict) -> SessionInfo:
        """The session an answer of ``GET /_session`` describes; ValueError if it is none."""
        user = answer.get("userCtx")
        info = answer.get("info") or {}
        if not isinstance(user, dict) or not isinstance(info, dict):
            raise ValueError("expected a JSON object with 'userCtx' and 'info' objects")
        name, roles = user.get("name"), user.get("roles")
        if not (name is None or isinstance(name, str)) or not is_strings(roles):
            raise ValueError("expected 'userCtx' with a 'name' (string or null) and 'roles'")
        handlers = info.get("authentication_handlers", [])
        authenticated = info.get("authenticated")
        if not is_strings(handlers) or not (
            authenticated is None or isinstance(authenticated, str)
        ):
            raise ValueError("expected 'info' with a list 'authentication_handlers'")
        return cls(name, list(roles), authenticated, list(handlers), answer)


@dataclass(frozen=True)
class Login:
    """A session the server opened: the answer to ``POST /_session`` and its cookie.

    ``repr`` leaves the cookie out: it is a credential.
    """

    name: str
    """The name of the user logged in."""
    roles: list[str]
    """The user's roles."""
    cookie: str = field(repr=False)
    """The value of the ``AuthSession`` cookie: ``CouchDB(url, cookie=login.cookie)``
    authenticates with it until it expires (CouchDB renews it in the answers it sends
    while it is used; a client with a fixed cookie does not take the renewed ones)."""
    lifetime: float | None
    """Seconds until the cookie expires, as its ``Max-Age`` or ``Expires`` says (CouchDB:
    ``[chttpd_auth] timeout``, 600 by default); None if it says nothing."""

    @classmethod
    def from_answer(cls, answer: JsonDict, set_cookies: list[str], date: str | None) -> Login:
        """The login an answer of ``POST /_session`` reports; ValueError if its body or
        its ``Set-Cookie`` headers (with the answer's ``Date``) carry no session."""
        name, roles = answer.get("name"), answer.get("roles")
        if not isinstance(name, str) or not is_strings(roles):
            raise ValueError("expected a JSON object with a string 'name' and a list 'roles'")
        for set_cookie in set_cookies:
            parsed = _auth_session_cookie(set_cookie, date)
            if parsed is not None and parsed[0]:
                return cls(name, list(roles), parsed[0], parsed[1])
        raise ValueError("the login was accepted but no AuthSession cookie was sent")
