"""Errors a framework reports on a span as text, recorded as threadline records exceptions."""

from __future__ import annotations

import sys
from typing import Any

from threadline.entities.span import SpanEvent

__all__ = ["error_event", "handled_exception"]


def handled_exception(*texts: Any) -> BaseException | None:
    """The exception being handled right now whose text is one of ``texts``, looked for
    along its cause and context chain; None when there is none.

    A framework that reports an error only as text (``span.error``) ends its span while
    the exception propagates; matching the text keeps an unrelated exception that the
    caller happens to be handling from being recorded instead.
    """
    exc = sys.exc_info()[1]
    wanted = {t for t in texts if isinstance(t, str) and t}
    seen = 0
    while exc is not None and seen < 8:
        if str(exc) in wanted:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def error_event(kind: str, message: str) -> SpanEvent:
    """An ``exception`` event for an error the framework reported without an exception."""
    return SpanEvent(
        name="exception",
        attributes={"exception.type": kind, "exception.message": message},
    )
