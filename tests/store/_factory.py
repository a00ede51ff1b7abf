"""Builders of store rows for the store tests: predictable ids, times and payloads."""

from __future__ import annotations

import json
from typing import Any

from threadline.store.base import SpanRow, TraceRow

BASE_MS = 1_700_000_000_000


def tid(n: int) -> str:
    """A trace id in the ``tr-`` + 32 hex form."""
    return f"tr-{n:032x}"


def sid(n: int) -> str:
    """A 16-hex span id."""
    return f"{n:016x}"


def trace_row(
    n: int,
    *,
    experiment_id: str = "0",
    request_time: int | None = None,
    state: str = "OK",
    execution_duration: int | None = 100,
    name: str | None = None,
    **fields: Any,
) -> TraceRow:
    """The row of trace ``n``; ``request_time`` defaults to ``BASE_MS + n * 1000``."""
    return TraceRow(
        trace_id=tid(n),
        experiment_id=experiment_id,
        request_time=BASE_MS + n * 1000 if request_time is None else request_time,
        state=state,
        execution_duration=execution_duration,
        name=name if name is not None else f"root-{n}",
        **fields,
    )


def span_row(
    trace: int,
    n: int,
    *,
    parent: int | None = None,
    name: str = "step",
    span_type: str = "CHAIN",
    start_ns: int | None = None,
    duration_ns: int = 1_000_000,
    status: str = "OK",
    status_message: str = "",
    inputs: Any = None,
    outputs: Any = None,
    attributes: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    tokens: tuple[int | None, int | None, int | None] = (None, None, None),
) -> SpanRow:
    """Span ``n`` of trace ``trace``; starts ``n`` ms after the trace's request time."""
    start = (BASE_MS + trace * 1000 + n) * 1_000_000 if start_ns is None else start_ns
    return SpanRow(
        trace_id=tid(trace),
        span_id=sid(trace * 1000 + n),
        parent_id=None if parent is None else sid(trace * 1000 + parent),
        name=name,
        span_type=span_type,
        start_time_ns=start,
        end_time_ns=start + duration_ns,
        status_code=status,
        status_message=status_message,
        inputs_json=json.dumps(inputs),
        outputs_json=json.dumps(outputs),
        attributes_json=json.dumps(attributes or {}),
        events_json=json.dumps(events or []),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        total_tokens=tokens[2],
    )


def simple_trace(
    n: int, *, experiment_id: str = "0", **fields: Any
) -> tuple[TraceRow, list[SpanRow]]:
    """A finished trace: a CHAIN root ``root-n`` and one LLM child ``llm``."""
    root = span_row(n, 0, name=f"root-{n}", inputs={"q": f"question {n}"}, outputs=f"answer {n}")
    child = span_row(
        n,
        1,
        parent=0,
        name="llm",
        span_type="LLM",
        attributes={"model": "gpt-x", "n": n},
        tokens=(10, 5, 15),
    )
    return trace_row(n, experiment_id=experiment_id, **fields), [root, child]
