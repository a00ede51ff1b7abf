"""Waiting for pending trace exports."""

from __future__ import annotations

from threadline.tracing._runtime import RT


def flush_trace_async_logging(terminate: bool = False) -> None:
    """Write every pending span and trace now; with ``terminate`` also stop the worker."""
    pipeline = RT.pipeline
    if pipeline is None:
        return
    if terminate:
        pipeline.shutdown()
    else:
        pipeline.flush()


def flush_pending_for_read() -> None:
    """Read-your-writes: what this process finished is stored before it reads.

    Always takes the writer's lock, so a batch the worker is writing right now is waited
    for too (the queue can be empty while that batch is still in flight).
    """
    pipeline = RT.pipeline
    if pipeline is not None:
        pipeline.flush()
