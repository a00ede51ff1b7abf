"""Snapshots of user values, taken on the traced thread, and their JSON form.

``snapshot`` copies containers of JSON-like values so later mutation by the program does not
change the trace, converts dataclasses and pydantic models to dicts, and keeps anything else
by its ``repr``. It never raises. ``to_json`` runs later, off the hot path, in the exporter.
"""

from __future__ import annotations

TYPE_CHECKING = False  # json/dataclasses/typing are imported lazily: SDK import time matters
if TYPE_CHECKING:
    from typing import Any

_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAX_DEPTH = 40
_MAX_REPR = 100_000
_encoder: Any = None


def snapshot(value: Any, _depth: int = 0) -> Any:
    """A deep copy of ``value`` made of JSON-like containers and scalars.

    Non-JSON leaves become their ``repr``; dict keys are kept as they are (``to_json``
    turns them into strings). Containers are copied in C and only non-scalar members are
    visited, because comprehensions are slow on the hot path.
    """
    t = type(value)
    if t in _SCALARS:
        return value
    if _depth > _MAX_DEPTH:
        return _safe_repr(value)
    if t is dict:
        out = value.copy()
        for k, v in out.items():
            if type(v) not in _SCALARS:
                out[k] = snapshot(v, _depth + 1)  # replacing a value keeps the size: safe
        return out
    if t is list or t is tuple:
        items = list(value)
        for i, v in enumerate(items):
            if type(v) not in _SCALARS:
                items[i] = snapshot(v, _depth + 1)
        return items
    return _snapshot_other(value, _depth)


def _snapshot_other(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        return {k: snapshot(v, depth + 1) for k, v in list(value.items())}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [snapshot(v, depth + 1) for v in list(value)]
    if isinstance(value, (str, int, float, bool)):  # subclasses such as enums of str
        return snapshot(_plain_scalar(value), depth)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        try:
            return snapshot(model_dump(), depth + 1)
        except Exception:
            return _safe_repr(value)
    fields = getattr(type(value), "__dataclass_fields__", None)
    if fields is not None and not isinstance(value, type):
        try:
            return {name: snapshot(getattr(value, name), depth + 1) for name in fields}
        except Exception:
            return _safe_repr(value)
    return _safe_repr(value)


def _plain_scalar(value: Any) -> Any:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            try:
                return base(value)
            except Exception:
                return _safe_repr(value)
    return _safe_repr(value)


def _jsonable(value: Any, depth: int) -> Any:
    """Slow path of ``to_json``: string keys, reprs for what JSON cannot hold."""
    if type(value) is float and (value != value or value in (float("inf"), float("-inf"))):
        return repr(value)  # NaN/Infinity are not JSON (PostgreSQL's jsonb rejects them)
    if type(value) in _SCALARS:
        return value
    if depth > _MAX_DEPTH:
        return _safe_repr(value)
    if isinstance(value, dict):
        return {_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    return _safe_repr(value)


def _key(key: Any) -> str:
    """Dict keys become strings, as JSON requires."""
    if isinstance(key, (str, int, float, bool)) or key is None:
        return str(key)
    return _safe_repr(key)


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        return f"<unrepresentable {type(value).__qualname__}: {type(exc).__name__}>"
    if len(text) > _MAX_REPR:
        return text[:_MAX_REPR] + f"... <{len(text) - _MAX_REPR} more characters>"
    return text


def to_json(value: Any, max_chars: int) -> str:
    """Compact JSON text of a snapshot; past ``max_chars`` a truncation marker is stored."""
    import json

    global _encoder
    if _encoder is None:  # one encoder: json.dumps with options builds a new one per call
        _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(
            _jsonable(value, 0), ensure_ascii=False, separators=(",", ":"), default=_safe_repr
        )
    if len(text) <= max_chars:
        return text
    return json.dumps(
        {
            "threadline.truncated": True,
            "original_chars": len(text),
            "preview": text[: max(0, max_chars - 200)],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
