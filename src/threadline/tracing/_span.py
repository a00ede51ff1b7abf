"""The live span (mutable while its code runs) and the per-trace state shared by its spans.

A ``LiveSpan`` is a ``Span`` whose setters work until it ends. When it ends its inputs and
outputs are snapshots, so the exporter can read it without touching live user objects.
"""

from __future__ import annotations

import os
from _random import Random

from threadline.entities.keys import TRACE_ID_PREFIX
from threadline.entities.span import Span, SpanEvent, SpanStatus, SpanStatusCode
from threadline.tracing import _safety
from threadline.tracing._serialize import snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The C generator directly: `random` costs milliseconds to import. Reseeded after fork so
# parent and child never produce the same ids.
_rng = Random(int.from_bytes(os.urandom(16), "big"))
getrandbits = _rng.getrandbits
random = _rng.random


def _reseed() -> None:
    _rng.seed(int.from_bytes(os.urandom(16), "big"))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_trace_id() -> str:
    """``tr-`` and 32 hex digits: an OpenTelemetry trace id."""
    return format_trace_id(getrandbits(128) or 1)


def new_span_id() -> str:
    """16 hex digits: an OpenTelemetry span id."""
    return "%016x" % (getrandbits(64) or 1)


def format_trace_id(number: int) -> str:
    return "tr-%032x" % number


def format_span_id(number: int) -> str:
    return "%016x" % number


def otel_trace_id(trace_id: str) -> str:
    """The bare 32-hex OpenTelemetry id of a ``tr-…`` trace id."""
    return trace_id[len(TRACE_ID_PREFIX) :] if trace_id.startswith(TRACE_ID_PREFIX) else trace_id


class TraceState:
    """What the SDK knows about one open trace beyond its spans (shared by all its spans).

    Ids are kept as integers on the hot path and formatted as hex text when first read
    (formatting costs more than generating them).
    """

    __slots__ = (
        "__weakref__",
        "_trace_id",
        "client_request_id",
        "ended",
        "experiment_id",
        "metadata",
        "open_spans",
        "remote",
        "request_preview",
        "request_time_ms",
        "response_preview",
        "root",
        "run_id",
        "tags",
        "tid",
    )

    def __init__(self, tid: int, experiment_id: str, run_id: str | None, start_ns: int):
        self.tid = tid
        self._trace_id: str | None = None
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.request_time_ms = start_ns // 1_000_000
        self.tags: dict[str, str] = {}
        self.metadata: dict[str, str] = {}
        self.request_preview: str | None = None
        self.response_preview: str | None = None
        self.client_request_id: str | None = None
        self.root: LiveSpan | None = None
        self.ended = False
        # Open spans by id, kept only when a trace timeout is configured (the watchdog
        # needs them to mark them aborted).
        self.open_spans: dict[int, LiveSpan] | None = None
        # True when the trace's root is in another process (W3C trace context): this
        # process writes its spans but not the trace's final row.
        self.remote = False

    @property
    def trace_id(self) -> str:
        trace_id = self._trace_id
        if trace_id is None:
            trace_id = self._trace_id = format_trace_id(self.tid)
        return trace_id


class LiveSpan(Span):
    """A span being recorded. Setters are ignored (with a warning) once it has ended.

    ``_sid``/``_pid`` are the integer span and parent ids; fields not written here keep
    the class defaults of ``Span``.
    """

    _ended = False
    is_remote_parent = False  # True only for the stand-in of a parent in another process

    def __init__(
        self,
        trace_state: TraceState,
        sid: int,
        pid: int | None,
        name: str,
        span_type: str,
        start_time_ns: int,
        attributes: dict[str, Any] | None,
    ) -> None:
        # Only what every span has: this runs for every traced call.
        self._trace_state = trace_state
        self._sid = sid
        self._pid = pid
        self._name = name
        self._span_type = span_type
        self._start_time_ns = start_time_ns
        if attributes:
            self._attributes = snapshot(attributes)

    @property
    def trace_id(self) -> str:
        return self._trace_state.trace_id

    @property
    def span_id(self) -> str:
        return format_span_id(self._sid)

    @property
    def parent_id(self) -> str | None:
        return None if self._pid is None else format_span_id(self._pid)

    # --- writes ------------------------------------------------------------------------
    def _check_open(self, what: str) -> bool:
        if self._ended:
            _safety.log_once(
                "span-ended",
                f"threadline: {what} on span {self._name!r} after it ended is ignored.",
            )
            return False
        return True

    def set_inputs(self, inputs: Any) -> None:
        """Record the span's inputs (a snapshot is taken now)."""
        if self._check_open("set_inputs"):
            self._inputs = snapshot(inputs)

    def set_outputs(self, outputs: Any) -> None:
        """Record the span's outputs (snapshotted when the span ends)."""
        if self._check_open("set_outputs"):
            self._outputs = outputs

    def set_attribute(self, key: str, value: Any) -> None:
        if self._check_open("set_attribute"):
            self.attributes[str(key)] = snapshot(value)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        if self._check_open("set_attributes"):
            target = self.attributes
            for key, value in attributes.items():
                target[str(key)] = snapshot(value)

    def add_event(self, event: SpanEvent) -> None:
        if self._check_open("add_event"):
            if not isinstance(event, SpanEvent):
                _safety.log_once("bad-event", "threadline: add_event() takes a SpanEvent; ignored.")
                return
            self.events.append(
                SpanEvent(event.name, event.timestamp_ns, snapshot(event.attributes))
            )

    def set_status(self, status: SpanStatus | str, description: str = "") -> None:
        """Set ``"OK"``, ``"ERROR"`` (or a ``SpanStatus``)."""
        if not self._check_open("set_status"):
            return
        if isinstance(status, SpanStatus):
            self._status_code, self._status_message = status.status_code, status.description
            return
        code = str(status).upper()
        if code not in SpanStatusCode.ALL:
            _safety.log_once(
                "bad-status",
                f"threadline: span status {status!r} is not one of OK, ERROR, UNSET; ignored.",
            )
            return
        self._status_code, self._status_message = code, description

    def record_exception(self, exc: BaseException) -> None:
        """Add an ``exception`` event and set status ERROR."""
        if not self._check_open("record_exception"):
            return
        self.events.append(SpanEvent.from_exception(exc))
        self._status_code = SpanStatusCode.ERROR
        self._status_message = f"{type(exc).__name__}: {exc}"

    # --- read --------------------------------------------------------------------------
    @property
    def is_ended(self) -> bool:
        return self._ended

    @property
    def trace_state(self) -> TraceState:
        return self._trace_state
