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

__all__ = [
    "HAVE_FRAGMENTS",
    "HAVE_ORJSON",
    "dumps_bytes",
    "finite_strings",
    "has_non_finite",
    "loads",
    "stored_value",
    "verbatim",
    "verbatim_object",
]

HAVE_ORJSON = _orjson is not None
#: Whether ``verbatim`` works: orjson with ``Fragment`` (3.9.10 and later).
HAVE_FRAGMENTS = _orjson is not None and hasattr(_orjson, "Fragment")
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


def verbatim(text: str) -> Any:
    """``text`` as an ``orjson.Fragment`` (written by ``dumps_bytes`` as it is, unparsed),
    or ``None`` when it must be parsed instead (then use ``stored_value``).

    Only strict JSON is spliced (orjson's parser checks it; its result is discarded): such
    text reads back as ``stored_value(text)`` does, with integers beyond 64 bits exact as
    ``json.loads`` keeps them. NaN/Infinity, escaped lone surrogates, numbers out of range
    and non-JSON text give ``None``. Needs ``HAVE_FRAGMENTS``. Called for every payload of
    every span the API returns, hence the plain code.
    """
    fragment = _FRAGMENTS.get(text)
    if fragment is not None:
        return fragment
    try:
        _orjson.loads(text)
    except ValueError:  # orjson.JSONDecodeError, also for nesting too deep
        return None
    return _orjson.Fragment(text)


def verbatim_object(text: str) -> Any:
    """``verbatim(text)`` when ``text`` is a JSON object, else ``None``."""
    if text == "{}":
        return _FRAGMENTS[text]
    try:
        value = _orjson.loads(text)
    except ValueError:
        return None
    return _orjson.Fragment(text) if type(value) is dict else None


_FRAGMENTS: dict[str, Any] = (
    {text: _orjson.Fragment(text) for text in ("null", "[]", "{}")} if HAVE_FRAGMENTS else {}
)


def has_non_finite(value: Any) -> bool:
    """Whether ``value`` holds a float that ``finite_strings`` would turn into a string."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_non_finite(v) for v in value)
    return False


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


def loads_for_check(text: str | bytes) -> Any:
    """Parse ``text`` only to check it (is it JSON, is it an object): faster than ``loads``
    because it skips the scan for long digit runs, so an integer beyond 64 bits may come
    back as a float. Raises ``ValueError`` for text that is not JSON."""
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass  # maybe JSON that only the standard parser reads (NaN …)
    return json.loads(text)
