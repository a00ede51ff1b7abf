"""Tracing must never break the traced program: internal errors are logged, not raised.

Each kind of failure is logged once per interval, so a broken exporter cannot flood the
log. Under threadline's own test suite (``raise_internal_errors(True)``) they re-raise so
that bugs fail tests instead of hiding.
"""

from __future__ import annotations

import _thread
import time

TYPE_CHECKING = False  # typing and logging are imported only when needed: import time matters
WARNING = 30  # logging.WARNING, without importing logging at import time

_LOG_INTERVAL_S = 60.0
_last_logged: dict[str, float] = {}
_counts: dict[str, int] = {}
_lock = _thread.allocate_lock()
_raise_internal = False


def raise_internal_errors(enabled: bool) -> None:
    """Make internal tracing errors raise (for tests of threadline itself)."""
    global _raise_internal
    _raise_internal = enabled


def should_raise() -> bool:
    return _raise_internal


def log_once(
    kind: str, message: str, exc: BaseException | None = None, level: int = WARNING
) -> None:
    """Log ``message`` at most once per interval for ``kind``; count every occurrence."""
    now = time.monotonic()
    with _lock:
        _counts[kind] = _counts.get(kind, 0) + 1
        last = _last_logged.get(kind)
        if last is not None and now - last < _LOG_INTERVAL_S:
            return
        _last_logged[kind] = now
        repeated = _counts[kind]
    suffix = f" (seen {repeated} times)" if repeated > 1 else ""
    import logging

    logging.getLogger("threadline").log(level, "%s%s", message, suffix, exc_info=exc)


def internal_error(kind: str, exc: BaseException) -> None:
    """Report an internal failure of tracing; re-raises only under threadline's test suite."""
    log_once(
        kind,
        f"threadline: tracing failed ({kind}): {type(exc).__name__}: {exc}. "
        "Your code still ran normally; this trace may be incomplete.",
        exc,
    )
    if _raise_internal:
        raise exc


def error_counts() -> dict[str, int]:
    """How many times each kind of internal error happened in this process."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    with _lock:
        _last_logged.clear()
        _counts.clear()
