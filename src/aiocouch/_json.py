"""The JSON codec: orjson where it is installed, the standard library otherwise."""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = [
    "dumps",
    "dumps_canonical",
    "dumps_each",
    "dumps_each_canonical",
    "has_long_number",
    "loads",
    "loads_unchecked",
    "may_be_inexact",
]


def _stdlib_dumps(value: Any, *, sort_keys: bool) -> bytes:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    ).encode()


# orjson decodes integers from -2**63 to 2**64 - 1 exactly and any other as a float: a
# positive one of 20 or more digits, a negative one of 19 or more. A number starts after
# ":", "," or "[" (and blanks); mapping those and "-" to ":" and digits to "0" lets one
# substring search find any such number, while long digit runs inside strings (such as
# revision hashes, which follow a letter or a digit) rarely match. A match is looked at
# again without mapping "-": most 19-digit positive numbers are no match then.
_NUMBER_CONTEXT = "123456789,[ \t\r\n"
_NUMBER_CONTEXT_AS = "000000000::::::"
_CANDIDATE_STR = str.maketrans(_NUMBER_CONTEXT + "-", _NUMBER_CONTEXT_AS + ":")
_CANDIDATE_BYTES = bytes.maketrans(
    _NUMBER_CONTEXT.encode() + b"-", _NUMBER_CONTEXT_AS.encode() + b":"
)
_EXACT_STR = str.maketrans(_NUMBER_CONTEXT, _NUMBER_CONTEXT_AS)
_CANDIDATE = ":" + "0" * 19
_LONG_NUMBERS = (":" + "0" * 20, ":-" + "0" * 19)
_CANDIDATE_AS_BYTES = _CANDIDATE.encode()


def has_long_number(text: bytes | str) -> bool:
    """True if ``text`` may hold an integer beyond orjson's 64 bits."""
    if isinstance(text, bytes):
        mapped_bytes = text.translate(_CANDIDATE_BYTES)
        at = mapped_bytes.find(_CANDIDATE_AS_BYTES)
        # Each candidate is looked at again in the few bytes around it, not the whole
        # text: one in a large answer is common (a revision "1-" followed by 19 decimal
        # digits of its hash: one in 40,000), and decoding all of it cost more than orjson.
        while at >= 0:
            if has_long_number(text[max(at - 1, 0) : at + 21].decode(errors="replace")):
                return True
            at = mapped_bytes.find(_CANDIDATE_AS_BYTES, at + 1)
        return False
    if _CANDIDATE not in text.translate(_CANDIDATE_STR):
        return False
    mapped = text.translate(_EXACT_STR)
    return any(number in mapped for number in _LONG_NUMBERS)


loads: Callable[[bytes | str], Any]

try:
    import orjson

    loads_unchecked: Callable[[bytes | str], Any] = orjson.loads
    """Decodes text that :func:`has_long_number` found free of integers beyond 64 bits."""

    def loads(text: bytes | str) -> Any:
        """Decodes one JSON document from bytes or str; big integers stay exact."""
        if has_long_number(text):
            # orjson turns integers beyond 64 bits into floats; the standard library not.
            return json.loads(text)
        return orjson.loads(text)

    # orjson writes a float from 1e16 up with an exponent ("1e+19"), so that the float an
    # integer beyond 64 bits became (2**63 and more) holds a "+", which a search for one
    # byte finds fast (a "+" in a string only costs the exact decoding); checked here for
    # the orjson installed (without it, every decoding counts as possibly inexact).
    _LARGE_FLOAT_MARK = (
        b"+"
        if all(
            b"e+" in orjson.dumps(x) for x in (2.0**63, -(2.0**63), 2.0**64, 1.7976931348623157e308)
        )
        else b""
    )

    def may_be_inexact(encoded: bytes) -> bool:
        """Whether ``encoded``, the :func:`dumps` of a value :func:`loads_unchecked` decoded
        from a text not checked by :func:`has_long_number`, may hold a float that was an
        integer beyond 64 bits in the text (a value without one decoded exactly)."""
        return _LARGE_FLOAT_MARK in encoded

    _OPTIONS = orjson.OPT_NON_STR_KEYS
    # A raw control character never occurs in orjson's output (it escapes them in strings,
    # and compact JSON has no blanks), so a Fragment of them marks the end of one value
    # (a run of eight: bytes.split finds it a little faster than a single byte).
    _FRAGMENT = getattr(orjson, "Fragment", None)  # (older releases of orjson lack it)
    _MARK = b"\x1f" * 8
    _SEPARATOR = b"," + _MARK + b","

    def dumps(value: Any) -> bytes:
        """Encodes ``value`` as compact UTF-8 JSON."""
        try:
            # (without OPT_NON_STR_KEYS first: it costs orjson half as much again)
            return orjson.dumps(value)
        except orjson.JSONEncodeError:
            return _dumps_beyond(value)

    def _dumps_beyond(value: Any) -> bytes:
        """:func:`dumps` of a value with keys that are no str, or integers beyond 64 bits."""
        try:
            return orjson.dumps(value, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # integers beyond 64 bits and other values only the standard library encodes
            return _stdlib_dumps(value, sort_keys=False)

    def dumps_each(values: list[Any]) -> list[bytes]:
        """Encodes each of ``values`` as :func:`dumps` does.

        One call of orjson encodes them all, with a mark between them that its output
        cannot hold otherwise, and the result is split there: a call per value costs
        orjson several times more.
        """
        return _encode_each(values, 0, dumps)

    def dumps_each_canonical(values: list[Any]) -> list[bytes]:
        """Encodes each of ``values`` as :func:`dumps_canonical` does, in one call of
        orjson as :func:`dumps_each`."""
        return _encode_each(values, _OPTIONS | orjson.OPT_SORT_KEYS, dumps_canonical)

    def _encode_each(values: list[Any], option: int, one: Callable[[Any], bytes]) -> list[bytes]:
        """Each of ``values`` encoded by one ``orjson.dumps`` with ``option``, split at
        the marks between them; ``one`` encodes each where that cannot."""
        if len(values) < 2 or _FRAGMENT is None:
            return [one(value) for value in values]
        mixed = [_FRAGMENT(_MARK)] * (2 * len(values) - 1)
        mixed[::2] = values
        try:
            encoded = orjson.dumps(mixed, option=option)
        except orjson.JSONEncodeError:
            return [one(value) for value in values]
        pieces = encoded.split(_SEPARATOR)
        if len(pieces) != len(values):
            return [one(value) for value in values]  # (a value holding a Fragment)
        pieces[0] = pieces[0][1:]  # (the opening "[" of the array)
        pieces[-1] = pieces[-1][:-1]
        return pieces

    def dumps_canonical(value: Any) -> bytes:
        """Encodes ``value`` with sorted keys: equal data gives equal bytes."""
        try:
            return orjson.dumps(value, option=_OPTIONS | orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return _stdlib_dumps(value, sort_keys=True)

except ImportError:  # pragma: no cover - exercised only where orjson has no wheel
    loads = json.loads
    loads_unchecked = json.loads

    def may_be_inexact(encoded: bytes) -> bool:
        """Whether ``encoded`` may hold a number :func:`loads_unchecked` decoded inexactly:
        never, the standard library's decoder keeps every integer."""
        return False

    def dumps(value: Any) -> bytes:
        """Encodes ``value`` as compact UTF-8 JSON."""
        return _stdlib_dumps(value, sort_keys=False)

    def dumps_each(values: list[Any]) -> list[bytes]:
        """Encodes each of ``values`` as :func:`dumps` does."""
        return [_stdlib_dumps(value, sort_keys=False) for value in values]

    def dumps_each_canonical(values: list[Any]) -> list[bytes]:
        """Encodes each of ``values`` as :func:`dumps_canonical` does."""
        return [_stdlib_dumps(value, sort_keys=True) for value in values]

    def dumps_canonical(value: Any) -> bytes:
        """Encodes ``value`` with sorted keys: equal data gives equal bytes."""
        return _stdlib_dumps(value, sort_keys=True)
