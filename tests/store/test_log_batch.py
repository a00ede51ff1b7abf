"""Writing traces and spans (``log_batch``) and reading them back (``get_trace``)."""

from __future__ import annotations

import dataclasses
import json
import math
import threading

import pytest
import sqlalchemy as sa

from tests.store._factory import BASE_MS, sid, simple_trace, span_row, tid, trace_row
from threadline.entities.span import SpanEvent, SpanStatus
from threadline.entities.trace import TraceState
from threadline.errors import InvalidArgumentError
from threadline.store import tables as t
from threadline.store.sql import SqlStore, searchable_attributes


def count(store: SqlStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_insert_and_read_back(store: SqlStore) -> None:
    row, spans = simple_trace(
        1,
        request_preview="question 1",
        response_preview="answer 1",
        client_request_id="req-1",
        tags={"env": "prod"},
        metadata={"user": "alice"},
    )
    store.log_batch([row], spans)
    trace = store.get_trace(tid(1))
    assert trace is not None
    info = trace.info
    assert (info.trace_id, info.experiment_id, info.request_time) == (tid(1), "0", BASE_MS + 1000)
    assert (info.state, info.execution_duration, info.name) == (TraceState.OK, 100, "root-1")
    assert (info.request_preview, info.response_preview) == ("question 1", "answer 1")
    assert info.client_request_id == "req-1"
    assert info.tags == {"env": "prod"}
    assert info.trace_metadata["user"] == "alice"
    assert [s.name for s in trace.data.spans] == ["root-1", "llm"]
    assert store.get_trace_info(tid(1)) == info


def test_get_trace_of_an_unknown_id_is_none(store: SqlStore) -> None:
    assert store.get_trace(tid(404)) is None
    assert store.get_trace_info(tid(404)) is None


def test_empty_batch_is_a_no_op(store: SqlStore) -> None:
    store.log_batch([], [])
    assert count(store, t.traces) == 0


def test_reapplying_a_batch_changes_nothing(store: SqlStore) -> None:
    row, spans = simple_trace(1, tags={"a": "1"}, metadata={"m": "1"})
    store.log_batch([row], spans)
    first = store.get_trace(tid(1))
    store.log_batch([row], spans)
    assert store.get_trace(tid(1)) == first
    assert (count(store, t.traces), count(store, t.spans), count(store, t.trace_tags)) == (1, 2, 1)


def test_in_progress_then_ok(store: SqlStore) -> None:
    started = trace_row(1, state="IN_PROGRESS", execution_duration=None, tags={"a": "1"})
    store.log_batch([started], [])
    info = store.get_trace_info(tid(1))
    assert info is not None and info.state == TraceState.IN_PROGRESS
    assert info.execution_duration is None
    finished = trace_row(1, state="OK", execution_duration=250, response_preview="done")
    store.log_batch([finished], [])
    info = store.get_trace_info(tid(1))
    assert info is not None
    assert (info.state, info.execution_duration, info.response_preview) == ("OK", 250, "done")
    assert info.tags == {"a": "1"}


def test_a_late_in_progress_row_never_overwrites_a_final_state(store: SqlStore) -> None:
    final = trace_row(
        1, state="ERROR", execution_duration=9, request_preview="final", tags={"k": "new"}
    )
    store.log_batch([final], [])
    late = trace_row(
        1,
        state="IN_PROGRESS",
        execution_duration=None,
        request_preview="stale",
        tags={"k": "old", "extra": "x"},
        metadata={"late": "yes"},
    )
    store.log_batch([late], [])
    info = store.get_trace_info(tid(1))
    assert info is not None
    assert (info.state, info.execution_duration, info.request_preview) == ("ERROR", 9, "final")
    assert info.tags == {"k": "new", "extra": "x"}  # stale tags only fill gaps
    assert info.trace_metadata["late"] == "yes"


@pytest.mark.parametrize("final_first", [False, True])
def test_start_and_end_rows_in_one_batch(store: SqlStore, final_first: bool) -> None:
    started = trace_row(1, state="IN_PROGRESS", execution_duration=None, tags={"t": "start"})
    finished = trace_row(1, state="OK", execution_duration=7, tags={"t": "end"})
    rows = [finished, started] if final_first else [started, finished]
    store.log_batch(rows, [])
    info = store.get_trace_info(tid(1))
    assert info is not None
    assert (info.state, info.execution_duration, info.tags) == ("OK", 7, {"t": "end"})


def test_tags_merge_with_incoming_keys_winning(store: SqlStore) -> None:
    store.log_batch([trace_row(1, state="IN_PROGRESS", tags={"a": "1", "b": "1"})], [])
    store.log_batch([trace_row(1, tags={"b": "2", "c": "2"})], [])
    info = store.get_trace_info(tid(1))
    assert info is not None and info.tags == {"a": "1", "b": "2", "c": "2"}


def test_metadata_is_written_once(store: SqlStore) -> None:
    store.log_batch([trace_row(1, state="IN_PROGRESS", metadata={"user": "u1"})], [])
    store.log_batch([trace_row(1, metadata={"user": "u2", "session_id": "s"})], [])
    info = store.get_trace_info(tid(1))
    assert info is not None
    assert info.trace_metadata == {"user": "u1", "session_id": "s"}


def test_run_id_is_a_column_and_metadata(store: SqlStore) -> None:
    store.log_batch(
        [trace_row(1, run_id="r" * 32), trace_row(2, metadata={"run_id": "q" * 32})], []
    )
    first, second = store.get_trace_info(tid(1)), store.get_trace_info(tid(2))
    assert first is not None and second is not None
    assert first.run_id == "r" * 32 and first.trace_metadata == {"run_id": "r" * 32}
    assert second.run_id == "q" * 32
    traces, _ = store.search_traces(run_id="q" * 32)
    assert [x.info.trace_id for x in traces] == [tid(2)]


def test_token_totals_are_summed_from_spans_across_batches(store: SqlStore) -> None:
    row = trace_row(1)
    root = span_row(1, 0, name="root-1")
    first = span_row(1, 1, parent=0, name="llm-a", tokens=(10, 5, 15))
    second = span_row(1, 2, parent=0, name="llm-b", tokens=(7, 3, None))
    store.log_batch([row], [root, first])
    store.log_batch([], [second])
    info = store.get_trace_info(tid(1))
    assert info is not None
    assert info.trace_metadata["token_usage"] == (
        '{"input_tokens": 17, "output_tokens": 8, "total_tokens": 25}'
    )
    assert info.token_usage == {"input_tokens": 17, "output_tokens": 8, "total_tokens": 25}


def test_no_token_usage_without_token_counts(store: SqlStore) -> None:
    store.log_batch([trace_row(1)], [span_row(1, 0)])
    info = store.get_trace_info(tid(1))
    assert info is not None and "token_usage" not in info.trace_metadata


def test_spans_of_an_unknown_trace_create_an_in_progress_row(store: SqlStore) -> None:
    early = span_row(1, 2, parent=0, name="child", start_ns=(BASE_MS + 5) * 1_000_000 + 999)
    root = span_row(1, 0, name="the-root", start_ns=(BASE_MS + 9) * 1_000_000)
    store.log_batch([], [root, early])
    info = store.get_trace_info(tid(1))
    assert info is not None
    assert (info.state, info.experiment_id, info.request_time) == ("IN_PROGRESS", "0", BASE_MS + 5)
    assert info.name == "the-root"
    store.log_batch([trace_row(1, experiment_id="5", name="final-name")], [])
    info = store.get_trace_info(tid(1))
    assert info is not None
    assert (info.state, info.experiment_id, info.name) == ("OK", "5", "final-name")


def test_an_unknown_experiment_is_created_on_the_fly(store: SqlStore) -> None:
    store.log_batch([trace_row(1, experiment_id="42")], [])
    experiment = store.get_experiment("42")
    assert experiment.name == "experiment-42"
    assert store.create_experiment("next") == "43"


def test_an_on_the_fly_experiment_whose_name_is_taken_gets_a_suffix(store: SqlStore) -> None:
    store.create_experiment("experiment-77")
    store.log_batch([trace_row(1, experiment_id="77")], [])
    assert store.get_experiment("77").name.startswith("experiment-77-")


def test_span_payloads_round_trip(store: SqlStore) -> None:
    event = SpanEvent("exception", 123, {"exception.type": "ValueError", "nested": {"x": [1, 2]}})
    span = span_row(
        1,
        0,
        name="root",
        span_type="AGENT",
        status="ERROR",
        status_message="boom",
        inputs={"question": "why?", "n": [1, 2.5, None, True]},
        outputs=["a", {"b": "ü 中文 🎉"}],
        attributes={"gen_ai.model": "gpt", "temperature": 0.2, "flags": {"a": True}},
        events=[event.to_dict()],
    )
    store.log_batch([trace_row(1)], [span])
    trace = store.get_trace(tid(1))
    assert trace is not None
    (got,) = trace.data.spans
    assert (got.trace_id, got.span_id, got.parent_id) == (tid(1), sid(1000), None)
    assert (got.name, got.span_type) == ("root", "AGENT")
    assert got.status == SpanStatus("ERROR", "boom")
    assert got.inputs == {"question": "why?", "n": [1, 2.5, None, True]}
    assert got.outputs == ["a", {"b": "ü 中文 🎉"}]
    assert got.attributes == {"gen_ai.model": "gpt", "temperature": 0.2, "flags": {"a": True}}
    assert got.events == [event]
    assert (got.start_time_ns, got.end_time_ns) == (span.start_time_ns, span.end_time_ns)


def test_an_open_span_has_no_end_time(store: SqlStore) -> None:
    span = span_row(1, 0)
    open_span = dataclasses.replace(span, end_time_ns=None)
    store.log_batch([], [open_span])
    trace = store.get_trace(tid(1))
    assert trace is not None and trace.data.spans[0].end_time_ns is None


def test_spans_come_back_by_start_time_with_parents_first_on_ties(store: SqlStore) -> None:
    same = (BASE_MS + 1000) * 1_000_000
    spans = [
        span_row(1, 3, parent=2, name="grandchild", start_ns=same),
        span_row(1, 4, parent=0, name="late", start_ns=same + 50),
        span_row(1, 2, parent=0, name="child", start_ns=same),
        span_row(1, 0, name="root", start_ns=same),
    ]
    store.log_batch([trace_row(1)], spans)
    trace = store.get_trace(tid(1))
    assert trace is not None
    assert [s.name for s in trace.data.spans] == ["root", "child", "grandchild", "late"]


def test_a_resent_span_replaces_the_stored_one(store: SqlStore) -> None:
    store.log_batch([], [span_row(1, 0, status="UNSET", outputs=None)])
    store.log_batch([], [span_row(1, 0, status="OK", outputs="final")])
    trace = store.get_trace(tid(1))
    assert trace is not None
    assert [(s.status.status_code, s.outputs) for s in trace.data.spans] == [("OK", "final")]


def test_an_invalid_trace_state_is_refused(store: SqlStore) -> None:
    with pytest.raises(InvalidArgumentError, match="state 'DONE'"):
        store.log_batch([trace_row(1, state="DONE")], [])
    assert count(store, t.traces) == 0


def test_text_no_database_accepts_is_stored_with_replacement_characters(store: SqlStore) -> None:
    span = span_row(1, 0, name="nul\x00name")
    span = type(span)(
        **{
            **dataclasses.asdict(span),
            "attributes_json": '{"x": NaN, "y": "a\\u0000b", "z": Infinity}',
        }
    )
    row = trace_row(1, name="bad\x00name", tags={"k\x00": "v\ud800"})
    store.log_batch([row], [span])
    trace = store.get_trace(tid(1))
    assert trace is not None
    assert trace.info.name == "bad\ufffdname"
    assert trace.info.tags == {"k\ufffd": "v\ufffd"}
    assert trace.data.spans[0].name == "nul\ufffdname"
    assert trace.data.spans[0].attributes == {"x": "NaN", "y": "a\ufffdb", "z": "Infinity"}
    found, _ = store.search_traces(filter_string="span.attributes.x = 'NaN'")
    assert len(found) == 1


def test_only_the_span_with_bad_text_is_cleaned_in_a_batch(store: SqlStore) -> None:
    """Texts are checked for the whole span at once; a clean span next to a bad one (a lone
    surrogate in its outputs, a NUL in its message, non-ASCII text) keeps every character."""
    row, (root, child) = simple_trace(1)
    child = dataclasses.replace(
        child,
        status_message="bad\x00message",
        outputs_json='"out\ud800put"',
        name="schritt-\u00fc",
    )
    root = dataclasses.replace(root, inputs_json='{"frage": "gr\u00fc\u00df dich \u4f60\u597d"}')
    store.log_batch([row], [root, child])
    trace = store.get_trace(tid(1))
    assert trace is not None
    stored_root, stored_child = trace.data.spans
    assert stored_root.inputs == {"frage": "gr\u00fc\u00df dich \u4f60\u597d"}
    assert stored_child.name == "schritt-\u00fc"
    assert stored_child.status.description == "bad\ufffdmessage"
    assert stored_child.outputs == "out\ufffdput"


def test_an_empty_parent_id_makes_a_root_span(store: SqlStore) -> None:
    row, (root, _child) = simple_trace(1)
    store.log_batch([row], [dataclasses.replace(root, parent_id="")])
    trace = store.get_trace(tid(1))
    assert trace is not None and trace.data.spans[0].parent_id is None


@pytest.mark.parametrize("field", ["trace_id", "span_id"])
def test_a_span_row_without_its_ids_is_refused_and_nothing_is_written(
    store: SqlStore, field: str
) -> None:
    row, (root, child) = simple_trace(1)
    with pytest.raises(InvalidArgumentError, match="needs a trace id and a span id"):
        store.log_batch([row], [root, dataclasses.replace(child, **{field: ""})])
    assert count(store, t.traces) == 0 and count(store, t.spans) == 0


def test_searchable_attributes_keeps_strict_json_untouched() -> None:
    text = '{"a": 1.5, "b": "text", "c": [true, null]}'
    assert searchable_attributes(text) is text
    assert json.loads(searchable_attributes("not json")) == {"threadline.unparsed": "not json"}
    assert json.loads(searchable_attributes("[1, 2]")) == {"threadline.unparsed": "[1, 2]"}
    assert json.loads(searchable_attributes('{"n": -Infinity}')) == {"n": "-Infinity"}
    assert not math.isnan(json.loads(searchable_attributes('{"n": 1}'))["n"])


def test_a_batch_of_hundreds_of_spans_is_one_transaction(store: SqlStore) -> None:
    rows, spans = [], []
    for n in range(1, 61):
        row, pair = simple_trace(n)
        rows.append(row)
        spans += pair + [span_row(n, i, parent=0, name=f"tool-{i}") for i in range(2, 7)]
    store.log_batch(rows, spans)
    assert (count(store, t.traces), count(store, t.spans)) == (60, 420)
    info = store.get_trace_info(tid(60))
    assert info is not None and info.token_usage == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
    }


def test_writers_and_readers_on_several_threads(store: SqlStore) -> None:
    errors: list[BaseException] = []

    def write(start: int) -> None:
        try:
            for n in range(start, start + 10):
                row, spans = simple_trace(n)
                store.log_batch([row], spans)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(10):
                store.search_traces(filter_string="span.type = 'LLM'", max_results=5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i * 100,)) for i in range(1, 5)]
    threads += [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(store, t.traces) == 40
