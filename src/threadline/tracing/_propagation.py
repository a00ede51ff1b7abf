"""W3C trace context: continue a trace across processes over HTTP.

``get_tracing_context_headers_for_http_request()`` gives the ``traceparent`` header of the
current span; ``set_tracing_context_from_http_request_headers(headers)`` makes spans created
in the block children of that remote span, in the same trace. Both processes write their
own spans; the trace's final row is written by the process that owns the root.
"""

from __future__ import annotations

from time import time_ns
from types import TracebackType

from threadline.tracing import _safety
from threadline.tracing._context import current_span
from threadline.tracing._lifecycle import resolve_experiment_id
from threadline.tracing._noop import NOOP_SPAN
from threadline.tracing._runtime import RT, get_pipeline
from threadline.tracing._span import LiveSpan, TraceState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_VERSION = "00"
_HEX = frozenset("0123456789abcdef")


def get_tracing_context_headers_for_http_request() -> dict[str, str]:
    """``{"traceparent": ...}`` for the current span, to send with an outgoing request.

    Outside a trace (or in one that is not recorded) it returns ``{}``.
    """
    span = current_span.get()
    if not isinstance(span, LiveSpan):  # outside a trace, or in one that is not recorded
        return {}
    trace_hex = "%032x" % span._trace_state.tid
    return {"traceparent": f"{_VERSION}-{trace_hex}-{'%016x' % span._sid}-01"}


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) from a ``traceparent`` value, or ``None``."""
    parts = value.strip().lower().split("-")
    if len(parts) < 4 or parts[0] == "ff" or len(parts[0]) != 2:
        return None
    version, trace_hex, span_hex, flags = parts[:4]
    if version == _VERSION and len(parts) != 4:
        return None
    if len(trace_hex) != 32 or len(span_hex) != 16 or len(flags) != 2:
        return None
    if not set(trace_hex + span_hex + flags + version) <= _HEX:
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


class RemoteParentSpan(LiveSpan):
    """Stands in for the caller's span in this process: never exported, only a parent."""

    is_remote_parent = True


class set_tracing_context_from_http_request_headers:
    """Within the block, new spans continue the trace named by the request's ``traceparent``.

    Without a valid header the block runs normally (spans start a new trace).
    """

    def __init__(self, headers: Mapping[str, Any]) -> None:
        self._headers = headers
        self._token: Any = None

    def __enter__(self) -> None:
        value = _header(self._headers, "traceparent")
        if value is None or not RT.enabled:
            return
        parsed = parse_traceparent(value)
        if parsed is None:
            _safety.log_once(
                "bad-traceparent",
                f"threadline: ignoring malformed traceparent header {value[:80]!r}; "
                "spans in this request start a new trace.",
            )
            return
        trace_id, parent_id, sampled = parsed
        if not sampled:
            self._token = current_span.set(NOOP_SPAN)  # follow the caller's decision
            return
        RT.ensure_initialized()
        state = TraceState(trace_id, resolve_experiment_id(None), None, time_ns())
        state.remote = True
        parent = RemoteParentSpan(state, parent_id, None, "remote parent", "UNKNOWN", 0, None)
        (RT.pipeline or get_pipeline()).on_trace_start(state)
        self._token = current_span.set(parent)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            current_span.reset(self._token)
            self._token = None


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if str(key).lower() == name:
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            return None if value is None else str(value)
    return None
