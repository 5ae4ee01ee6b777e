"""The JSON codec: orjson where it is installed, the standard library otherwise."""

from __future__ import annotations

import json
from typing import Any, Callable

__all__ = ["dumps", "dumps_canonical", "loads"]


def _stdlib_dumps(value: Any, *, sort_keys: bool) -> bytes:
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
    ).encode()


_DIGITS_AS_ZERO_BYTES = bytes.maketrans(b"123456789", b"000000000")
_DIGITS_AS_ZERO_STR = str.maketrans("123456789", "000000000")
# The largest integer orjson decodes exactly, 2**64 - 1, has 20 digits.
_LONG_DIGIT_RUN = 20


def _has_long_digit_run(text: bytes | str) -> bool:
    """True if ``text`` has a run of 20 digits: maybe an integer beyond 64 bits."""
    if isinstance(text, str):
        return "0" * _LONG_DIGIT_RUN in text.translate(_DIGITS_AS_ZERO_STR)
    return b"0" * _LONG_DIGIT_RUN in text.translate(_DIGITS_AS_ZERO_BYTES)


loads: Callable[[bytes | str], Any]

try:
    import orjson

    def loads(text: bytes | str) -> Any:
        """Decodes one JSON document from bytes or str; big integers stay exact."""
        if _has_long_digit_run(text):
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

    def dumps(value: Any) -> bytes:
        """Encodes ``value`` as compact UTF-8 JSON."""
        return _stdlib_dumps(value, sort_keys=False)

    def dumps_canonical(value: Any) -> bytes:
        """Encodes ``value`` with sorted keys: equal data gives equal bytes."""
        return _stdlib_dumps(value, sort_keys=True)
