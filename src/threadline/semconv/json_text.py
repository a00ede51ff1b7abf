"""JSON text of span payloads: compact encoding, parsing with a nesting bound, and
``bounded_json`` (a payload nested too deeply to read back is kept as a JSON string).

Shared by the OTLP ingest and the server's trace API, which return stored payload text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from threadline import _json as fast_json

MAX_JSON_DEPTH = 64  # deeper payloads are stored as text (the SDK itself stops at 40)
JSON_MIME = "application/json"

INVALID: Any = object()  # what ``json_value`` returns for text that is not usable JSON


def json_value(text: str) -> Any:
    """The parsed value, or ``INVALID`` (not JSON, or nested deeper than ``MAX_JSON_DEPTH``)."""
    try:
        value = fast_json.loads(text)
    except (ValueError, RecursionError):
        return INVALID
    return value if _shallow(text, value) else INVALID


def is_json(text: str) -> bool:
    """Whether ``text`` is JSON nested at most ``MAX_JSON_DEPTH`` deep (``json_value``
    without keeping the value)."""
    try:
        value = fast_json.loads_for_check(text)
    except (ValueError, RecursionError):
        return False
    return _shallow(text, value)


def looks_like_json(text: str) -> bool:
    """Whether ``text`` starts like a JSON object or array (worth trying to parse)."""
    return text.lstrip()[:1] in ("{", "[")


def _shallow(text: str, value: Any) -> bool:
    """Whether ``value``, parsed from ``text``, nests at most ``MAX_JSON_DEPTH`` deep."""
    return _few_brackets(text) or depth(value) <= MAX_JSON_DEPTH


def _few_brackets(text: str) -> bool:
    """Too few brackets in ``text`` to nest deeper than ``MAX_JSON_DEPTH``: no walk needed."""
    return text.count("[") + text.count("{") <= MAX_JSON_DEPTH


def json_dict(value: Any) -> dict[str, str]:
    """A JSON object given as text, with its values as text (non-strings as JSON)."""
    parsed = json_value(value) if isinstance(value, str) else None
    if not isinstance(parsed, dict):
        return {}
    return {str(k): v if isinstance(v, str) else dumps(v) for k, v in parsed.items()}


def stored_text(value: Any) -> str:
    """Payload text as stored: a string attribute as it is (bounded), anything else null."""
    return bounded_json(value) if isinstance(value, str) else "null"


def bounded_json(text: str) -> str:
    """``text`` unless it is JSON nested deeper than ``MAX_JSON_DEPTH``: then a JSON string of it.

    Reading such a payload back would exhaust the stack; as a string it stays readable.
    """
    if _few_brackets(text):
        return text
    try:
        value = json.loads(text)
    except RecursionError:
        return dumps(text)
    except ValueError:
        return text  # not JSON: the store keeps and returns it as text
    return text if depth(value) <= MAX_JSON_DEPTH else dumps(text)


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: never recurses)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


# One encoder: ``json.dumps`` with options builds a new one on every call.
_standard_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (non-ASCII kept, ``repr`` of anything else).

    orjson writes it several times faster, but writes NaN and Infinity as ``null``: output
    with a ``null`` in it (rare in span data) is written again by the standard encoder,
    which keeps them. Both read back to the same values.
    """
    data = fast_json.dumps_bytes(value)
    if data is None or b"null" in data:
        return _standard_dumps(value)
    return data.decode()
