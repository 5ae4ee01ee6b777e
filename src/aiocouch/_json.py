"""The JSON codec: orjson where it is installed, the standard library otherwise."""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["dumps", "dumps_canonical", "has_long_number", "loads", "loads_unchecked"]


def _stdlib_dumps(value: Any, *, sort_keys: bool) -> bytes:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    ).encode()


# The largest integer orjson decodes exactly, 2**64 - 1, has 20 digits. A number starts
# after ":", "," or "[" (and blanks); mapping those to ":" and digits to "0" lets two
# substring searches find a long number, while long digit runs inside strings (such as
# revision hashes, which follow a letter, a digit or "-") rarely match.
_NUMBER_CONTEXT = "123456789,[ \t\r\n"
_NUMBER_CONTEXT_AS = "000000000::::::"
_DIGITS_AS_ZERO_STR = str.maketrans(_NUMBER_CONTEXT, _NUMBER_CONTEXT_AS)
_DIGITS_AS_ZERO_BYTES = bytes.maketrans(_NUMBER_CONTEXT.encode(), _NUMBER_CONTEXT_AS.encode())
_LONG_NUMBER = ":" + "0" * 20
_LONG_NEGATIVE_NUMBER = ":-" + "0" * 20


def has_long_number(text: bytes | str) -> bool:
    """True if ``text`` may hold an integer of 20 or more digits."""
    if isinstance(text, str):
        mapped = text.translate(_DIGITS_AS_ZERO_STR)
        return _LONG_NUMBER in mapped or _LONG_NEGATIVE_NUMBER in mapped
    mapped_bytes = text.translate(_DIGITS_AS_ZERO_BYTES)
    return _LONG_NUMBER.encode() in mapped_bytes or _LONG_NEGATIVE_NUMBER.encode() in mapped_bytes


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

    _OPTIONS = orjson.OPT_NON_STR_KEYS

    def dumps(value: Any) -> bytes:
        """Encodes ``value`` as compact UTF-8 JSON."""
        try:
            return orjson.dumps(value, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # integers beyond 64 bits and other values only the standard library encodes
            return _stdlib_dumps(value, sort_keys=False)

    def dumps_canonical(value: Any) -> bytes:
        """Encodes ``value`` with sorted keys: equal data gives equal bytes."""
        try:
            return orjson.dumps(value, option=_OPTIONS | orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return _stdlib_dumps(value, sort_keys=True)

except ImportError:  # pragma: no cover - exercised only where orjson has no wheel
    loads = json.loads
    loads_unchecked = json.loads

    def dumps(value: Any) -> bytes:
        """Encodes ``value`` as compact UTF-8 JSON."""
        return _stdlib_dumps(value, sort_keys=False)

    def dumps_canonical(value: Any) -> bytes:
        """Encodes ``value`` with sorted keys: equal data gives equal bytes."""
        return _stdlib_dumps(value, sort_keys=True)
