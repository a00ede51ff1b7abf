"""Stored span texts of every kind the read path meets, written straight into the tables
(past the write path's cleaning), and the read code as it was before spans parsed lazily:
the oracle that lazy spans and the API's verbatim JSON are checked against."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from threadline import _json as fast_json
from threadline.entities.span import Span, SpanEvent, SpanStatus, SpanStatusCode
from threadline.store import tables as t
from threadline.store.sql import SqlStore

T0 = 1_700_000_000_000_000_000
DEEP_OK = "[" * 200 + "1" + "]" * 200  # nested, readable by every parser
DEEP_TEXT = "[" * 3000 + "]" * 3000  # too deep for any parser: kept as text

#: name -> (inputs, outputs, attributes, events) as stored.
CASES: dict[str, tuple[str, str, str, str]] = {
    "plain": (
        '{"a": [1, 2.5, true, null], "b": "x"}',
        '"answer"',
        '{"model": "m", "t": 0.5}',
        "[]",
    ),
    "spacing": ('{\n  "a" : 1 ,\n "b":[ ]\n}', "  [1, 2]  ", '{ "k" : "v" , "n": -0.0}', "[]"),
    "constants": ("null", "{}", "{}", "[]"),
    "nulls": ("[]", "null", "null", "null"),
    "numbers": ("[-0, 1E3, 0.1e1, 1.0, 3]", "1e-400", '{"k": 1, "k": 2}', "[]"),
    "non_finite": ('{"x": NaN, "y": [Infinity, -Infinity, 1.5]}', "NaN", '{"s": NaN}', "[]"),
    "out_of_range": ("1e400", "[-1e400, 2]", "{}", "[]"),
    "not_json": ("hello world", "{broken", "", "oops"),
    "pairs": ("true", "false", '[["k", 1], ["j", null]]', '{"name": "x"}'),
    "big_ints": (
        '{"n": 123456789012345678901234, "m": -98765432109876543210}',
        "18446744073709551616",
        '{"id": 12345678901234567890}',
        "[]",
    ),
    "big_event": (
        "null",
        "null",
        "{}",
        '[{"name": "e", "timestamp_ns": 1700000000000000000123, "attributes": {"b": 12345678901234567890123}}]',
    ),
    "unicode": (
        '{"s": "caf\u00e9 \u2615 \U0001f600", "e": "\\u00e9\\ud83d\\ude00", "z": "\\u0000"}',
        '"\u65e5\u672c\u8a9e"',
        '{"\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"}',
        "[]",
    ),
    "surrogate": ('"\\ud800"', '{"k": "\\udfff x"}', "{}", "[]"),
    "nested": (DEEP_OK, DEEP_TEXT, '{"a": {"b": {"c": [1, {"d": null}]}}}', "[]"),
    "events": (
        "null",
        '"done"',
        "{}",
        '[{"name": "retry", "timestamp_ns": "7", "attributes": {"n": 1}, "extra": true},'
        ' {"name": "bare", "timestamp_ns": 8}]',
    ),
    "malformed_events": (
        '{"q": 1}',
        '{"a": 2}',
        '{"x": 1}',
        '[{"name": "no time"}, 5, "x", null, {"timestamp_ns": 1},'
        ' {"name": "ok", "timestamp_ns": 2, "attributes": null}]',
    ),
}
#: Cases whose responses orjson cannot write (a lone surrogate, integers beyond 64 bits in
#: parsed values): the API renders them on the standard path, before and after.
FALLBACK_CASES = {"surrogate", "big_event"}


def trace_id(n: int) -> str:
    return f"tr-{n:032x}"


def span_id(n: int) -> str:
    return f"{n:016x}"


def insert_trace(
    store: SqlStore, n: int, spans: Sequence[dict[str, Any]], experiment_id: str = "0"
) -> str:
    """Trace ``n`` with ``spans`` (``spans`` column values; defaults filled in), as stored."""
    tid = trace_id(n)
    rows = [
        {
            "trace_id": tid,
            "parent_id": None,
            "name": f"span-{i}",
            "span_type": "CHAIN",
            "status_code": "OK",
            "status_message": "",
            "start_time_ns": T0 + i,
            "end_time_ns": T0 + i + 10,
            "inputs": "null",
            "outputs": "null",
            "attributes": "{}",
            "events": "[]",
            **span,
        }
        for i, span in enumerate(spans)
    ]
    for i, row in enumerate(rows):
        row.setdefault("span_id", span_id(i + 1))
    with store.engine.begin() as conn:
        conn.execute(
            t.traces.insert().values(
                trace_id=tid,
                experiment_id=experiment_id,
                request_time=T0 // 1_000_000 + n,
                state="OK",
                name=f"trace-{n}",
            )
        )
        conn.execute(t.spans.insert(), rows)
    return tid


def case_span(name: str, **fields: Any) -> dict[str, Any]:
    inputs, outputs, attributes, events = CASES[name]
    return {
        "name": name,
        "inputs": inputs,
        "outputs": outputs,
        "attributes": attributes,
        "events": events,
        **fields,
    }


def raw_rows(store: SqlStore, tid: str) -> list[dict[str, Any]]:
    """The trace's span rows as the old read path fetched them (by start time)."""
    query = (
        t.spans.select()
        .where(t.spans.c.trace_id == tid)
        .order_by(t.spans.c.trace_id, t.spans.c.start_time_ns)
    )
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


# --- the read path before lazy spans (copied from sql.py as it was) ----------------------


def _loads(text: str | None) -> Any:
    return None if text is None else fast_json.stored_value(text)


def _events(text: str) -> list[SpanEvent]:
    events = []
    for item in _loads(text) or []:
        try:
            events.append(SpanEvent.from_dict(item))
        except (KeyError, TypeError, ValueError, AttributeError):
            logging.getLogger(__name__).debug("skipped %r", item)
    return events


def eager_span(row: dict[str, Any]) -> Span:
    code = row["status_code"] if row["status_code"] in SpanStatusCode.ALL else SpanStatusCode.UNSET
    return Span(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_id=row["parent_id"],
        name=row["name"],
        span_type=row["span_type"],
        start_time_ns=row["start_time_ns"],
        end_time_ns=row["end_time_ns"],
        status=SpanStatus(code, row["status_message"] or ""),
        inputs=_loads(row["inputs"]),
        outputs=_loads(row["outputs"]),
        attributes=_loads(row["attributes"]) or {},
        events=_events(row["events"]),
    )


def old_ordered_spans(spans: list[Span]) -> list[Span]:
    parents = {s.span_id: s.parent_id for s in spans}
    depths: dict[str, int] = {}

    def depth(span_id: str) -> int:
        chain: list[str] = []
        node: str | None = span_id
        while node is not None and node in parents and node not in depths and node not in chain:
            chain.append(node)
            node = parents[node]
        level = depths.get(node, -1) if node is not None else -1
        for item in reversed(chain):
            level += 1
            depths[item] = level
        return depths.get(span_id, 0)

    return sorted(spans, key=lambda s: (s.start_time_ns, depth(s.span_id)))


def eager_spans(store: SqlStore, tid: str) -> list[Span]:
    """The trace's spans as the old ``get_trace`` built them."""
    return old_ordered_spans([eager_span(row) for row in raw_rows(store, tid)])


def typed(value: Any) -> Any:
    """``value`` with every number tagged by its type, so ``1`` and ``1.0`` differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    return (type(value).__name__, repr(value))


def same_json(a: bytes | str, b: bytes | str) -> bool:
    """Whether two JSON texts hold the same values (numbers compared with their types)."""
    return bool(typed(json.loads(a)) == typed(json.loads(b)))
