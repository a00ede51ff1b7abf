"""``ThreadlineSpanProcessor``: OpenTelemetry spans become threadline spans as they happen.

At start, a span gets its threadline span under the right parent (``_tree``): a threadline
span, a bridged OpenTelemetry span, or a stand-in for a parent in another process; spans of
dropped scopes (``_scopes``) get none, and their children go to the nearest kept ancestor.
At end, the span's data is mapped through the conventions (``_convert``) and the threadline
span ends, into threadline's export pipeline (store, destinations, span processors,
sampling and trace timeout as for any span).

On threadline's own provider (``own=True``) the OpenTelemetry ids are threadline's ids
(``_ids``) and its tracer already chose the parent; on a provider of the user's, ids are
drawn afresh by threadline (theirs may repeat after ``random.seed()``).
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from threadline.otel import _convert
from threadline.otel._scopes import ScopeFilter
from threadline.otel._tree import (
    OPEN,
    Bridged,
    ThreadlineParent,
    ThreadlineSpan,
    install_hook,
    register,
    unregister,
)
from threadline.semconv import span_type_of
from threadline.tracing import _safety
from threadline.tracing._context import current_span
from threadline.tracing._foreign import begin_foreign_span, remote_parent
from threadline.tracing._lifecycle import MISSING, end_span
from threadline.tracing._runtime import get_pipeline
from threadline.tracing._span import LiveSpan


class ThreadlineSpanProcessor(SpanProcessor):
    """Records every span of the provider it is added to as a threadline span."""

    def __init__(self, *, own: bool, scopes: ScopeFilter | None = None) -> None:
        self.own = own
        self.scopes = scopes or ScopeFilter.from_settings()
        self.active = True

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if not self.active:
            return
        try:
            install_hook()
            self._start(span, parent_context)
        except Exception as exc:
            _safety.internal_error("otel-span-start", exc)

    def _start(self, span: Span, parent_context: otel_context.Context | None) -> None:
        context = span.get_span_context()
        current = current_span.get()
        parent = self._parent(span, parent_context, current)
        scope = span.instrumentation_scope
        key = (context.trace_id, context.span_id)
        if scope is not None and self.scopes.drops(scope.name):
            register(span, key, Bridged(parent, current, kept=False))
            return
        start = span.start_time or 0
        tid = sid = 0
        if self.own:
            sid = context.span_id
            if parent is None and span.parent is None:
                tid = context.trace_id  # an OpenTelemetry root: keep its trace id
            elif not isinstance(parent, LiveSpan) or parent._trace_state.tid != context.trace_id:
                sid = 0
        live = begin_foreign_span(
            span.name,
            span_type_of(span.attributes or {}),
            parent,
            start,
            tid,
            sid,
            sampling_ratio=1.0 if self.own else None,  # the provider's sampler decided
        )
        register(span, key, Bridged(live, current, kept=True))

    def _parent(
        self, span: Span, parent_context: otel_context.Context | None, current: ThreadlineSpan
    ) -> ThreadlineSpan:
        otel_parent = trace_api.get_current_span(parent_context)
        if isinstance(otel_parent, ThreadlineParent):
            return otel_parent.live
        context = otel_parent.get_span_context()
        if not context.is_valid:
            return current
        bridged = OPEN.get((context.trace_id, context.span_id))
        if bridged is not None:
            return bridged.live if bridged.is_inside(current) else current
        if current is not None and not self.own:
            return current
        if not context.trace_flags.sampled:
            return current
        return remote_parent(context.trace_id, context.span_id, span.start_time or 0)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if context is None:
            return
        bridged = unregister((context.trace_id, context.span_id))
        if bridged is None or not bridged.kept or not isinstance(bridged.live, LiveSpan):
            return
        live = bridged.live
        try:
            if live._ended:
                return
            _convert.apply(live, span)
        except Exception as exc:
            _safety.internal_error("otel-span-end", exc)
        end_span(live, MISSING, end_ns=span.end_time or 0)

    def shutdown(self) -> None:
        """Nothing to release: threadline's pipeline flushes at exit by itself."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write what threadline's pipeline holds (e.g. ``provider.force_flush()``)."""
        try:
            get_pipeline().flush(timeout_millis / 1000)
        except Exception as exc:
            _safety.internal_error("otel-flush", exc)
            return False
        return True

    def __repr__(self) -> str:
        return f"ThreadlineSpanProcessor(own={self.own})"
