"""Authentication strategies for ``CouchDB(url, auth=...)``: cookie session, JWT, proxy.

``auth=`` takes one of the classes below, or an :class:`aiohttp.BasicAuth` (as aiocouch
4.0.1 did; ``CouchDB(url, user, password)`` is the same basic authentication).

Basic authentication, a fixed JWT and proxy headers are the same on every request: the
transport sends them as fixed headers, at no cost per request. A cookie session
(:class:`SessionAuth`) and a token provider (:class:`JWTAuth` with a callable) add their
header to each request and renew it; when the server answers 401 they renew once and the
request is sent once more (a 401 means the server did not apply it, so repeating it is safe
whatever the method). A second 401 is raised to the caller: nothing here ever loops.

Passwords, cookies, tokens and secrets never appear in a ``repr``, a log record or an
exception; log records (logger ``aiocouch.auth``, level DEBUG) name the server and the user.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Callable, Protocol, Union

from .exception import InvalidResponseError, UnauthorizedError

if TYPE_CHECKING:
    from ._transport import RawResponse

__all__ = ["Authentication", "JWTAuth", "ProxyAuth", "SessionAuth", "TokenProvider"]

logger = logging.getLogger(__name__)

TokenProvider = Callable[[], Union[Awaitable[str], str]]
"""A callable that returns a fresh JWT (usually ``async def``)."""

_RENEW_FRACTION = 0.1
"""A session is renewed when less than this part of its lifetime is left..."""
_RENEW_MARGIN = 2.0
"""...or less than this many seconds (at most half the lifetime): CouchDB counts a session
from the whole second it was issued, so it may end up to a second before its Max-Age."""
# Visible ASCII except space, DQUOTE, comma, semicolon and backslash (RFC 6265 cookie-octet).
_COOKIE_VALUE = re.compile(r"[!#-+\--:<-\[\]-~]*\Z")
_TOKEN = re.compile(r"[!-~]+\Z")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class SendWithoutAuth(Protocol):
    """Sends one request without the strategy's credentials (used for the login)."""

    def __call__(
        self, method: str, path: str, *, json: Any, subject: str
    ) -> Awaitable[RawResponse]: ...


class Authentication:
    """Base of the strategies that ``CouchDB(auth=...)`` takes besides aiohttp.BasicAuth.

    The client calls the underscore methods; they are not meant to be called by users.
    """

    def _fixed_headers(self) -> Mapping[str, str] | None:
        """The headers every request carries unchanged, or None when they change."""
        return None

    def _bind(self, server: str) -> None:
        """Called once by each client that uses this strategy, with its server's URL."""

    async def _headers(self, send: SendWithoutAuth) -> Mapping[str, str]:
        """The headers of the next request (logs in or fetches a token first if needed)."""
        raise NotImplementedError

    async def _renew(self, send: SendWithoutAuth, sent: Mapping[str, str]) -> bool:
        """After a 401 to a request sent with ``sent``: True if it may be sent once more."""
        return False

    def _observe(self, headers: Any) -> None:
        """Looks at the headers of every answer (a refreshed session cookie)."""


class SessionAuth(Authentication):
    """Cookie authentication: logs in once with ``POST /_session``, then sends the cookie.

    The login happens on the first request, not at construction. CouchDB refreshes the
    ``AuthSession`` cookie in the ``Set-Cookie`` of later answers; the newest one is sent.
    When the cookie says when it expires (``Max-Age`` or ``Expires``, which CouchDB sends
    unless ``[chttpd_auth] allow_persistent_cookies`` is false), the session is renewed
    before then: when less than a tenth of its lifetime, or less than 2 s, is left. An
    expired cookie is not refused by CouchDB but treated as anonymous, so this matters.
    On a 401 the client logs in again and repeats the request once. Requests that need a
    login at the same time wait for one login, not one each.

    A refused login raises :class:`~aiocouch.UnauthorizedError` naming the user; later
    requests raise it again without sending anything, so a wrong password can never lock
    the account (CouchDB locks it after 5 failed logins). Build a new client after fixing
    the password. Several clients of one server may share a ``SessionAuth`` (and its
    session); clients of different servers may not (the cookie would go to both).
    """

    def __init__(self, user: str, password: str) -> None:
        """``user`` and ``password``: the account's name and password (non-empty)."""
        _check_text("The user name", user)
        if not isinstance(password, str) or not password:
            raise ValueError("SessionAuth needs a non-empty password (a str)")
        self.user = user
        self._password = password
        self._server: str | None = None
        self._cookie: Mapping[str, str] | None = None
        self._renew_at: float | None = None
        self._lock: asyncio.Lock | None = None
        self._refusal: UnauthorizedError | None = None
        self._observed: str | None = None
        """The last ``Set-Cookie`` read from an answer (a server may repeat it each time)."""

    def __repr__(self) -> str:
        return f"SessionAuth(user={self.user!r})"

    def _bind(self, server: str) -> None:
        if self._server is not None and self._server != server:
            raise ValueError(
                f"This SessionAuth already holds the session of {self._server}; "
                f"give the client of {server} its own"
            )
        self._server = server

    async def _headers(self, send: SendWithoutAuth) -> Mapping[str, str]:
        cookie = self._cookie
        if cookie is None or self._expiring():
            cookie = await self._login(send, stale=cookie)
        return cookie

    async def _renew(self, send: SendWithoutAuth, sent: Mapping[str, str]) -> bool:
        logger.debug("%s answered 401 to the session of %r", self._server, self.user)
        await self._login(send, stale=sent)
        return True

    def _observe(self, headers: Any) -> None:
        if headers is None or "Set-Cookie" not in headers:
            return
        for set_cookie in headers.getall("Set-Cookie"):
            if set_cookie == self._observed:
                continue  # taken already; its Max-Age counts from its first arrival
            self._observed = set_cookie
            parsed = _auth_session_cookie(set_cookie, headers.get("Date"))
            if parsed is not None and self._take(*parsed):
                logger.debug("%s refreshed the session of %r", self._server, self.user)

    def _expiring(self) -> bool:
        return self._renew_at is not None and time.monotonic() >= self._renew_at

    def _take(self, value: str, lifetime: float | None) -> bool:
        """Keeps the cookie ``value`` (an empty one, or no lifetime left, ends the session).

        Returns True if the cookie sent from now on is a new one.
        """
        if not value or (lifetime is not None and lifetime <= 0):
            self._cookie = self._renew_at = None
            return False
        cookie = f"AuthSession={value}"
        # The same value keeps its mapping: a request sent with it is not "stale".
        changed = self._cookie is None or self._cookie["Cookie"] != cookie
        if changed:
            self._cookie = {"Cookie": cookie}
        if lifetime is None:
            self._renew_at = None
        else:
            margin = max(lifetime * _RENEW_FRACTION, min(_RENEW_MARGIN, lifetime / 2))
            self._renew_at = time.monotonic() + lifetime - margin
        return changed

    async def _login(
        self, send: SendWithoutAuth, *, stale: Mapping[str, str] | None
    ) -> Mapping[str, str]:
        """``POST /_session`` unless another request renewed the ``stale`` cookie meanwhile."""
        if self._lock is None:
            # Created here, in the running loop (Python 3.9 binds a lock to a loop).
            self._lock = asyncio.Lock()
        async with self._lock:
            current = self._cookie
            if current is not None and current is not stale and not self._expiring():
                return current
            if self._refusal is not None:
                raise self._refused_again()
            logger.debug("Logging in to %s as %r", self._server, self.user)
            try:
                response = await send(
                    "POST",
                    "/_session",
                    json={"name": self.user, "password": self._password},
                    subject=f"the login as '{self.user}'",
                )
            except UnauthorizedError as exc:
                refused: UnauthorizedError | None = exc
            else:
                refused = None
            if refused is not None:
                self._cookie = self._renew_at = None
                self._refusal = self._refused(refused)
                logger.debug("%s refused the login as %r", self._server, self.user)
                raise self._refused_again()
            # A new session: a Set-Cookie read before it (one that ended the old session,
            # say) counts again if an answer repeats it.
            self._observed = None
            for set_cookie in response.headers.getall("Set-Cookie", ()):
                parsed = _auth_session_cookie(set_cookie, response.headers.get("Date"))
                if parsed is not None:
                    self._take(*parsed)
            if self._cookie is None:
                raise InvalidResponseError(
                    f"{self._server} accepted the login as '{self.user}' but sent no "
                    "AuthSession cookie",
                    status=response.status,
                )
            return self._cookie

    def _refused(self, exc: UnauthorizedError) -> UnauthorizedError:
        return UnauthorizedError(
            f"Login as '{self.user}' refused by {self._server}: {exc.reason or exc.error}",
            reason=exc.reason,
            error=exc.error,
            status=401,
            request_info=exc.request_info,
        )

    def _refused_again(self) -> UnauthorizedError:
        # A new instance each time: one raised repeatedly would collect every traceback.
        refusal = self._refusal
        assert refusal is not None
        return UnauthorizedError(
            str(refusal),
            reason=refusal.reason,
            error=refusal.error,
            status=401,
            request_info=refusal.request_info,
        )


class JWTAuth(Authentication):
    """JSON Web Token authentication: ``Authorization: Bearer <token>`` on every request.

    ``token`` is the token itself, or a callable (usually ``async def``) that returns a
    fresh one. The callable is called before the first request and again when the server
    answers 401 (once: concurrent 401s wait for the same call); the request is then sent
    once more with the new token. A fixed token is never renewed: a 401 is raised. The
    server needs ``{chttpd_auth, jwt_authentication_handler}`` in ``[chttpd]
    authentication_handlers`` and the signing key in ``[jwt_keys]``.
    """

    def __init__(self, token: str | TokenProvider) -> None:
        self._provider: TokenProvider | None = None
        self._header: Mapping[str, str] | None = None
        self._lock: asyncio.Lock | None = None
        if isinstance(token, str):
            self._header = _bearer(token)
        elif callable(token):
            self._provider = token
        else:
            raise TypeError(
                f"JWTAuth takes a token (str) or a callable returning one, "
                f"not {type(token).__name__}"
            )

    def __repr__(self) -> str:
        if self._provider is None:
            return "JWTAuth(token=<hidden>)"
        name = getattr(self._provider, "__qualname__", type(self._provider).__name__)
        return f"JWTAuth(token={name})"

    def _fixed_headers(self) -> Mapping[str, str] | None:
        return self._header if self._provider is None else None

    async def _headers(self, send: SendWithoutAuth) -> Mapping[str, str]:
        header = self._header
        if header is None:
            header = await self._fetch(stale=None)
        return header

    async def _renew(self, send: SendWithoutAuth, sent: Mapping[str, str]) -> bool:
        if self._provider is None:
            return False
        return await self._fetch(stale=sent) != sent

    async def _fetch(self, *, stale: Mapping[str, str] | None) -> Mapping[str, str]:
        """Calls the provider unless another request replaced the ``stale`` token meanwhile."""
        assert self._provider is not None
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            current = self._header
            if current is not None and current is not stale:
                return current
            logger.debug("Fetching a token from %s", repr(self))
            token = self._provider()
            if inspect.isawaitable(token):
                token = await token
            self._header = _bearer(token)
            return self._header


class ProxyAuth(Authentication):
    """Proxy authentication: the user and roles in ``X-Auth-CouchDB-*`` headers.

    For servers behind a proxy that authenticates users itself. ``roles`` (default none)
    go comma-separated in ``X-Auth-CouchDB-Roles``. ``X-Auth-CouchDB-Token`` is ``token``
    if given, or computed from the server's ``secret`` (``[chttpd_auth] secret``) as the
    hex HMAC-SHA1 of the user name, as CouchDB checks it when ``[chttpd_auth]
    proxy_use_secret`` is true; give neither when the server does not check it. The server
    needs ``{chttpd_auth, proxy_authentication_handler}`` in ``[chttpd]
    authentication_handlers``.
    """

    def __init__(
        self,
        user: str,
        roles: Iterable[str] = (),
        *,
        token: str | None = None,
        secret: str | None = None,
    ) -> None:
        _check_text("The user name", user)
        if isinstance(roles, str):
            raise TypeError("ProxyAuth takes a list of roles, not a str")
        self.user = user
        self.roles = list(roles)
        for role in self.roles:
            _check_text("A role", role)
            if "," in role:
                raise ValueError(f"A role cannot contain a comma: {role!r}")
        if token is not None and secret is not None:
            raise ValueError("ProxyAuth takes token= or secret=, not both")
        self._headers_sent = {"X-Auth-CouchDB-UserName": user}
        if self.roles:
            self._headers_sent["X-Auth-CouchDB-Roles"] = ",".join(self.roles)
        if secret is not None:
            if not isinstance(secret, str) or not secret:
                raise ValueError("ProxyAuth needs a non-empty secret (a str)")
            token = hmac.new(secret.encode(), user.encode(), hashlib.sha1).hexdigest()
        if token is not None:
            if not isinstance(token, str) or not _TOKEN.match(token):
                raise ValueError("The proxy token must be a non-empty str of visible ASCII")
            self._headers_sent["X-Auth-CouchDB-Token"] = token
        self._token_kind = "secret" if secret is not None else "token" if token else None

    def __repr__(self) -> str:
        hidden = f", {self._token_kind}=<hidden>" if self._token_kind else ""
        return f"ProxyAuth(user={self.user!r}, roles={self.roles!r}{hidden})"

    def _fixed_headers(self) -> Mapping[str, str] | None:
        return self._headers_sent


def _check_text(what: str, value: object) -> None:
    """Refuses what cannot travel in a header as given (before any request)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value or value != value.strip() or _CONTROL_CHARACTERS.search(value):
        raise ValueError(
            f"{what} must be non-empty, without control characters or surrounding "
            f"whitespace: {value!r}"
        )


def _bearer(token: object) -> dict[str, str]:
    if not isinstance(token, str) or not _TOKEN.match(token):
        # The token itself is never shown: it is a credential.
        raise ValueError("A JWT must be a non-empty str of visible ASCII characters")
    return {"Authorization": f"Bearer {token}"}


def _auth_session_cookie(set_cookie: str, date: str | None) -> tuple[str, float | None] | None:
    """The value and lifetime (seconds, None if unsaid) of an ``AuthSession`` Set-Cookie."""
    name, _, rest = set_cookie.partition("=")
    if name.strip() != "AuthSession":
        return None
    value, *attributes = rest.split(";")
    value = value.strip()
    if not _COOKIE_VALUE.match(value):
        return None
    max_age: float | None = None
    expires: str | None = None
    for attribute in attributes:
        key, _, argument = attribute.partition("=")
        key = key.strip().lower()
        if key == "max-age":
            try:
                max_age = float(int(argument.strip()))
            except ValueError:
                continue
        elif key == "expires":
            expires = argument.strip()
    # RFC 6265: Max-Age wins over Expires (CouchDB sends both: the dates are not parsed then).
    if max_age is not None or expires is None:
        return value, max_age
    return value, _seconds_until(expires, date)


def _seconds_until(expires: str, date: str | None) -> float | None:
    """Seconds from the answer's ``Date`` (or now) to ``expires``; None if unreadable."""
    try:
        end = parsedate_to_datetime(expires).timestamp()
        start = parsedate_to_datetime(date).timestamp() if date else time.time()
    except (TypeError, ValueError, IndexError):
        return None
    return end - start
