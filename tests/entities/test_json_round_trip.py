"""Entities survive to_json/from_json unchanged (property-based)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from threadline.entities.experiment import Experiment
from threadline.entities.run import Run, RunData, RunInfo
from threadline.entities.span import Span, SpanEvent, SpanStatus
from threadline.entities.trace import Trace, TraceData, TraceInfo, TraceState
from threadline.entities.trace_location import ExperimentLocation

text = st.text(max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
hex16 = st.integers(1, 2**64 - 1).map(lambda n: "%016x" % n)
events = st.builds(
    SpanEvent,
    name=text,
    timestamp_ns=st.integers(0, 2**62),
    attributes=st.dictionaries(text, json_values, max_size=3),
)
spans = st.builds(
    Span,
    trace_id=st.integers(1, 2**128 - 1).map(lambda n: "tr-%032x" % n),
    span_id=hex16,
    parent_id=st.none() | hex16,
    name=text,
    span_type=st.sampled_from(["LLM", "TOOL", "CHAIN", "custom"]),
    start_time_ns=st.integers(0, 2**62),
    end_time_ns=st.none() | st.integers(0, 2**62),
    status=st.builds(SpanStatus, st.sampled_from(["OK", "ERROR", "UNSET"]), text),
    inputs=json_values,
    outputs=json_values,
    attributes=st.dictionaries(text, json_values, max_size=4),
    events=st.lists(events, max_size=3),
)
infos = st.builds(
    TraceInfo,
    trace_id=text,
    experiment_id=st.integers(0, 10**6).map(str),
    request_time=st.integers(0, 2**45),
    execution_duration=st.none() | st.integers(0, 2**40),
    state=st.sampled_from(list(TraceState)),
    request_preview=st.none() | text,
    response_preview=st.none() | text,
    client_request_id=st.none() | text,
    tags=st.dictionaries(text, text, max_size=3),
    trace_metadata=st.dictionaries(text, text, max_size=3),
)


@given(infos, st.lists(spans, max_size=5))
def test_trace_round_trips_through_json(info, span_list):
    trace = Trace(info, TraceData(span_list))
    text_form = trace.to_json()
    assert Trace.from_json(text_form) == trace
    assert json.loads(text_form)["info"]["state"] in ("OK", "ERROR", "IN_PROGRESS")


@given(spans)
def test_span_round_trips_through_dict(span):
    assert Span.from_dict(json.loads(json.dumps(span.to_dict()))) == span


@given(st.builds(Experiment, experiment_id=st.integers(0, 999).map(str), name=text))
def test_experiment_round_trip(experiment):
    assert Experiment.from_dict(json.loads(json.dumps(experiment.to_dict()))) == experiment


@given(st.builds(RunInfo, run_id=text, experiment_id=text, run_name=text), st.builds(RunData))
def test_run_round_trip(info, data):
    run = Run(info, data)
    assert Run.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_value_objects_are_immutable_and_validated():
    location = ExperimentLocation(1234)
    assert location.experiment_id == "1234" and location == ExperimentLocation("1234")
    for obj, attr in ((location, "experiment_id"), (SpanStatus("OK"), "status_code")):
        try:
            setattr(obj, attr, "x")
        except AttributeError:
            pass
        else:
            raise AssertionError(f"{obj!r} should be immutable")
    for bad in (lambda: ExperimentLocation(""), lambda: SpanStatus("MAYBE")):
        try:
            bad()
        except ValueError:
            pass
        else:
            raise AssertionError("expected ValueError")
