"""Waiting for pending trace exports."""

from __future__ import annotations

from threadline.tracing._runtime import RT, get_pipeline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from threadline.export._pipeline import FlushReport


def flush_trace_async_logging(terminate: bool = False) -> FlushReport:
    """Write every pending span and trace now, and report what happened to them.

    The report counts spans exported, retried, spooled to disk (to be replayed when the
    destination is back), replayed from the spool and dropped, with the reasons. With
    ``terminate`` the export worker also stops (a new one starts with the next span).
    """
    pipeline = get_pipeline()
    return pipeline.shutdown() if terminate else pipeline.flush()


def flush_pending_for_read() -> None:
    """Read-your-writes: what this process finished is stored before it reads.

    Always takes the writer's lock, so a batch the worker is writing right now is waited
    for too (the queue can be empty while that batch is still in flight).
    """
    pipeline = RT.pipeline
    if pipeline is not None:
        pipeline.flush()
