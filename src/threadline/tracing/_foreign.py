"""Spans that another tracer measured (the OpenTelemetry bridge): its start time and ids.

``begin_foreign_span`` is ``begin_span`` with the start time, trace id and span id given
(an OpenTelemetry span's), an explicit parent, and no inputs; ``remote_parent`` stands in
for a parent span in another process, as W3C trace context does in ``_propagation``. Not
on the hot path of ``@trace``: only bridged spans come here.
"""

from __future__ import annotations

from threadline.tracing import _context, _safety
from threadline.tracing._lifecycle import _check_notebook, resolve_experiment_id
from threadline.tracing._noop import NOOP_SPAN, NoOpSpan
from threadline.tracing._propagation import RemoteParentSpan
from threadline.tracing._runtime import RT, get_pipeline
from threadline.tracing._span import LiveSpan, TraceState, getrandbits, random


def begin_foreign_span(
    name: str,
    span_type: str,
    parent: LiveSpan | NoOpSpan | None,
    start_ns: int,
    tid: int = 0,
    sid: int = 0,
    sampling_ratio: float | None = None,
) -> LiveSpan | NoOpSpan | None:
    """Open a span under ``parent`` (``None``: a new trace, sampled with ``sampling_ratio``,
    default the configured ratio). ``tid``/``sid`` 0: new ids from threadline's generator.

    Returns ``None`` when tracing is off and ``NOOP_SPAN`` when the trace is not recorded.
    """
    if not RT.initialized:
        RT.ensure_initialized()
    if not RT.enabled:
        return None
    try:
        if parent is NOOP_SPAN:
            return NOOP_SPAN
        if parent is None:
            return _begin_root(name, span_type, start_ns, tid, sid, sampling_ratio)
        assert isinstance(parent, LiveSpan)
        state = parent._trace_state
        if state.ended:
            return NOOP_SPAN
        span = LiveSpan(
            state, sid or getrandbits(64) or 1, parent._sid, name, span_type, start_ns, None
        )
        if state.open_spans is not None:
            state.open_spans[span._sid] = span
        return span
    except Exception as exc:
        _safety.internal_error("start-span", exc)
        return None


def _begin_root(
    name: str, span_type: str, start_ns: int, tid: int, sid: int, sampling_ratio: float | None
) -> LiveSpan | NoOpSpan:
    ratio = RT.sampling_ratio if sampling_ratio is None else sampling_ratio
    if ratio < 1.0 and random() >= ratio:
        return NOOP_SPAN
    if not RT.display_checked:
        _check_notebook()
    runs = _context.active_runs.get()
    state = TraceState(
        tid or getrandbits(128) or 1,
        resolve_experiment_id(None),
        runs[-1] if runs else None,
        start_ns,
    )
    span = LiveSpan(state, sid or getrandbits(64) or 1, None, name, span_type, start_ns, None)
    state.root = span
    if RT.trace_timeout_s is not None:
        from threadline.tracing._timeout import watch

        watch(state)
    (RT.pipeline or get_pipeline()).on_trace_start(state)
    return span


def remote_parent(tid: int, sid: int, start_ns: int) -> RemoteParentSpan:
    """A stand-in for span ``sid`` of trace ``tid`` in another process: spans under it are
    written by this process, the trace's final row by the process that owns the root."""
    RT.ensure_initialized()
    state = TraceState(tid, resolve_experiment_id(None), None, start_ns)
    state.remote = True
    parent = RemoteParentSpan(state, sid, None, "remote parent", "UNKNOWN", 0, None)
    (RT.pipeline or get_pipeline()).on_trace_start(state)
    return parent
