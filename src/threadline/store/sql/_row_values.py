"""Rows in and out: incoming trace and span rows made storable (validated, cleaned, merged,
turned into column values), and stored JSON text back to values. Pure: no SQL runs here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import operator
from collections.abc import Iterable
from typing import Any

from threadline import _json as fast_json
from threadline.entities.experiment import LifecycleStage
from threadline.entities.span import SpanStatusCode
from threadline.entities.trace import TraceMetadataKey
from threadline.errors import InvalidArgumentError
from threadline.store import tables as t
from threadline.store.base import SpanRow, TraceRow
from threadline.store.row_checks import ESCAPED_UNSTORABLE, SURROGATE, clean_text, unclean
from threadline.store.sql._engine import now_ms

logger = logging.getLogger(__name__)

_FINAL_STATES = ("OK", "ERROR")
_TRACE_STATES = ("OK", "ERROR", "IN_PROGRESS")


def _risky_json(text: str) -> bool:
    """Whether JSON readers in SQL would reject or mangle ``text``: NaN/Infinity, ``\\u0000``,
    lone surrogates. Substring tests first: a regex alternation is slow on long text."""
    if "NaN" in text or "Infinity" in text:
        return True
    if "\\u" in text and ESCAPED_UNSTORABLE.search(text) is not None:
        return True
    return not text.isascii() and SURROGATE.search(text) is not None


def _loads(text: str | None) -> Any:
    """Stored JSON text back to values (text that is not JSON comes back as it is)."""
    return None if text is None else fast_json.stored_value(text)


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else clean_text(str(value))


def searchable_attributes(text: str) -> str:
    """Attributes as a strict JSON object that SQL JSON functions read on both back ends.

    Valid, strict JSON passes through untouched (the common case). NaN/Infinity become
    strings, ``\\u0000`` and lone surrogates become U+FFFD, and text that is not a JSON
    object is kept under ``threadline.unparsed`` rather than dropped.
    """
    if text == "{}":
        return text
    try:
        value = fast_json.loads(text)
    except (ValueError, TypeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        logger.debug("Span attributes are not a JSON object; keeping them as text")
        return json.dumps({"threadline.unparsed": clean_text(str(text))}, ensure_ascii=False)
    if not _risky_json(text):
        return text
    return json.dumps(_strict_json(value), ensure_ascii=False, separators=(",", ":"))


def _strict_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {clean_text(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    return value


def _merge_trace_rows(rows: Iterable[TraceRow]) -> dict[str, TraceRow]:
    """One cleaned row per trace id, applying the upsert rules to rows of the same batch."""
    merged: dict[str, TraceRow] = {}
    for row in rows:
        row = _clean_trace_row(row)
        previous = merged.get(row.trace_id)
        merged[row.trace_id] = row if previous is None else _merge_two(previous, row)
    return merged


def _merge_two(old: TraceRow, new: TraceRow) -> TraceRow:
    if new.state == "IN_PROGRESS" and old.state in _FINAL_STATES:
        return dataclasses.replace(
            old, tags={**new.tags, **old.tags}, metadata={**new.metadata, **old.metadata}
        )
    updates = {
        f.name: getattr(new, f.name)
        for f in dataclasses.fields(new)
        if getattr(new, f.name) is not None and f.name not in ("tags", "metadata")
    }
    updates["tags"] = {**old.tags, **new.tags}
    updates["metadata"] = {**new.metadata, **old.metadata}
    return dataclasses.replace(old, **updates)


def _clean_trace_row(row: TraceRow) -> TraceRow:
    """Validate the state, move ``run_id`` out of metadata, make text storable."""
    state = str(getattr(row.state, "value", row.state))
    if state not in _TRACE_STATES:
        raise InvalidArgumentError(
            f"Trace {row.trace_id!r} has state {row.state!r}; use one of {', '.join(_TRACE_STATES)}."
        )
    metadata = _clean_mapping(row.metadata)
    run_id = row.run_id or metadata.get(TraceMetadataKey.RUN_ID)
    metadata.pop(TraceMetadataKey.RUN_ID, None)
    return dataclasses.replace(
        row,
        trace_id=clean_text(row.trace_id),
        experiment_id=clean_text(str(row.experiment_id)),
        request_time=int(row.request_time),
        state=state,
        execution_duration=None if row.execution_duration is None else int(row.execution_duration),
        name=_clean_optional(row.name),
        request_preview=_clean_optional(row.request_preview),
        response_preview=_clean_optional(row.response_preview),
        client_request_id=_clean_optional(row.client_request_id),
        run_id=_clean_optional(run_id),
        tags=_clean_mapping(row.tags),
        metadata=metadata,
    )


def _clean_mapping(values: dict[str, str]) -> dict[str, str]:
    """Storable keys (at most ``MAX_KEY_LENGTH`` characters) and text values."""
    return {
        clean_text(str(k))[: t.MAX_KEY_LENGTH]: clean_text(str(v))
        for k, v in (values or {}).items()
    }


def _trace_values(row: TraceRow) -> dict[str, Any]:
    return {
        "trace_id": row.trace_id,
        "experiment_id": row.experiment_id,
        "request_time": row.request_time,
        "execution_duration": row.execution_duration,
        "state": row.state,
        "name": row.name,
        "request_preview": row.request_preview,
        "response_preview": row.response_preview,
        "client_request_id": row.client_request_id,
        "run_id": row.run_id,
    }


#: The span columns in table order: the order of ``_span_params`` tuples.
SPAN_COLUMNS: tuple[str, ...] = tuple(column.name for column in t.spans.columns)

_COL_TRACE_ID, _COL_PARENT_ID, _COL_START_TIME, _COL_ATTRIBUTES = (
    SPAN_COLUMNS.index(name) for name in ("trace_id", "parent_id", "start_time_ns", "attributes")
)

_IDS = operator.itemgetter(0, 1)  # (trace_id, span_id): the primary key, the write order


def _span_params(span: SpanRow) -> tuple[Any, ...]:
    """A span's column values as stored, in ``SPAN_COLUMNS`` order.

    Runs once per written span, so the texts are checked for NUL characters and lone
    surrogates in one pass over all of them; only a span that has some is cleaned field
    by field.
    """
    code = str(span.status_code).upper()
    texts: tuple[str, ...] = (
        span.trace_id,
        span.span_id,
        span.parent_id or "",
        span.name if type(span.name) is str else str(span.name),
        str(span.span_type or "UNKNOWN"),
        span.status_message or "",
        span.inputs_json or "null",
        span.outputs_json or "null",
        span.events_json or "[]",
    )
    try:
        joined = "".join(texts)
    except TypeError:  # not text: cleaned field by field below, which says what is wrong
        joined = "\x00"
    if unclean(joined):
        texts = tuple(_clean_optional(text) or "" for text in texts)
    trace_id, span_id, parent_id, name, span_type, message, inputs, outputs, events = texts
    if not trace_id or not span_id:
        raise InvalidArgumentError(
            f"A span row needs a trace id and a span id, got {trace_id!r} and {span_id!r}."
        )
    return (
        trace_id,
        span_id,
        parent_id or None,
        name,
        span_type,
        code if code in SpanStatusCode.ALL else SpanStatusCode.UNSET,
        message,
        int(span.start_time_ns),
        None if span.end_time_ns is None else int(span.end_time_ns),
        inputs,
        outputs,
        searchable_attributes(span.attributes_json or "{}"),
        events,
        span.input_tokens,
        span.output_tokens,
        span.total_tokens,
        # Set only by OffloadingStore (an OffloadedSpanRow); NULL for a client's row, so
        # a payload that looks like a reference is never taken for one.
        getattr(span, "artifact_keys", None),
    )


def _kv_rows(owner: str, owner_id: str, values: dict[str, str]) -> list[dict[str, str]]:
    return [{owner: owner_id, "key": k, "value": v} for k, v in sorted(values.items())]


def _experiment_values(experiment_id: str, name: str, artifact_location: str) -> dict[str, Any]:
    now = now_ms()
    number = int(experiment_id) if experiment_id.isdigit() and len(experiment_id) < 19 else None
    return {
        "experiment_id": experiment_id,
        "id_number": number,
        "name": name,
        "artifact_location": artifact_location,
        "lifecycle_stage": LifecycleStage.ACTIVE,
        "creation_time": now,
        "last_update_time": now,
    }
