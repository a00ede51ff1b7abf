"""JSON parsing with orjson when it is installed (the ``server`` extra brings it), else the
standard library, with the same result either way.

orjson is several times faster on stored span data. It rejects some of what it would read
differently from ``json.loads`` (NaN and Infinity, escaped lone surrogates), and those
texts go to ``json.loads``; integers beyond 64 bits it would read as floats, so text with
a run of 19 digits goes there too. Not imported by ``import threadline``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the test environment has orjson
    _orjson = None  # type: ignore[assignment]

__all__ = ["HAVE_ORJSON", "dumps_bytes", "finite_strings", "loads", "stored_value"]

HAVE_ORJSON = _orjson is not None
_LONG_DIGITS_BYTES = re.compile(rb"[0-9]{19}")  # see the module docstring
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``, faster; raises ``ValueError`` for text that is not JSON."""
    if isinstance(text, bytes):
        long_digits = _LONG_DIGITS_BYTES.search(text) is not None
    else:
        long_digits = _LONG_DIGITS_TEXT.search(text) is not None
    if _orjson is not None and not long_digits:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass  # maybe JSON that only the standard parser reads (NaN, huge integers …)
    return json.loads(text)


def dumps_bytes(value: Any) -> bytes | None:
    """Compact UTF-8 JSON of ``value`` made of JSON types with string keys and finite
    floats (orjson writes NaN as null), or ``None`` when orjson is missing or refuses it
    (lone surrogates, integers beyond 64 bits, other key types): the caller falls back."""
    if _orjson is None:
        return None
    try:
        return _orjson.dumps(value)
    except (TypeError, _orjson.JSONEncodeError):
        return None


def stored_value(text: str) -> Any:
    """A stored payload's text back to its value: JSON parsed, any other text as it is.

    Non-finite floats come back as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
    (as the API shows them: they are not JSON, though some producers write them).
    """
    constant = _CONSTANTS.get(text)
    if constant is not None:
        return constant()
    try:
        value = loads(text)
    except (ValueError, RecursionError):
        return text
    if "NaN" in text or "Infinity" in text:
        return finite_strings(value)
    return value


# The commonest stored texts, without the parser (each call makes a fresh container).
_CONSTANTS: dict[str, Callable[[], Any]] = {"null": lambda: None, "[]": list, "{}": dict}


def finite_strings(value: Any) -> Any:
    """``value`` with non-finite floats as ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON
    has no such numbers; the store and the API show them as these strings)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_strings(v) for v in value]
    return value
