"""User accounts: the documents ``org.couchdb.user:{name}`` of the ``_users`` database.

CouchDB hashes a password when the document is written (``derived_key``, ``salt``), so a
password is only ever sent, never read back. Per-database access (members and admins) is
the database's :class:`~aiocouch.SecurityDocument`.

Passwords never appear in a ``repr``, a log record or an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ._secret_values import secrets_hidden
from .database import Database
from .document import Document
from .exception import ConflictError
from .typing import JsonDict

if TYPE_CHECKING:
    from .couchdb import CouchDB

__all__ = ["User", "Users"]

USER_ID_PREFIX = "org.couchdb.user:"
_UPDATE_ATTEMPTS = 5
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_RESERVED_FIELDS = frozenset({"_id", "_rev", "name", "password", "roles", "type"})
_PASSWORD_FIELDS = frozenset(
    {"password", "password_scheme", "pbkdf2_prf", "iterations", "derived_key", "salt"}
)


@dataclass(frozen=True)
class User:
    """A user account as the server holds it (never with a password).

    ``data`` is the whole ``_users`` document: besides ``name``, ``roles`` and ``type``
    it holds the password's hash (``derived_key``, ``salt``, ``iterations``), which its
    ``repr`` does not show.
    """

    name: str
    roles: list[str]
    rev: str | None
    data: JsonDict = field(repr=False, compare=False)

    @classmethod
    def _from_document(cls, data: JsonDict) -> User:
        """The user of ``data``; if it holds a password just written, without it and
        without the hash of the password it replaced."""
        hidden = _PASSWORD_FIELDS if "password" in data else {"password"}
        shown = {key: value for key, value in data.items() if key not in hidden}
        roles = shown.get("roles")
        return cls(
            name=str(shown.get("name")),
            roles=list(roles) if isinstance(roles, list) else [],
            rev=shown.get("_rev") if isinstance(shown.get("_rev"), str) else None,
            data=shown,
        )


class Users:
    """The user accounts of a server, in its ``_users`` database (or ``database``).

    Obtained as :attr:`CouchDB.users <aiocouch.CouchDB.users>`; sends no request until a
    method is called. Every method needs admin rights (CouchDB's ``_users`` database
    is admin-only).
    """

    def __init__(self, couchdb: CouchDB, *, database: str = "_users") -> None:
        self._database = Database(couchdb, database)

    def __repr__(self) -> str:
        return f"<Users in {self._database.id!r}>"

    async def create(
        self, name: str, password: str, *, roles: Iterable[str] = (), **fields: Any
    ) -> User:
        """Creates the user ``name``: PUT /_users/org.couchdb.user:{name}.

        ``roles`` are the user's roles; other ``fields`` (JSON values) are stored in the
        document as given. Raises ValueError or TypeError for an invalid name, password,
        role or field (before any request), ConflictError if the user exists (also when
        the answer to an earlier attempt of this call was lost: CouchDB stores the
        password's hash, so the document cannot be compared with what was sent).
        """
        data: JsonDict = {"name": _check_name(name), "roles": _check_roles(roles), "type": "user"}
        reserved = _RESERVED_FIELDS.intersection(fields)
        if reserved:
            raise ValueError(f"Not a field to set here: {', '.join(sorted(reserved))}")
        data.update(fields)
        data["password"] = _check_password(password)
        document = Document(self._database, USER_ID_PREFIX + name, data=data)
        with secrets_hidden([password]):
            await document.save()
        return User._from_document(document._data)

    async def get(self, name: str) -> User:
        """The user ``name``: GET /_users/org.couchdb.user:{name}.

        Raises NotFoundError if there is no such user.
        """
        document = await self._database.get(USER_ID_PREFIX + _check_name(name))
        return User._from_document(document._data)

    async def set_password(self, name: str, password: str) -> User:
        """Changes the password of ``name``: GET, then PUT /_users/org.couchdb.user:{name}
        (both again if the document changed in between).

        Raises ValueError or TypeError for an invalid name or password (before any
        request), NotFoundError if there is no such user.
        """
        _check_name(name)
        _check_password(password)

        def set_it(data: JsonDict) -> None:
            data["password"] = password

        with secrets_hidden([password]):
            return await self._update(name, set_it)

    async def set_roles(self, name: str, roles: Iterable[str]) -> User:
        """Replaces the roles of ``name``: GET, then PUT /_users/org.couchdb.user:{name}
        (both again if the document changed in between).

        Raises ValueError or TypeError for an invalid name or role (before any request),
        NotFoundError if there is no such user.
        """
        _check_name(name)
        checked = _check_roles(roles)

        def set_them(data: JsonDict) -> None:
            data["roles"] = checked

        return await self._update(name, set_them)

    async def delete(self, name: str) -> None:
        """Deletes the user ``name``: GET, then DELETE
        /_users/org.couchdb.user:{name}?rev= (both again if it changed in between).

        Raises NotFoundError if there is no such user.
        """
        _check_name(name)
        for attempt in range(_UPDATE_ATTEMPTS):
            document = await self._database.get(USER_ID_PREFIX + name)
            try:
                await document.delete()
            except ConflictError:
                if attempt + 1 == _UPDATE_ATTEMPTS:
                    raise
                continue
            return

    async def _update(self, name: str, change: Callable[[JsonDict], None]) -> User:
        """Fetches the user's document, applies ``change`` and saves it (bounded retries
        on a conflict)."""
        for attempt in range(_UPDATE_ATTEMPTS):
            document = await self._database.get(USER_ID_PREFIX + name)
            change(document._data)
            try:
                await document.save()
            except ConflictError:
                if attempt + 1 == _UPDATE_ATTEMPTS:
                    raise
                continue
            return User._from_document(document._data)
        raise AssertionError("unreachable")  # pragma: no cover


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"A user name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("A user name must not be empty")
    if name.startswith("_"):
        raise ValueError(f"Invalid user name {name!r}: CouchDB refuses names starting with '_'")
    if _CONTROL_CHARACTERS.search(name):
        raise ValueError(f"Invalid user name {name!r}: it holds a control character")
    return name


def _check_password(password: str) -> str:
    if not isinstance(password, str):
        raise TypeError(f"A password must be a str, not {type(password).__name__}")
    if not password:
        raise ValueError("A password must not be empty")
    if _CONTROL_CHARACTERS.search(password):
        # Basic authentication sends it in a header, which cannot hold one.
        raise ValueError("A password must not contain control characters")
    return password


def _check_roles(roles: Iterable[str]) -> list[str]:
    if isinstance(roles, str):
        raise TypeError("roles must be an iterable of str, not a str")
    checked = list(roles)
    for role in checked:
        if not isinstance(role, str) or not role:
            raise TypeError(f"Each role must be a non-empty str, not {role!r}")
        if _CONTROL_CHARACTERS.search(role):
            raise ValueError(f"Invalid role {role!r}: it holds a control character")
    return checked
