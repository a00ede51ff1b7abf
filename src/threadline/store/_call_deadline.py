"""A per-thread deadline for network calls made on behalf of a traced call.

The export pipeline writes on the traced program's thread in synchronous mode (and before
a read); those writes must end within a few seconds whatever the server does. The
pipeline sets a deadline for the thread (``within``); the HTTP clients (the tracking
server's, the OTLP exporter's) shorten their socket timeouts to the time left and refuse to
start a request once it has passed. Without a deadline a call keeps its own timeout.
"""

from __future__ import annotations

import threading
import time

_local = threading.local()


class DeadlinePassed(TimeoutError):
    """No time was left for the call: it was not sent (retried later in the background)."""


class within:
    """``with within(deadline):`` network calls on this thread end by ``deadline``
    (a ``time.monotonic()`` value; ``None``: no deadline). Nested deadlines keep the earlier."""

    __slots__ = ("_deadline", "_previous")

    def __init__(self, deadline: float | None) -> None:
        self._deadline = deadline
        self._previous: float | None = None

    def __enter__(self) -> None:
        previous = getattr(_local, "deadline", None)
        self._previous = previous
        deadline = self._deadline
        if previous is not None and (deadline is None or previous < deadline):
            deadline = previous
        _local.deadline = deadline

    def __exit__(self, *exc: object) -> None:
        _local.deadline = self._previous


def timeout_for(default: float) -> float:
    """The socket timeout for a call starting now: ``default``, or the time left before this
    thread's deadline if that is shorter. Raises ``DeadlinePassed`` when none is left."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return default
    left = deadline - time.monotonic()
    if left <= 0.0:
        raise DeadlinePassed("the time allowed for tracing on this thread has passed")
    return min(default, left)
