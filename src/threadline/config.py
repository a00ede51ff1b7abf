"""``threadline.config``: how traces are exported (synchronously or in the background)."""

from __future__ import annotations

from threadline.tracing._runtime import get_pipeline


def enable_async_logging(enable: bool = True) -> None:
    """Export traces in the background: ending a trace no longer waits for the store.

    ``threadline.flush_trace_async_logging()`` waits for what is pending; reads in this
    process flush first, and pending traces are written at interpreter exit.
    """
    get_pipeline().set_async(bool(enable))


def disable_async_logging() -> None:
    """Export synchronously again: a trace is durable when its root span returns."""
    get_pipeline().set_async(False)


def is_async_logging_enabled() -> bool:
    return get_pipeline().async_mode


__all__ = ["disable_async_logging", "enable_async_logging", "is_async_logging_enabled"]
