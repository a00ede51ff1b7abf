"""Incoming rows against what the store can keep, for writers that take rows from outside.

``check_rows`` refuses values past the schema's bounds (ids and keys that do not fit their
columns or indexes, integers past 64 bits, times outside a sane range) with an
``InvalidArgumentError`` naming the row and the field, so that the server answers 400
before accepting a request instead of acknowledging rows the database then refuses.
``clean_text`` is how the store makes text storable (NUL characters and lone surrogates
become U+FFFD); ``unclean_count`` counts the rows it will change, so the server can say so.

Pure: no SQLAlchemy, so the server's decoding threads and the store share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from threadline.errors import InvalidArgumentError
from threadline.store.base import SpanRow, TraceRow

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Trace, span, parent, experiment and run ids: primary keys and indexed columns.
MAX_ID_CHARS = 256
#: Indexed, so bounded below PostgreSQL's B-tree entry limit (~2,700 bytes) in UTF-8.
MAX_CLIENT_REQUEST_ID_CHARS = 500
MAX_SPAN_TYPE_CHARS = 256
MAX_TOKENS = 10**12
#: 2000-01-01T00:00:00Z: no LLM trace is older; earlier times are broken clocks or bad data.
EARLIEST_MS = 946_684_800_000
_TRACE_STATES = ("OK", "ERROR", "IN_PROGRESS")
_SPAN_STATUSES = ("OK", "ERROR", "UNSET")
SURROGATE = re.compile("[\ud800-\udfff]")
ESCAPED_UNSTORABLE = re.compile(r"\\u0000|\\u[dD][89a-fA-F]")  # the same in JSON text


class TimeBounds:
    """The range of times a server accepts: from ``EARLIEST_MS`` to ``now + future_ms``."""

    __slots__ = ("earliest_ms", "latest_ms")

    def __init__(self, now_ms: int, future_ms: int) -> None:
        self.earliest_ms = EARLIEST_MS
        self.latest_ms = now_ms + future_ms

    def check_ms(self, value: int, where: str, field: str) -> None:
        if not self.earliest_ms <= value <= self.latest_ms:
            raise InvalidArgumentError(
                f"{where}: {field} {value} ms is outside the accepted range "
                f"({self.earliest_ms} = 2000-01-01 to {self.latest_ms}, a little after now). "
                "Is the sender's clock right, and is the unit milliseconds?"
            )

    def check_ns(self, value: int, where: str, field: str) -> None:
        if not self.earliest_ms * 1_000_000 <= value <= self.latest_ms * 1_000_000:
            raise InvalidArgumentError(
                f"{where}: {field} {value} ns is outside the accepted range (2000-01-01 to a "
                "little after now). Is the sender's clock right, and is the unit nanoseconds?"
            )

    def accepts_ns(self, value: int) -> bool:
        return self.earliest_ms * 1_000_000 <= value <= self.latest_ms * 1_000_000


def check_rows(
    traces: Sequence[TraceRow], spans: Sequence[SpanRow], bounds: TimeBounds | None = None
) -> None:
    """Raise ``InvalidArgumentError`` for the first value the store could not keep."""
    for n, row in enumerate(traces):
        _check_trace(row, f"trace {n} ({str(row.trace_id)[:80]!r})", bounds)
    for n, span in enumerate(spans):
        _check_span(
            span, f"span {n} ({str(span.span_id)[:40]!r} of {str(span.trace_id)[:80]!r})", bounds
        )


def _check_trace(row: TraceRow, where: str, bounds: TimeBounds | None) -> None:
    _id(row.trace_id, where, "trace_id")
    _id(row.experiment_id, where, "experiment_id")
    if row.run_id is not None:
        _id(row.run_id, where, "run_id")
    if row.client_request_id is not None:
        _text(row.client_request_id, MAX_CLIENT_REQUEST_ID_CHARS, where, "client_request_id")
    state = str(getattr(row.state, "value", row.state))
    if state not in _TRACE_STATES:
        raise InvalidArgumentError(f"{where}: state {state[:40]!r} is not one of {_TRACE_STATES}.")
    _int(row.request_time, INT64_MIN, INT64_MAX, where, "request_time")
    if bounds is not None:
        bounds.check_ms(row.request_time, where, "request_time")
    if row.execution_duration is not None:
        _int(row.execution_duration, INT64_MIN, INT64_MAX, where, "execution_duration")


def _check_span(span: SpanRow, where: str, bounds: TimeBounds | None) -> None:
    _id(span.trace_id, where, "trace_id")
    _id(span.span_id, where, "span_id")
    if span.parent_id is not None:
        _id(span.parent_id, where, "parent_id", allow_empty=True)
    _text(str(span.span_type or ""), MAX_SPAN_TYPE_CHARS, where, "span_type")
    if str(span.status_code).upper() not in _SPAN_STATUSES:
        raise InvalidArgumentError(
            f"{where}: status_code {str(span.status_code)[:20]!r} is not one of {_SPAN_STATUSES}."
        )
    _int(span.start_time_ns, INT64_MIN, INT64_MAX, where, "start_time_ns")
    if bounds is not None:
        bounds.check_ns(span.start_time_ns, where, "start_time_ns")
    if span.end_time_ns is not None:
        _int(span.end_time_ns, INT64_MIN, INT64_MAX, where, "end_time_ns")
        if bounds is not None:
            bounds.check_ns(span.end_time_ns, where, "end_time_ns")
    for field in ("input_tokens", "output_tokens", "total_tokens"):
        value = getattr(span, field)
        if value is not None:
            _int(value, 0, MAX_TOKENS, where, field)


def _id(value: object, where: str, field: str, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise InvalidArgumentError(f"{where}: {field} must be a non-empty string.")
    if len(value) > MAX_ID_CHARS:
        raise InvalidArgumentError(
            f"{where}: {field} has {len(value)} characters; at most {MAX_ID_CHARS} are stored."
        )


def _text(value: object, limit: int, where: str, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{where}: {field} must be a string.")
    if len(value) > limit:
        raise InvalidArgumentError(
            f"{where}: {field} has {len(value)} characters; at most {limit} are stored."
        )


def _int(value: object, low: int, high: int, where: str, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(
            f"{where}: {field} must be an integer from {low} to {high}, got {str(value)[:30]}."
        )


# --- text the store cleans ---------------------------------------------------------------


def clean_text(value: str) -> str:
    """Text every back end stores: NUL characters and lone surrogates become U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii() and SURROGATE.search(value):
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def unclean(text: str) -> bool:
    """Whether ``clean_text`` would change ``text``."""
    return "\x00" in text or (not text.isascii() and SURROGATE.search(text) is not None)


def unclean_count(traces: Iterable[TraceRow], spans: Iterable[SpanRow]) -> int:
    """Spans whose name, message, type or attributes the store will clean (NUL characters
    and lone surrogates stored as U+FFFD), counting a trace whose own texts (tags, metadata,
    previews) need it as one more span unless one of its spans was counted already."""
    affected: set[str] = set()
    count = 0
    for span in spans:
        attributes = span.attributes_json
        if unclean(span.name + span.status_message + str(span.span_type)) or (
            "\\u" in attributes and ESCAPED_UNSTORABLE.search(attributes) is not None
        ):
            count += 1
            affected.add(span.trace_id)
    for row in traces:
        if row.trace_id in affected:
            continue
        texts = [row.name or "", row.request_preview or "", row.response_preview or ""]
        texts += [row.client_request_id or "", *row.tags, *row.tags.values()]
        texts += [*row.metadata, *row.metadata.values()]
        if unclean("".join(texts)):
            count += 1
    return count
