"""Assessments, sessions and overviews: round trips through JSON, and bad input refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threadline.entities.assessment import (
    Assessment,
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    Feedback,
    FeedbackSummary,
)
from threadline.entities.overview import Overview, OverviewBucket
from threadline.entities.session import Session
from threadline.entities.trace import Trace, TraceData, TraceInfo
from threadline.errors import InvalidArgumentError

text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
names = text.filter(lambda s: s.strip() != "")
scalars = (
    st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars | st.none(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=10,
).filter(lambda v: v is not None)
sources = st.builds(
    AssessmentSource,
    source_type=st.sampled_from(["HUMAN", "LLM_JUDGE", "CODE", "ai_judge", "human"]),
    source_id=names,
)
ids = st.none() | st.from_regex(r"[a-z0-9-]{1,40}", fullmatch=True)
times = st.none() | st.integers(0, 2**62)
common = {
    "source": sources,
    "trace_id": ids,
    "metadata": st.dictionaries(text, json_values, max_size=3),
    "span_id": ids,
    "create_time_ms": times,
    "last_update_time_ms": times,
    "assessment_id": ids,
    "run_id": ids,
}
errors = st.builds(AssessmentError, error_code=names, error_message=st.none() | text)
feedback_values = st.builds(
    Feedback,
    name=names,
    value=json_values,
    rationale=st.none() | text,
    overrides=ids,
    valid=st.booleans(),
    **common,
)
feedback_errors = st.builds(Feedback, name=names, error=errors, **common)
expectations = st.builds(Expectation, name=names, value=json_values, **common)
assessments = feedback_values | feedback_errors | expectations


@given(assessments)
def test_assessments_round_trip_through_json(assessment: Assessment) -> None:
    again = Assessment.from_json(assessment.to_json())
    assert again == assessment and type(again) is type(assessment)
    assert Assessment.from_dict(json.loads(json.dumps(assessment.to_dict()))) == assessment


@given(st.lists(assessments, max_size=4))
def test_trace_info_carries_its_assessments_through_json(found: list[Assessment]) -> None:
    trace = Trace(TraceInfo("tr-1", "0", 5, assessments=found), TraceData())
    again = Trace.from_json(trace.to_json())
    assert again.info.assessments == found


def test_a_trace_info_lists_valid_feedback_and_expectations_by_name() -> None:
    old = Feedback(name="q", value=0.1, valid=False)
    new = Feedback(name="q", value=0.9, overrides="a-1")
    info = TraceInfo(
        "tr-1",
        "0",
        5,
        assessments=[
            old,
            new,
            Expectation("answer", {"text": "42"}),
            Expectation("x", 1, valid=False),
        ],
    )
    assert info.feedback == [new]
    assert info.expectations == {"answer": {"text": "42"}}


def test_sessions_and_overviews_round_trip() -> None:
    summary = FeedbackSummary("thumbs", count=2, error_count=1, mean=None, share_true=0.5)
    session = Session(
        session_id="s/1",
        experiment_id="3",
        user="ann",
        first_time_ms=1,
        last_time_ms=9,
        turns=2,
        error_count=1,
        total_tokens=30,
        cost=0.25,
        feedback={"thumbs": summary},
        traces=[TraceInfo("tr-1", "3", 1), TraceInfo("tr-2", "3", 9)],
    )
    assert Session.from_dict(json.loads(json.dumps(session.to_dict()))) == session
    assert session.trace_ids == ["tr-1", "tr-2"]
    assert Session.from_dict(session.to_dict(include_traces=False)).traces == []
    bucket = OverviewBucket(
        0, trace_count=4, error_rate=0.25, latency_p50_ms=3.0, feedback={"thumbs": summary}
    )
    overview = Overview(
        "3", "hour", 0, 7_200_000, "tags.a = 'b'", [bucket, OverviewBucket(3_600_000)], bucket
    )
    data = json.loads(json.dumps(overview.to_dict()))
    assert data["bucket_ms"] == 3_600_000
    assert Overview.from_dict(data) == overview


def test_defaults_follow_mlflow() -> None:
    feedback = Feedback(value=True)
    assert feedback.name == "feedback" and feedback.kind == "feedback"
    assert feedback.source == AssessmentSource(AssessmentSourceType.CODE, "default")
    assert feedback.valid is True and feedback.metadata == {}
    assert Expectation("e", [1, 2]).kind == "expectation"


def test_ai_judge_is_an_alias_of_llm_judge() -> None:
    assert AssessmentSourceType.AI_JUDGE == AssessmentSourceType.LLM_JUDGE
    assert AssessmentSource("AI_JUDGE").source_type == "LLM_JUDGE"
    assert AssessmentSource("human", "u").source_type == "HUMAN"


def test_an_exception_becomes_the_error_of_a_feedback() -> None:
    try:
        raise TimeoutError("the judge did not answer")
    except TimeoutError as exc:
        feedback = Feedback(name="judge", error=exc)
    assert feedback.error is not None
    assert feedback.error.error_code == "TimeoutError"
    assert feedback.error.error_message == "the judge did not answer"
    assert "TimeoutError" in (feedback.error.stack_trace or "")
    assert feedback.value is None


def test_tuples_become_lists() -> None:
    assert Feedback(value=(1, "a")).value == [1, "a"]


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Feedback(name="q"), "needs a value or an error.*neither"),
        (lambda: Feedback(name="q", value=1, error=AssessmentError("E")), "both were given"),
        (lambda: Feedback(name="", value=1), "name must not be empty"),
        (lambda: Feedback(name="   ", value=1), "name must not be empty"),
        (lambda: Feedback(name=3, value=1), "name must be a string"),  # type: ignore[arg-type]
        (lambda: Feedback(name="x" * 251, value=1), "name has 251 characters"),
        (lambda: Feedback(value=float("nan")), "numbers must be finite"),
        (lambda: Feedback(value=[1, float("inf")]), r"value\[1\] is inf"),
        (lambda: Feedback(value=10**400), "too large"),
        (lambda: Feedback(value=object()), "must be a bool, a number, a string"),
        (lambda: Feedback(value={1: "a"}), "keys of a dict must be strings"),
        (lambda: Feedback(value="a\x00b"), "NUL"),
        (lambda: Feedback(value="\ud800"), "unpaired surrogate"),
        (lambda: Feedback(value=_nested(22)), "nested more than"),
        (lambda: Feedback(value="x" * 1_000_001), "value has 1000001 characters"),
        (lambda: Feedback(value=1, error="boom"), "AssessmentError or an exception"),  # type: ignore[arg-type]
        (lambda: Feedback(value=1, metadata=[1]), "metadata must be a dict"),  # type: ignore[arg-type]
        (lambda: Feedback(value=1, metadata={"k": {1, 2}}), "must be a bool"),
        (lambda: Feedback(value=1, rationale=5), "rationale must be a string"),  # type: ignore[arg-type]
        (lambda: Feedback(value=1, create_time_ms=-1), "create_time_ms must be milliseconds"),
        (lambda: Feedback(value=1, create_time_ms=True), "create_time_ms must be milliseconds"),
        (lambda: Feedback(value=1, span_id=""), "span_id must not be empty"),
        (lambda: Feedback(value=1, valid="yes"), "valid must be True or False"),  # type: ignore[arg-type]
        (lambda: Feedback(value=1, source=AssessmentSource("ROBOT")), "not a source type"),
        (lambda: Feedback(value=1, source="HUMAN"), "source must be an AssessmentSource"),  # type: ignore[arg-type]
        (lambda: AssessmentSource("HUMAN", ""), "source_id must not be empty"),
        (lambda: AssessmentError(""), "error_code must not be empty"),
        (lambda: Expectation("e", None), "needs a value"),
        (lambda: Assessment.from_dict({"kind": "score", "name": "x", "value": 1}), "kind must be"),
        (lambda: Assessment.from_dict([1]), "is a JSON object"),  # type: ignore[arg-type]
        (
            lambda: Assessment.from_dict(
                {"kind": "expectation", "name": "x", "value": 1, "rationale": "r"}
            ),
            "neither an error nor a rationale",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_problem(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match=message):
        make()
