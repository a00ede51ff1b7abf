"""One span tree for OpenTelemetry and threadline spans: who is the parent of a new span.

Both kinds of span are current in their own ContextVar (OpenTelemetry's context, and
threadline's ``current_span``). Every open bridged OpenTelemetry span is registered here
with ``outer``, the threadline span that was current when it started. In a given context,
the innermost span is the OpenTelemetry one while threadline's current span is still
``outer`` (or the bridged span itself); once a threadline span has been entered inside it,
that one is. ``threadline_parent`` applies this when a threadline span starts (the hook
``RT.foreign_parent``), ``bridge_context`` when an OpenTelemetry span starts.
"""

from __future__ import annotations

import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from threadline.tracing._context import current_span
from threadline.tracing._noop import NOOP_SPAN, NoOpSpan
from threadline.tracing._runtime import RT
from threadline.tracing._span import LiveSpan, getrandbits

Key = tuple[int, int]  # (trace id, span id) of an OpenTelemetry span
ThreadlineSpan = LiveSpan | NoOpSpan | None


class Bridged:
    """An open OpenTelemetry span: its threadline span (for a dropped span, its nearest
    kept ancestor's; ``None`` for none), and the threadline span current at its start."""

    __slots__ = ("finalizer", "kept", "live", "outer")

    def __init__(self, live: ThreadlineSpan, outer: ThreadlineSpan, kept: bool) -> None:
        self.live = live
        self.outer = outer
        self.kept = kept
        self.finalizer: weakref.finalize[Any, Any] | None = None

    def is_inside(self, current: ThreadlineSpan) -> bool:
        """Whether this span is inside ``current`` (the current threadline span)."""
        return current is None or current is self.outer or current is self.live


OPEN: dict[Key, Bridged] = {}  # every open bridged span (dict operations are atomic)


class ThreadlineParent(NonRecordingSpan):
    """A threadline span as an OpenTelemetry parent: its ids, and the span itself."""

    def __init__(self, live: LiveSpan | NoOpSpan) -> None:
        if isinstance(live, LiveSpan):
            context = SpanContext(
                live._trace_state.tid, live._sid, is_remote=False, trace_flags=TraceFlags(1)
            )
        else:  # a trace that is not recorded: children are not sampled either
            context = SpanContext(
                getrandbits(128) or 1,
                getrandbits(64) or 1,
                is_remote=False,
                trace_flags=TraceFlags(0),
            )
        super().__init__(context)
        self.live = live


def register(span: Any, key: Key, bridged: Bridged) -> None:
    """Record an open span; forgotten again if the span is dropped without being ended
    (an instrumentation that never ends a span must not make the registry grow)."""
    OPEN[key] = bridged
    try:
        bridged.finalizer = weakref.finalize(span, _forget, key, bridged)
    except TypeError:  # a span type without weak references: ended spans are removed anyway
        pass


def unregister(key: Key) -> Bridged | None:
    """Remove an ended span's record and return it."""
    bridged = OPEN.pop(key, None)
    if bridged is not None and bridged.finalizer is not None:
        bridged.finalizer.detach()
    return bridged


def _forget(key: Key, bridged: Bridged) -> None:
    if OPEN.get(key) is bridged:
        OPEN.pop(key, None)


def key_of(span: Any) -> Key:
    context = span.get_span_context()
    return context.trace_id, context.span_id


def bridge_context(context: otel_context.Context | None) -> otel_context.Context | None:
    """The parent context for a new OpenTelemetry span: ``context`` as given, or with the
    current threadline span as parent when that one is innermost."""
    current = current_span.get()
    if current is None:
        return context
    parent = trace_api.get_current_span(context)
    span_context = parent.get_span_context()
    if span_context.is_valid:
        bridged = OPEN.get((span_context.trace_id, span_context.span_id))
        if bridged is not None:
            if bridged.is_inside(current):
                return context
        elif context is not None or isinstance(parent, ThreadlineParent):
            return context  # a parent given on purpose (e.g. from propagated headers)
    return trace_api.set_span_in_context(ThreadlineParent(current), context)


def threadline_parent(current: ThreadlineSpan) -> ThreadlineSpan:
    """``RT.foreign_parent``: the parent of a new threadline span (``current`` is
    threadline's current span)."""
    if current is not None and not OPEN:  # nothing bridged is open: no need to look
        return current
    span_context = trace_api.get_current_span().get_span_context()
    if not span_context.is_valid:
        return current
    bridged = OPEN.get((span_context.trace_id, span_context.span_id))
    if bridged is None:
        if current is None and not span_context.trace_flags.sampled:
            return NOOP_SPAN  # inside an OpenTelemetry trace that is not recorded
        return current
    return bridged.live if bridged.is_inside(current) else current


def install_hook() -> None:
    """Make new threadline spans look for an open OpenTelemetry parent (idempotent)."""
    if RT.foreign_parent is None:
        RT.foreign_parent = threadline_parent
