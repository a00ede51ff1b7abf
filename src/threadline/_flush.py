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
    """Read-your-writes: what this process finished is stored before it reads."""
    pipeline = RT.pipeline
    if pipeline is not None and pipeline.pending():
        pipeline.flush()
