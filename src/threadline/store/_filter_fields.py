"""The filter language's fields: identifiers resolved to what they refer to.

``resolve_trace_field`` / ``resolve_run_field`` map an identifier token (``trace.status``,
``tags.<key>``, ``feedback.<name>`` …) to a ``Field``: its kind, its key (a column or a
user's key) and the type of its values, which decides the operators and literals the
parser accepts. An unknown name is a ``FilterSyntaxError`` listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from threadline.store._filter_tokens import Token, _Source

ValueType = Literal["string", "number", "trace_state", "span_status", "run_status", "assessment"]


@dataclass(frozen=True)
class Field:
    """A resolved field: what it refers to (``kind`` + ``key``) and the type of its values."""

    # "trace", "tag", "metadata", "span", "span_attribute", "feedback", "expectation",
    # "run", "param", "run_tag", "metric"
    kind: str
    key: str  # column name or user key
    value_type: ValueType
    text: str  # as written, for messages


FieldResolver = Callable[[Token, _Source], Field]

_TRACE_COLUMNS: dict[str, tuple[str, ValueType]] = {
    "status": ("state", "trace_state"),
    "state": ("state", "trace_state"),
    "timestamp_ms": ("request_time", "number"),
    "execution_time_ms": ("execution_duration", "number"),
    "name": ("name", "string"),
    "request_preview": ("request_preview", "string"),
    "response_preview": ("response_preview", "string"),
    "client_request_id": ("client_request_id", "string"),
}
_SPAN_COLUMNS: dict[str, tuple[str, ValueType]] = {
    "name": ("name", "string"),
    "type": ("span_type", "string"),
    "status": ("status_code", "span_status"),
}
#: ``trace.<name>`` spellings of well-known metadata keys.
_TRACE_METADATA = {"session_id": "session_id", "user": "user"}
TRACE_FIELDS_HELP = (
    "trace.status, trace.state, trace.timestamp_ms, trace.execution_time_ms, trace.name, "
    "trace.request_preview, trace.response_preview, trace.client_request_id (the trace. "
    "prefix is optional), trace.session_id, trace.user, run_id, tags.<key>, "
    "metadata.<key>, span.name, span.type, span.status, span.attributes.<key>, "
    "feedback.<name>, expectation.<name>"
)


def resolve_trace_field(token: Token, src: _Source) -> Field:
    """Map an identifier of the trace filter language to a ``Field``."""
    segments: tuple[str, ...] = token.value
    head = segments[0].lower()
    rest = segments[1:]
    if len(segments) == 1 and head == "run_id":
        return Field("trace", "run_id", "string", token.text)
    if len(segments) == 1 and head in _TRACE_COLUMNS:
        column, value_type = _TRACE_COLUMNS[head]
        return Field("trace", column, value_type, token.text)
    if head == "trace" and len(rest) == 1 and rest[0].lower() in _TRACE_COLUMNS:
        column, value_type = _TRACE_COLUMNS[rest[0].lower()]
        return Field("trace", column, value_type, token.text)
    if head == "trace" and len(rest) == 1 and rest[0].lower() in _TRACE_METADATA:
        return Field("metadata", _TRACE_METADATA[rest[0].lower()], "string", token.text)
    if head in ("feedback", "expectation") and rest:
        return Field(head, ".".join(rest), "assessment", token.text)
    if head in ("tags", "metadata") and rest:
        key = ".".join(rest)
        if head == "metadata" and key == "run_id":
            return Field("trace", "run_id", "string", token.text)
        return Field("tag" if head == "tags" else "metadata", key, "string", token.text)
    if head == "span" and len(rest) == 1 and rest[0].lower() in _SPAN_COLUMNS:
        column, value_type = _SPAN_COLUMNS[rest[0].lower()]
        return Field("span", column, value_type, token.text)
    if head == "span" and len(rest) >= 2 and rest[0].lower() == "attributes":
        return Field("span_attribute", ".".join(rest[1:]), "string", token.text)
    raise src.error(
        f"unknown field {token.text!r}; valid fields are {TRACE_FIELDS_HELP}",
        token=token.text,
        position=token.position,
    )


_RUN_COLUMNS: dict[str, tuple[str, ValueType]] = {
    "status": ("status", "run_status"),
    "run_name": ("run_name", "string"),
    "run_id": ("run_id", "string"),
    "start_time": ("start_time", "number"),
    "end_time": ("end_time", "number"),
}
_RUN_PREFIXES: dict[str, tuple[str, ValueType]] = {
    "params": ("param", "string"),
    "tags": ("run_tag", "string"),
    "metrics": ("metric", "number"),
}
RUN_FIELDS_HELP = (
    "status, run_name, run_id, start_time, end_time, params.<key>, tags.<key>, metrics.<key>"
)


def resolve_run_field(token: Token, src: _Source) -> Field:
    """Map an identifier of the run filter language to a ``Field``."""
    segments: tuple[str, ...] = token.value
    head = segments[0].lower()
    if head == "attributes" and len(segments) == 2:  # MLflow spelling: attributes.status
        head = segments[1].lower()
        segments = (segments[1],)
    if len(segments) == 1 and head in _RUN_COLUMNS:
        column, value_type = _RUN_COLUMNS[head]
        return Field("run", column, value_type, token.text)
    if head in _RUN_PREFIXES and len(segments) > 1:
        kind, value_type = _RUN_PREFIXES[head]
        return Field(kind, ".".join(segments[1:]), value_type, token.text)
    raise src.error(
        f"unknown field {token.text!r}; valid fields are {RUN_FIELDS_HELP}",
        token=token.text,
        position=token.position,
    )
