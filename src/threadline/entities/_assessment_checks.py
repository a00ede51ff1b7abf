"""Pure checks of what an assessment holds: text that every store keeps, JSON values of
bounded size and depth. Each failure is an ``InvalidArgumentError`` naming the field."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from threadline.errors import InvalidArgumentError

MAX_NAME_CHARS = 250  # an assessment's name, a source id, an error code
MAX_TEXT_CHARS = 100_000  # a rationale, an error message or stack trace
MAX_VALUE_CHARS = 1_000_000  # a value as JSON text
MAX_METADATA_CHARS = 100_000  # the metadata as JSON text
MAX_DEPTH = 20  # nesting of lists and dicts in a value or the metadata
MAX_ID_CHARS = 256  # trace, span, run and assessment ids
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    return _UNSTORABLE.sub("\ufffd", text)


def check_text(value: Any, what: str, limit: int, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a string, got {type(value).__name__}.")
    if not empty and not value.strip():
        raise InvalidArgumentError(f"{what} must not be empty.")
    if len(value) > limit:
        raise InvalidArgumentError(f"{what} has {len(value)} characters; at most {limit} are kept.")
    if _UNSTORABLE.search(value):
        raise InvalidArgumentError(
            f"{what} contains a NUL character or an unpaired surrogate, which no store keeps."
        )
    return value


def check_short_text(value: Any, what: str) -> str:
    return check_text(value, what, MAX_NAME_CHARS, empty=False)


def check_value(value: Any, what: str) -> Any:
    """``value`` as JSON keeps it (tuples become lists), or an error naming ``what``."""
    checked = _json_value(value, what, 0)
    size = len(dumps(checked))
    if size > MAX_VALUE_CHARS:
        raise InvalidArgumentError(
            f"{what} is {size} characters as JSON; at most {MAX_VALUE_CHARS} are kept."
        )
    return checked


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(
            f"metadata must be a dict of JSON values, got {type(metadata).__name__}."
        )
    checked = _json_value(metadata, "metadata", 0)
    size = len(dumps(checked))
    if size > MAX_METADATA_CHARS:
        raise InvalidArgumentError(
            f"metadata is {size} characters as JSON; at most {MAX_METADATA_CHARS} are kept."
        )
    return dict(checked)


def _json_value(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidArgumentError(f"{where} is nested more than {MAX_DEPTH} levels deep.")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise InvalidArgumentError(f"{where} is a number too large to store.") from None
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{where} is {value!r}; numbers must be finite.")
        return float(value)
    if isinstance(value, str):
        return check_text(value, where, MAX_VALUE_CHARS)
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(
                    f"{where} has the key {key!r:.40}: keys of a dict must be strings."
                )
            check_text(key, f"a key of {where}", MAX_NAME_CHARS)
            out[key] = _json_value(item, f"{where}[{key!r:.40}]", depth + 1)
        return out
    raise InvalidArgumentError(
        f"{where} must be a bool, a number, a string, or a list or dict of those; "
        f"got {type(value).__name__}."
    )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
