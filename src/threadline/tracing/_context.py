"""Context-local state: the current span, the context-local trace destination, active runs.

ContextVars give each thread its own value and each asyncio task a copy of its creator's,
and ``contextvars.copy_context()`` carries them into worker threads.
"""

from __future__ import annotations

from contextvars import ContextVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from threadline.entities.trace_location import ExperimentLocation
    from threadline.tracing._span import LiveSpan

current_span: ContextVar[LiveSpan | None] = ContextVar("threadline_current_span", default=None)
destination: ContextVar[ExperimentLocation | None] = ContextVar(
    "threadline_destination", default=None
)
# Stack of active run ids, innermost last (tuples, so a copy is never mutated in place).
active_runs: ContextVar[tuple[str, ...]] = ContextVar("threadline_active_runs", default=())
