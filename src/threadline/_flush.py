"""Waiting for pending trace exports."""

from __future__ import annotations

from threadline import settings
from threadline.errors import InvalidArgumentError
from threadline.tracing._runtime import RT, get_pipeline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from threadline.export._pipeline import FlushReport


def flush_trace_async_logging(
    timeout: float | None = None, *, terminate: bool = False
) -> FlushReport:
    """Wait until every pending span and trace is delivered, and report what happened.

    While a destination is down (or refuses the token, or answers as something other
    than a threadline server) the export is retried with back-off; this returns once
    everything is delivered — including this process's batches in the on-disk spool — or
    after ``timeout`` seconds (default ``THREADLINE_ASYNC_TRACE_LOGGING_RETRY_TIMEOUT``).
    The report counts spans exported, retried, spooled, replayed and dropped, with the
    reasons, and what still waits (``pending_spans`` in memory, ``spool_pending_spans`` on
    disk). With ``terminate`` the export worker also stops after the wait, spooling what
    is still undelivered (a new worker starts with the next span).
    """
    if timeout is None:
        limit = settings.ASYNC_RETRY_TIMEOUT.get()
    elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise InvalidArgumentError(
            f"flush_trace_async_logging(timeout={timeout!r}): expected a number of seconds "
            "(0 or more) or None; pass terminate=True by keyword."
        )
    else:
        limit = float(timeout)
    pipeline = get_pipeline()
    return pipeline.shutdown(limit) if terminate else pipeline.flush_until_delivered(limit)


def flush_pending_for_read() -> None:
    """Read-your-writes: what this process finished is stored before it reads.

    Takes the writer's lock, so a batch the worker is writing right now is waited for too
    (the queue can be empty while that batch is still in flight). Bounded by
    ``THREADLINE_SYNC_EXPORT_TIMEOUT_SECONDS``: a destination that does not answer in time
    is left to the background retry, and the read goes ahead on its own.
    """
    pipeline = RT.pipeline
    if pipeline is not None:
        pipeline.flush_for_read()
