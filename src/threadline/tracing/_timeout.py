"""The stuck-trace watchdog (``THREADLINE_TRACE_TIMEOUT_SECONDS``).

Started only when a timeout is configured, on the first trace. Every check interval it
ends traces older than the timeout: open spans are marked aborted (status ERROR,
``threadline.aborted``), the root gets status ERROR, and the trace is exported. The traced
program keeps running; spans it ends or starts later in that trace are not recorded, so
they cannot change the stored trace.
"""

from __future__ import annotations

import threading
import time
import weakref

from threadline import settings
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanStatusCode
from threadline.tracing import _safety
from threadline.tracing._runtime import RT, get_pipeline
from threadline.tracing._span import LiveSpan, TraceState

_lock = threading.Lock()
_open_traces: weakref.WeakValueDictionary[int, TraceState] = weakref.WeakValueDictionary()
_thread: threading.Thread | None = None
_stop = threading.Event()


def watch(state: TraceState) -> None:
    """Register a new trace (and start the watchdog on first use)."""
    state.open_spans = {}
    _open_traces[state.tid] = state
    if _thread is None:
        _start()


def _start() -> None:
    global _thread
    with _lock:
        if _thread is not None:
            return
        _stop.clear()
        _thread = threading.Thread(target=_run, name="threadline-trace-timeout", daemon=True)
        _thread.start()


def _run() -> None:
    interval = settings.TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS.get()
    while not _stop.wait(interval):
        try:
            check_now()
        except Exception as exc:  # the watchdog must survive anything
            _safety.log_once("timeout-watchdog", f"threadline: trace watchdog error: {exc}", exc)


def check_now() -> int:
    """End every trace past the timeout; returns how many were ended."""
    timeout = RT.trace_timeout_s
    if timeout is None:
        return 0
    deadline_ms = (time.time_ns() // 1_000_000) - int(timeout * 1000)
    expired = [
        state
        for state in list(_open_traces.values())
        if not state.ended and state.request_time_ms <= deadline_ms
    ]
    for state in expired:
        _abort(state, timeout)
    return len(expired)


def _abort(state: TraceState, timeout: float) -> None:
    state.ended = True  # first: spans ending from now on in the program are ignored
    _open_traces.pop(state.tid, None)
    now = time.time_ns()
    pipeline = RT.pipeline or get_pipeline()
    message = f"Trace exceeded THREADLINE_TRACE_TIMEOUT_SECONDS={timeout:g} and was aborted"
    for span in list((state.open_spans or {}).values()):
        if not span._ended:
            _mark_aborted(span, now, message)
            pipeline.on_span_end(span)
    root = state.root
    if root is not None and not root._ended:
        _mark_aborted(root, now, message)
        pipeline.on_root_end(root)
    _safety.log_once(
        "trace-timeout",
        f"threadline: a trace ran longer than {timeout:g} s and was ended with status ERROR; "
        "its open spans are marked aborted. The program itself keeps running.",
    )


def _mark_aborted(span: LiveSpan, now: int, message: str) -> None:
    """End ``span`` from the watchdog thread without touching live user objects."""
    span._ended = True
    span._end_time_ns = now
    span._status_code = SpanStatusCode.ERROR
    span._status_message = message
    span._outputs = None  # may be a live object the program still uses: not read here
    span.attributes[SpanAttributeKey.ABORTED] = True


def stop() -> None:
    """Stop the watchdog (tests, reset)."""
    global _thread
    _stop.set()
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join(5)
    _thread = None
    _open_traces.clear()
