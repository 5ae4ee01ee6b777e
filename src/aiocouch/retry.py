"""The retry policy: how often a call is sent, how long to wait between attempts, and which
failures a request may be repeated after without applying it twice.

A client repeats a call (``CouchDB(url, retry=RetryPolicy(...))``; on by default) when an
attempt failed in a way that may pass: an answer of 429, 502, 503 or 504, or a connection
that could not be opened, broke or went silent. Whether a request may be repeated after a
failure depends on what the failure proves and on what the request does:

- a **read** (GET, HEAD, ``_find``, ``_all_docs`` and view POSTs, ``_bulk_get``...) and an
  idempotent write (``_security``, ``_index``) may be repeated after any of them;
- a **checked write**, a PUT or DELETE of a named document or attachment, a ``_bulk_docs``
  whose documents all carry ``_id``, a POST of a document whose id the client made: its
  repeat cannot apply it twice, since the server refuses a second application with 409.
  When an earlier attempt may have been applied (:attr:`AttemptLog.uncertain`), the
  caller checks a 409 against the server's state (:mod:`._write_confirmation`);
- **any other request** (COPY, ``PUT /{db}``, ``_purge``, ``_replicate``...) is repeated
  only when it provably was not applied: no connection could be opened, so no byte of it
  was sent; or the server refused it (429, 503: RFC 9110 and RFC 6585 define both as
  "not handled"; CouchDB sends 503 when no node could serve the request, a proxy when no
  backend was available).

A 502 or 504 comes from a gateway that may have forwarded the request, so it proves
nothing: only reads and checked writes are repeated after one. A streamed call
(``docs()``, views, ``find()``, changes) is repeated only while it opens, before any byte
of its body was handed out.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp

from .exception import RemoteResponseError

__all__ = ["DEFAULT_RETRY", "NO_RETRY", "AttemptLog", "Repetition", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How a client repeats a call that failed in a way that may pass (see the module).

    The waits grow exponentially with full jitter: before repeat ``n`` (1 for the first)
    the client waits a random time between 0 and ``min(backoff_max, backoff * 2**(n-1))``
    seconds, or what the answer's ``Retry-After`` asks (seconds or an HTTP date), at most
    ``retry_after_max``. No wait and no attempt goes past the ``budget``: when the next
    wait would end after it, the last error is raised at once.
    """

    attempts: int = 5
    """The most times one call is sent, the first included (1: never repeated)."""
    backoff: float = 0.25
    """The longest first wait, in seconds; each further one may be twice as long."""
    backoff_max: float = 10.0
    """The longest wait between two attempts without ``Retry-After``, in seconds."""
    retry_after_max: float = 60.0
    """The longest wait a ``Retry-After`` header can ask for, in seconds."""
    budget: float | None = None
    """The longest a whole call may take, attempts and waits included, in seconds.

    None: the call's own ``total`` time limit (300 s by default, see ``timeout=``), so a
    call ends within the limit the caller gave for one response, repeats included. Each
    attempt's ``total`` limit shrinks to what is left of the budget; a call without a
    ``total`` limit (a stream, by default) keeps none, and the budget bounds only when
    its attempts may begin."""
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    """The answers that count as failures that may pass."""

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"attempts must be an int of at least 1, got {self.attempts!r}")
        for name in ("backoff", "backoff_max", "retry_after_max"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.budget is not None and not (
            isinstance(self.budget, (int, float)) and self.budget > 0
        ):
            raise ValueError(f"budget must be None or seconds > 0, got {self.budget!r}")
        object.__setattr__(self, "statuses", frozenset(self.statuses))

    def wait(self, repeat: int, error: BaseException) -> float:
        """Seconds to wait before repeat number ``repeat`` (1 for the first) after ``error``."""
        retry_after = _retry_after(error)
        if retry_after is not None:
            return min(retry_after, self.retry_after_max)
        return random.uniform(0.0, min(self.backoff_max, self.backoff * 2.0 ** (repeat - 1)))


DEFAULT_RETRY = RetryPolicy()
"""The policy of a client built without ``retry=``: up to 5 attempts within the time limit."""
NO_RETRY = RetryPolicy(attempts=1)
"""Every call is sent once (``retry=False``), as aiocouch 4.0.1 did."""


def policy_from(retry: RetryPolicy | bool) -> RetryPolicy:
    """The policy that ``CouchDB(..., retry=...)`` asks for: a policy, True or False."""
    if isinstance(retry, RetryPolicy):
        return retry
    if retry is True:
        return DEFAULT_RETRY
    if retry is False:
        return NO_RETRY
    raise TypeError(f"retry must be a RetryPolicy, True or False, not {type(retry).__name__}")


class Repetition(enum.Enum):
    """What repeating a request could do, and so after which failures it may be repeated."""

    SAFE = "safe"
    """Nothing: a read, or a write whose repeat leaves the same state (any failure)."""
    CHECKED = "checked"
    """A write the server refuses to apply twice (409); the caller checks such a 409."""
    IF_NOT_APPLIED = "if-not-applied"
    """Maybe a second effect: repeated only when the failure proves it was not applied."""


def default_repetition(method: str) -> Repetition:
    """GET and HEAD only read; any other request may write, until its site says otherwise."""
    return Repetition.SAFE if method in ("GET", "HEAD") else Repetition.IF_NOT_APPLIED


class AttemptLog:
    """What the attempts of one call left open; filled in by the client's retry loop."""

    __slots__ = ("uncertain",)

    def __init__(self) -> None:
        self.uncertain = False
        """True once an attempt failed after its request may have been applied."""


class _Failure(enum.Enum):
    NOT_SENT = "not sent"  # no connection: no byte of the request left the client
    REFUSED = "refused"  # 429: the server turned it away before handling it
    UNAVAILABLE = "unavailable"  # 503: not handled (a checked write still checks)
    UNANSWERED = "unanswered"  # the request may have been applied: the answer was lost


def judge(error: BaseException, repetition: Repetition, policy: RetryPolicy) -> tuple[bool, bool]:
    """``(repeat, uncertain)``: may the request be repeated after ``error``, and may the
    failed attempt have been applied?"""
    failure = _failure(error, policy)
    if failure is None:
        return False, False
    if failure is _Failure.NOT_SENT or failure is _Failure.REFUSED:
        return True, False
    # Checking costs nothing when nothing was applied, so a checked write treats a 503
    # as uncertain too, and never reports a conflict its own first attempt caused.
    uncertain = repetition is Repetition.CHECKED
    if failure is _Failure.UNAVAILABLE:
        return True, uncertain
    return repetition is not Repetition.IF_NOT_APPLIED, uncertain


def _failure(error: BaseException, policy: RetryPolicy) -> _Failure | None:
    if isinstance(error, aiohttp.ClientSSLError):
        return None  # a certificate or TLS set-up problem does not pass by waiting
    if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return _Failure.NOT_SENT
    if isinstance(error, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        return _Failure.UNANSWERED  # also a time limit, a reset, a body cut short
    if isinstance(error, RemoteResponseError) and error.status in policy.statuses:
        if error.status == 429:
            return _Failure.REFUSED
        return _Failure.UNAVAILABLE if error.status == 503 else _Failure.UNANSWERED
    return None


def _retry_after(error: BaseException) -> float | None:
    """The seconds an answer's ``Retry-After`` asks to wait, or None (absent or invalid)."""
    headers = getattr(error, "headers", None) if isinstance(error, RemoteResponseError) else None
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
