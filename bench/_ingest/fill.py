"""Fill a threadline store quickly with ``store.log_batch`` (no server involved).

``python -m _ingest.fill --uri sqlite:///… --traces N`` writes N traces of 10 spans in
experiment "0", plus one trace of 5,000 spans, and prints one JSON line with the ids to
query. Trace ``i`` has tag ``env`` = prod/dev/staging/test (a quarter each) and its
child spans the attribute ``model`` = ``m<i % 100>``, so ``span.attributes.model = 'm7'``
matches 1% of the traces. Trace ``i`` belongs to session ``s-<i // 10>`` (ten turns each:
10,000 sessions at 100,000 traces) of user ``u-<i % 97>``, and has one feedback
``quality`` = ``(i * 7919 % 1000) / 1000`` (so ``feedback.quality > 0.5`` matches about
half), written straight into the assessments table in batches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from threadline.entities.assessment import AssessmentSource, Feedback
from threadline.store import SpanRow, TraceRow, get_store
from threadline.store import tables as t
from threadline.store.sql._assessment_rows import new_assessment_id, row_values

ENVS = ("prod", "dev", "staging", "test")
BATCH_TRACES = 2_000
BIG_TRACE_SPANS = 5_000


def _span(trace_id: str, n: int, parent: str | None, start_ns: int, attrs: str) -> SpanRow:
    return SpanRow(
        trace_id=trace_id,
        span_id=f"{n:016x}",
        parent_id=parent,
        name="agent" if parent is None else "step",
        span_type="CHAIN" if parent is None else "LLM",
        start_time_ns=start_ns + n,
        end_time_ns=start_ns + 1_000_000,
        status_code="OK",
        status_message="",
        inputs_json=json.dumps({"x": {"q": n, "tag": "a"}}),
        outputs_json=json.dumps({"answer": n, "ok": True}),
        attributes_json=attrs,
        events_json="[]",
    )


def _trace(i: int, spans: int, start_ms: int) -> tuple[TraceRow, list[SpanRow]]:
    trace_id = f"tr-{i:032x}"
    start_ns = start_ms * 1_000_000
    row = TraceRow(
        trace_id=trace_id,
        experiment_id="0",
        request_time=start_ms,
        state="OK",
        execution_duration=1,
        name="agent",
        request_preview='{"n": 1}',
        response_preview='{"ok": true}',
        tags={"env": ENVS[i % len(ENVS)]},
        metadata={"session_id": f"s-{i // 10}", "user": f"u-{i % 97}"},
    )
    root = f"{1:016x}"
    child_attrs = json.dumps({"model": f"m{i % 100}", "temperature": 0.1})
    rows = [_span(trace_id, 1, None, start_ns, "{}")]
    rows += [_span(trace_id, n, root, start_ns, child_attrs) for n in range(2, spans + 1)]
    return row, rows


def _fill_feedback(store: object, first: int, end: int) -> None:
    """One feedback per trace, inserted in batches (the store logs one at a time)."""
    engine = store.engine  # type: ignore[attr-defined]
    judge = AssessmentSource("LLM_JUDGE", "bench-judge")
    now = int(time.time() * 1000)
    for lo in range(first, end, BATCH_TRACES * 5):
        rows = [
            row_values(
                Feedback(name="quality", value=(i * 7919 % 1000) / 1000, source=judge),
                f"tr-{i:032x}",
                new_assessment_id(),
                now,
            )
            for i in range(lo, min(lo + BATCH_TRACES * 5, end))
        ]
        with engine.begin() as conn:
            conn.execute(t.assessments.insert(), rows)


def main() -> int:
    """Write the traces in batches; print ids and timing as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--traces", type=int, required=True)
    parser.add_argument("--first", type=int, default=1, help="index of the first trace")
    args = parser.parse_args()
    store = get_store(args.uri)
    start = time.perf_counter()
    base_ms = int(time.time() * 1000) - 10 * 86_400_000
    end = args.first + args.traces
    for lo in range(args.first, end, BATCH_TRACES):
        traces, spans = [], []
        for i in range(lo, min(lo + BATCH_TRACES, end)):
            row, rows = _trace(i, 10, base_ms + i)
            traces.append(row)
            spans += rows
        store.log_batch(traces, spans)
    big_row, big_spans = _trace(0, BIG_TRACE_SPANS, base_ms)
    big_row.tags = {"env": "bulk"}  # kept out of the tag-filtered pages
    big_row.metadata = {}
    store.log_batch([big_row], big_spans)
    traces_done = time.perf_counter()
    _fill_feedback(store, args.first, end)
    result = {
        "traces": args.traces,
        "seconds": time.perf_counter() - start,
        "trace_seconds": traces_done - start,
        "assessments": end - args.first,
        "base_ms": base_ms,
        "small_trace_id": f"tr-{args.first + 7:032x}",
        "big_trace_id": big_row.trace_id,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
