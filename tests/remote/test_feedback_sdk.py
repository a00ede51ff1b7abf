"""The assessment and session SDK on every kind of tracking URI: an embedded SQLite file,
PostgreSQL directly, and a real ``threadline server`` process over HTTP."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

import threadline
from tests.remote.conftest import ServerProcess
from threadline.client import ThreadlineClient
from threadline.entities.assessment import (
    AssessmentError,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    Feedback,
)
from threadline.errors import FilterSyntaxError, InvalidArgumentError, ResourceNotFoundError


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "server"])
def tracking(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The SDK pointed at one kind of store, with a fresh active experiment (its id)."""
    if request.param == "sqlite":
        threadline.set_tracking_uri(f"sqlite:///{tmp_path / 'sdk.db'}")
    elif request.param == "postgres":
        threadline.set_tracking_uri(request.getfixturevalue("postgres_uri"))
    else:
        server: ServerProcess = request.getfixturevalue("server")
        threadline.set_tracking_uri(server.url)
    return threadline.set_experiment(f"feedback-{uuid.uuid4().hex[:10]}").experiment_id


@threadline.trace
def answer(question: str, session: str = "chat-1", user: str = "ann") -> str:
    threadline.update_current_trace(session_id=session, user=user)
    if question == "fail":
        raise ValueError("no answer")
    return f"answer to {question}"


def last_trace_id() -> str:
    trace_id = threadline.get_last_active_trace_id()
    assert trace_id is not None
    return trace_id


@pytest.mark.parametrize("async_logging", [False, True], ids=["sync", "async"])
def test_feedback_right_after_the_trace_and_its_history(tracking: str, async_logging: bool) -> None:
    if async_logging:
        threadline.config.enable_async_logging()
    answer("What is 6 x 7?")
    trace_id = last_trace_id()  # feedback at once: the pending export is written first
    judge = AssessmentSource(AssessmentSourceType.AI_JUDGE, "judge-model")
    feedback = threadline.log_feedback(
        trace_id=trace_id,
        name="correct",
        value=False,
        source=judge,
        rationale="it said 41",
        metadata={"judge_version": 2},
    )
    assert feedback.assessment_id and feedback.trace_id == trace_id
    assert feedback.source.source_type == "LLM_JUDGE"
    human = threadline.override_feedback(
        trace_id=trace_id,
        assessment_id=feedback.assessment_id,
        value=True,
        rationale="it said 42",
        source=AssessmentSource("HUMAN", "bob"),
    )
    assert human.overrides == feedback.assessment_id and human.name == "correct"
    assert threadline.get_assessment(trace_id, feedback.assessment_id).valid is False
    expectation = threadline.log_expectation(trace_id=trace_id, name="answer", value="42")
    trace = threadline.get_trace(trace_id)
    assert trace is not None
    assert [a.assessment_id for a in trace.info.assessments] == [
        feedback.assessment_id,
        human.assessment_id,
        expectation.assessment_id,
    ]
    assert trace.info.expectations == {"answer": "42"}
    updated = threadline.update_assessment(
        trace_id, expectation.assessment_id or "", Expectation("answer", {"text": "42"})
    )
    assert updated.value == {"text": "42"}
    threadline.delete_assessment(trace_id, human.assessment_id or "")
    assert threadline.get_assessment(trace_id, feedback.assessment_id).valid is True


def test_search_traces_columns_and_feedback_filters(tracking: str) -> None:
    for question in ("a", "b", "c"):
        answer(question)
        trace_id = last_trace_id()
        threadline.log_feedback(trace_id=trace_id, name="score", value=ord(question) - 96)
        time.sleep(0.003)
    threadline.log_expectation(trace_id=trace_id, name="ideal", value=[1, 2])
    threadline.log_assessment(trace_id, Feedback(name="judge", error=AssessmentError("TIMEOUT")))
    frame = threadline.search_traces(order_by=["timestamp_ms ASC"])
    assert {"assessments", "expectations"} <= set(frame.columns)
    assert [len(a) for a in frame["assessments"]] == [1, 1, 3]
    assert list(frame["expectations"]) == [{}, {}, {"ideal": [1, 2]}]
    high = threadline.search_traces(filter_string="feedback.score >= 2", return_type="list")
    assert len(high) == 2
    assert (
        threadline.search_traces(filter_string="feedback.judge IS NOT NULL", return_type="list")
        == []
    )
    assert (
        len(
            threadline.search_traces(
                filter_string="expectation.ideal IS NOT NULL", return_type="list"
            )
        )
        == 1
    )
    with pytest.raises(FilterSyntaxError, match="compares numbers") as caught:
        threadline.search_traces(filter_string="feedback.score > 'high'")
    assert caught.value.position == 17


def test_sessions_and_overview(tracking: str) -> None:
    for question, session in (("a", "s1"), ("fail", "s1"), ("b", "s2"), ("c", "s1")):
        try:
            answer(question, session=session, user="ann" if session == "s1" else "bob")
        except ValueError:
            pass
        time.sleep(0.003)
    threadline.log_feedback(trace_id=last_trace_id(), name="thumbs", value=True)
    sessions = threadline.search_sessions()
    assert [s.session_id for s in sessions] == ["s1", "s2"] and sessions.token is None
    s1 = sessions[0]
    assert (s1.user, s1.turns, s1.error_count, s1.experiment_id) == ("ann", 3, 1, tracking)
    assert [t.request_preview is not None for t in s1.traces] == [True, True, True]
    assert s1.feedback["thumbs"].share_true == 1.0
    assert [
        s.session_id for s in threadline.search_sessions(filter_string="trace.user = 'bob'")
    ] == ["s2"]
    page = threadline.search_sessions(max_results=1)
    assert len(page) == 1 and page.token is not None
    client = ThreadlineClient()
    one = client.get_session(tracking, "s2")
    assert one is not None and one.turns == 1
    assert client.get_session(tracking, "nope") is None
    overview = client.get_overview(tracking)
    assert overview.totals.trace_count == 4 and overview.totals.error_count == 1
    assert overview.totals.feedback["thumbs"].count == 1
    assert len(overview.buckets) == 24 and overview.buckets[-1].trace_count == 4


def test_bad_input_raises_and_stores_nothing(tracking: str) -> None:
    answer("a")
    trace_id = last_trace_id()
    with pytest.raises(ResourceNotFoundError, match="No trace"):
        threadline.log_feedback(trace_id="tr-" + "0" * 32, value=1)
    with pytest.raises(InvalidArgumentError, match="both were given"):
        threadline.log_feedback(trace_id=trace_id, value=1, error=AssessmentError("E"))
    with pytest.raises(InvalidArgumentError, match="neither was given"):
        threadline.log_feedback(trace_id=trace_id)
    with pytest.raises(InvalidArgumentError, match="name must not be empty"):
        threadline.log_feedback(trace_id=trace_id, name="", value=1)
    with pytest.raises(ResourceNotFoundError, match="has no span"):
        threadline.log_feedback(trace_id=trace_id, value=1, span_id="0" * 16)
    with pytest.raises(ResourceNotFoundError, match="No assessment"):
        threadline.get_assessment(trace_id, "a-nope")
    trace = threadline.get_trace(trace_id)
    assert trace is not None and trace.info.assessments == []


def test_the_client_has_the_same_calls(tracking: str) -> None:
    answer("a")
    trace_id = last_trace_id()
    client = ThreadlineClient()
    logged = client.log_feedback(trace_id=trace_id, name="q", value="fine")
    assert client.get_assessment(trace_id, logged.assessment_id or "") == logged
    again = client.override_feedback(
        trace_id=trace_id, assessment_id=logged.assessment_id or "", value="good"
    )
    client.delete_assessment(trace_id, again.assessment_id or "")
    assert client.get_assessment(trace_id, logged.assessment_id or "").valid
    sessions = client.search_sessions(experiment_ids=[tracking])
    assert [s.session_id for s in sessions] == ["chat-1"]
