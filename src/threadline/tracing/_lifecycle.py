"""Starting and ending spans: the hot path shared by @trace, start_span and the client API.

Both functions catch every internal failure (``_safety``), so the traced program never sees
an error that tracing caused; at worst its span is missing.
"""

from __future__ import annotations

from time import time_ns

from threadline import settings
from threadline.entities.keys import DEFAULT_EXPERIMENT_ID
from threadline.entities.span import SpanStatusCode
from threadline.tracing import _context, _safety
from threadline.tracing._noop import NOOP_SPAN, NoOpSpan
from threadline.tracing._runtime import RT, get_pipeline
from threadline.tracing._serialize import snapshot
from threadline.tracing._span import LiveSpan, TraceState, getrandbits, random

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from threadline.entities.trace_location import ExperimentLocation

_SCALARS = frozenset({str, int, float, bool, type(None)})


class _Missing:
    pass


MISSING: Any = _Missing()  # "argument not given" (None is a valid value)


def resolve_experiment_id(destination: ExperimentLocation | None) -> str:
    """Where a new trace goes: the span's argument, the context-local destination, the
    process-wide destination, then the active experiment."""
    if destination is not None:
        return destination.experiment_id
    local = _context.destination.get()
    if local is not None:
        return local.experiment_id
    if RT.destination is not None:
        return RT.destination.experiment_id
    experiment_id = RT.active_experiment_id
    if experiment_id is None:
        experiment_id = settings.EXPERIMENT_ID.get() or DEFAULT_EXPERIMENT_ID
        RT.active_experiment_id = experiment_id
    return experiment_id


def begin_span(
    name: str,
    span_type: str,
    attributes: dict[str, Any] | None,
    destination: ExperimentLocation | None = None,
    parent: LiveSpan | NoOpSpan | _Missing | None = MISSING,
    sampling_ratio: float | None = None,
) -> LiveSpan | NoOpSpan | None:
    """Open a span under ``parent`` (default: the current span).

    Returns ``None`` when tracing is off, and the non-recording ``NOOP_SPAN`` when the
    trace is not sampled or was already ended (timeout): callers make it current so that
    children follow their root's decision.
    """
    if not RT.initialized:
        RT.ensure_initialized()
        if not RT.enabled:
            return None
    try:
        if parent is MISSING:
            parent = _context.current_span.get()
            if RT.foreign_parent is not None:  # the OpenTelemetry bridge is in use
                parent = RT.foreign_parent(parent)
        if parent is None:
            return _begin_root(name, span_type, attributes, destination, sampling_ratio)
        if parent is NOOP_SPAN:
            return NOOP_SPAN
        state = parent._trace_state  # type: ignore[union-attr]
        if state.ended:
            return NOOP_SPAN  # the trace was aborted (timeout): later spans are not recorded
        if destination is not None:
            _safety.log_once(
                "child-destination",
                f"threadline: trace_destination on span {name!r} is ignored because it is not "
                "the root span of its trace; set it on the outermost span.",
            )
        span = LiveSpan(
            state,
            getrandbits(64) or 1,
            parent._sid,  # type: ignore[union-attr]
            name,
            span_type,
            time_ns(),
            attributes,
        )
        if state.open_spans is not None:
            state.open_spans[span._sid] = span
        return span
    except Exception as exc:
        _safety.internal_error("start-span", exc)
        return None


def _begin_root(
    name: str,
    span_type: str,
    attributes: dict[str, Any] | None,
    destination: ExperimentLocation | None,
    sampling_ratio: float | None,
) -> LiveSpan | NoOpSpan:
    ratio = RT.sampling_ratio if sampling_ratio is None else sampling_ratio
    if ratio < 1.0 and random() >= ratio:
        return NOOP_SPAN
    if not RT.display_checked:
        _check_notebook()
    now = time_ns()
    runs = _context.active_runs.get()
    state = TraceState(
        getrandbits(128) or 1,
        resolve_experiment_id(destination),
        runs[-1] if runs else None,
        now,
    )
    span = LiveSpan(state, getrandbits(64) or 1, None, name, span_type, now, attributes)
    state.root = span
    if RT.trace_timeout_s is not None:
        from threadline.tracing._timeout import watch

        watch(state)
    (RT.pipeline or get_pipeline()).on_trace_start(state)
    return span


def end_span(
    span: LiveSpan | NoOpSpan,
    outputs: Any = MISSING,
    exc: BaseException | None = None,
    owned: bool = False,
    end_ns: int = 0,
) -> None:
    """Close ``span``: record outputs or the exception, run span processors, snapshot, export.

    ``owned=True`` says ``outputs`` is a fresh value nothing else refers to (an
    integration's ``model_dump()``), so it needs no snapshot copy. ``end_ns``: the end
    time when another tracer measured it (the OpenTelemetry bridge); default now.
    """
    try:
        if span._ended:  # also true for the non-recording span
            return
        assert isinstance(span, LiveSpan)
        if outputs is not MISSING:
            span._outputs = outputs
        if exc is not None:
            span.record_exception(exc)  # its event is timestamped before the span's end
        elif span._status_code == SpanStatusCode.UNSET:
            span._status_code = SpanStatusCode.OK
        span._end_time_ns = end_ns or time_ns()
        if RT.processors:
            _run_processors(span)
        out = span._outputs
        if type(out) not in _SCALARS and not (owned and out is outputs):
            span._outputs = snapshot(out)
        span._ended = True
        state = span._trace_state
        if state.open_spans is not None:
            state.open_spans.pop(span._sid, None)
        pipeline = RT.pipeline or get_pipeline()
        if state.root is span:
            if state.ended:  # the watchdog ended this trace first
                return
            state.ended = True
            RT.last_trace_id = state.trace_id
            pipeline.on_root_end(span)
            if RT.on_trace_end is not None:
                RT.on_trace_end(state.trace_id)
        else:
            pipeline.on_span_end(span)
    except Exception as error:
        _safety.internal_error("end-span", error)


def _check_notebook() -> None:
    """Once per process: if this is a Jupyter/IPython session, turn on inline display."""
    RT.display_checked = True
    import sys

    if "IPython" in sys.modules:
        try:
            from threadline.tracing import display
        except ImportError:  # a build without the display module: nothing to show
            return
        display.install_if_notebook()


def _run_processors(span: LiveSpan) -> None:
    for processor in RT.processors:
        try:
            processor(span)
        except Exception as exc:
            name = getattr(processor, "__qualname__", repr(processor))
            _safety.log_once(
                f"processor:{name}",
                f"threadline: span processor {name} raised {type(exc).__name__}: {exc}; "
                "it was skipped for this span.",
                exc,
            )
