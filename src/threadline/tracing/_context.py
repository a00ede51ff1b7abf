"""Context-local state: the current span, the context-local trace destination, active runs.

ContextVars give each thread its own value and each asyncio task a copy of its creator's,
and ``contextvars.copy_context()`` carries them into worker threads.
"""

from __future__ import annotations

from contextvars import ContextVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from threadline.entities.trace_location import ExperimentLocation
    from threadline.tracing._noop import NoOpSpan
    from threadline.tracing._span import LiveSpan

# A LiveSpan, or the non-recording NoOpSpan inside a trace that is not recorded.
current_span: ContextVar[LiveSpan | NoOpSpan | None] = ContextVar(
    "threadline_current_span", default=None
)
destination: ContextVar[ExperimentLocation | None] = ContextVar(
    "threadline_destination", default=None
)
# Stack of active run ids, innermost last (tuples, so a copy is never mutated in place).
active_runs: ContextVar[tuple[str, ...]] = ContextVar("threadline_active_runs", default=())
