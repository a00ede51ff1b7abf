"""The one piece of mutable process-wide tracing state, and ``reset()`` for tests.

Nothing here reads the environment or starts a thread at import; ``ensure_initialized``
reads the settings on first use of tracing.
"""

from __future__ import annotations

import _thread

from threadline import settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from threadline.entities.trace_location import ExperimentLocation
    from threadline.export._pipeline import ExportPipeline
    from threadline.tracing._span import LiveSpan


class Runtime:
    """Process-wide tracing state. ``enabled`` is read on every traced call, so it is a plain bool."""

    def __init__(self) -> None:
        self.enabled = True  # until initialised, True routes the first call to initialisation
        self.initialized = False
        self.processors: tuple[Callable[[Any], None], ...] = ()
        self.destination: ExperimentLocation | None = None
        self.active_experiment_id: str | None = None
        self.tracking_uri: str | None = None
        self.async_logging: bool | None = None
        self.last_trace_id: str | None = None
        self.pipeline: ExportPipeline | None = None
        self.notebook_display = True
        self.sampling_ratio = 1.0
        # Notebook display: checked once, at the first trace; when a notebook is found the
        # display module sets ``on_trace_end`` (called with each finished trace's id).
        self.display_checked = False
        self.on_trace_end: Callable[[str], None] | None = None
        self.trace_timeout_s: float | None = None
        # Set by the OpenTelemetry bridge: the parent of a new span given the current
        # threadline span (an open OpenTelemetry span may be inside it).
        self.foreign_parent: Callable[[Any], Any] | None = None
        # Spans opened through the low-level client API, by (trace_id, span_id).
        self.client_spans: dict[tuple[str, str], LiveSpan] = {}
        self.lock = _thread.RLock()

    def ensure_initialized(self) -> None:
        """Read the settings that govern tracing, once."""
        if self.initialized:
            return
        with self.lock:
            if not self.initialized:
                self.enabled = settings.TRACING_ENABLED.get()
                self.sampling_ratio = settings.TRACE_SAMPLING_RATIO.get()
                self.trace_timeout_s = settings.TRACE_TIMEOUT_SECONDS.get()
                self.initialized = True


RT = Runtime()


def get_pipeline() -> ExportPipeline:
    """The export pipeline, created on first use (no thread starts until spans flow)."""
    pipeline = RT.pipeline
    if pipeline is None:
        with RT.lock:
            if RT.pipeline is None:
                from threadline.export._pipeline import ExportPipeline

                RT.pipeline = ExportPipeline()
            pipeline = RT.pipeline
    return pipeline


def reset() -> None:
    """Forget all tracing state (tests): flushes and stops the pipeline first."""
    pipeline = RT.pipeline
    if pipeline is not None:
        pipeline.shutdown()
    if RT.trace_timeout_s is not None:
        from threadline.tracing import _timeout

        _timeout.stop()
    fresh = Runtime()
    for name, value in vars(fresh).items():
        setattr(RT, name, value)
