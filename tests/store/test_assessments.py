"""Assessments in the SQL store (SQLite and PostgreSQL): log, read, update, override with
history, delete, cascade with their trace, and bad input that changes nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.store._factory import BASE_MS, sid, simple_trace, tid, trace_row
from threadline.entities.assessment import (
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
)
from threadline.errors import InvalidArgumentError, ResourceNotFoundError
from threadline.store import tables as t
from threadline.store.sql import SqlStore


@pytest.fixture
def traced(store: SqlStore) -> SqlStore:
    """Traces 1-3 (each a root and an LLM child) in experiment "0"."""
    rows, spans = [], []
    for n in (1, 2, 3):
        row, trace_spans = simple_trace(n)
        rows.append(row)
        spans += trace_spans
    store.log_batch(rows, spans)
    return store


def count(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.assessments)).scalar())


def test_log_returns_the_stored_assessment_and_every_read_sees_it(traced: SqlStore) -> None:
    source = AssessmentSource("HUMAN", "ann@example.com")
    logged = traced.log_assessment(
        tid(1),
        Feedback(
            name="helpful",
            value=True,
            source=source,
            rationale="answered the question",
            metadata={"ui": "thumbs", "n": [1, 2]},
            span_id=sid(1001),
        ),
    )
    assert logged.assessment_id is not None and logged.assessment_id.startswith("a-")
    assert logged.trace_id == tid(1) and logged.valid and logged.overrides is None
    assert logged.create_time_ms == logged.last_update_time_ms and logged.create_time_ms > BASE_MS
    assert (logged.name, logged.value, logged.source) == ("helpful", True, source)
    assert logged.metadata == {"ui": "thumbs", "n": [1, 2]} and logged.span_id == sid(1001)
    assert traced.get_assessment(tid(1), logged.assessment_id) == logged
    assert traced.list_assessments(tid(1)) == [logged]
    assert traced.list_assessments(tid(2)) == []
    trace = traced.get_trace(tid(1))
    assert trace is not None and trace.info.assessments == [logged]
    info = traced.get_trace_info(tid(1))
    assert info is not None and info.assessments == [logged]
    page, _ = traced.search_traces(include_spans=False)
    assert {x.info.trace_id: x.info.assessments for x in page}[tid(1)] == [logged]
    assert {x.info.trace_id: x.info.assessments for x in page}[tid(2)] == []


@pytest.mark.parametrize(
    "value", [True, False, 0, -3, 2.5, 1e300, "good", "", [1, "a", None], {"a": {"b": [True]}}]
)
def test_every_kind_of_value_comes_back_as_it_went_in(traced: SqlStore, value: object) -> None:
    logged = traced.log_assessment(tid(1), Feedback(name="v", value=value))
    again = traced.get_assessment(tid(1), logged.assessment_id or "")
    assert again.value == value and type(again.value) is type(value)


def test_an_error_feedback_and_an_expectation(traced: SqlStore) -> None:
    error = AssessmentError("RATE_LIMIT", "try later", "Traceback ...")
    failed = traced.log_assessment(tid(2), Feedback(name="judge", error=error))
    expected = traced.log_assessment(tid(2), Expectation("answer", {"text": "42"}))
    assert traced.get_assessment(tid(2), failed.assessment_id or "").error == error
    assert traced.get_assessment(tid(2), failed.assessment_id or "").value is None
    assert traced.get_assessment(tid(2), expected.assessment_id or "").value == {"text": "42"}
    assert [a.kind for a in traced.list_assessments(tid(2))] == ["feedback", "expectation"]


def test_update_replaces_fields_in_place(traced: SqlStore) -> None:
    logged = traced.log_assessment(tid(1), Feedback(name="q", value=0.2, rationale="meh"))
    updated = traced.update_assessment(
        tid(1), logged.assessment_id or "", Feedback(name="quality", value=0.9, metadata={"k": 1})
    )
    assert updated.assessment_id == logged.assessment_id
    assert (updated.name, updated.value, updated.rationale, updated.metadata) == (
        "quality",
        0.9,
        None,
        {"k": 1},
    )
    assert updated.create_time_ms == logged.create_time_ms
    assert (updated.last_update_time_ms or 0) >= (logged.last_update_time_ms or 0)
    assert traced.search_traces(filter_string="feedback.quality = 0.9")[0][0].info.trace_id == tid(
        1
    )
    errored = traced.update_assessment(
        tid(1), logged.assessment_id or "", Feedback(name="quality", error=AssessmentError("E"))
    )
    assert errored.value is None and errored.error == AssessmentError("E")
    with pytest.raises(InvalidArgumentError, match="is a feedback; update it with a Feedback"):
        traced.update_assessment(tid(1), logged.assessment_id or "", Expectation("e", 1))


def test_override_keeps_the_history_and_only_the_newest_is_valid(traced: SqlStore) -> None:
    judge = AssessmentSource("LLM_JUDGE", "gpt-judge")
    first = traced.log_assessment(tid(1), Feedback(name="correct", value=False, source=judge))
    human = AssessmentSource("HUMAN", "bob")
    second = traced.override_feedback(
        tid(1), first.assessment_id or "", Feedback(name="ignored", value=True, source=human)
    )
    assert second.name == "correct" and second.overrides == first.assessment_id and second.valid
    assert second.source == human
    third = traced.override_feedback(
        tid(1), second.assessment_id or "", Feedback(value=True, rationale="checked twice")
    )
    history = {a.assessment_id: a for a in traced.list_assessments(tid(1))}
    assert [history[a.assessment_id or ""].valid for a in (first, second, third)] == [
        False,
        False,
        True,
    ]
    assert history[third.assessment_id or ""].overrides == second.assessment_id
    with pytest.raises(InvalidArgumentError, match=f"the current one is '{third.assessment_id}'"):
        traced.override_feedback(tid(1), first.assessment_id or "", Feedback(value=True))
    expectation = traced.log_assessment(tid(1), Expectation("answer", "x"))
    with pytest.raises(InvalidArgumentError, match="only feedback is overridden"):
        traced.override_feedback(tid(1), expectation.assessment_id or "", Feedback(value=1))


def test_logging_with_overrides_is_an_override(traced: SqlStore) -> None:
    first = traced.log_assessment(tid(1), Feedback(name="q", value=1))
    second = traced.log_assessment(
        tid(1), Feedback(name="q", value=2, overrides=first.assessment_id)
    )
    assert traced.get_assessment(tid(1), first.assessment_id or "").valid is False
    assert second.overrides == first.assessment_id and second.valid


def test_deleting_keeps_the_chain_linked_and_restores_the_replaced_one(traced: SqlStore) -> None:
    a = traced.log_assessment(tid(1), Feedback(name="q", value=1))
    b = traced.override_feedback(tid(1), a.assessment_id or "", Feedback(value=2))
    c = traced.override_feedback(tid(1), b.assessment_id or "", Feedback(value=3))
    traced.delete_assessment(tid(1), b.assessment_id or "")  # the middle link
    left = {x.assessment_id: x for x in traced.list_assessments(tid(1))}
    assert set(left) == {a.assessment_id, c.assessment_id}
    assert left[c.assessment_id].overrides == a.assessment_id and left[c.assessment_id].valid
    traced.delete_assessment(tid(1), c.assessment_id or "")  # the valid end
    (restored,) = traced.list_assessments(tid(1))
    assert restored.assessment_id == a.assessment_id and restored.valid
    assert traced.search_traces(filter_string="feedback.q = 1")[0][0].info.trace_id == tid(1)
    with pytest.raises(ResourceNotFoundError, match="No assessment with id"):
        traced.delete_assessment(tid(1), c.assessment_id or "")


def test_assessments_go_with_their_trace(traced: SqlStore) -> None:
    for n in (1, 2, 3):
        traced.log_assessment(tid(n), Feedback(name="q", value=n))
        traced.log_assessment(tid(n), Expectation("e", n))
    assert count(traced) == 6
    assert traced.delete_traces("0", trace_ids=[tid(2)]) == 1
    assert count(traced) == 4 and traced.list_assessments(tid(1))
    assert traced.delete_traces("0", max_timestamp_millis=BASE_MS + 1_000) == 1  # trace 1
    assert count(traced) == 2
    with pytest.raises(ResourceNotFoundError, match="No trace"):
        traced.list_assessments(tid(1))


def test_an_assessment_of_another_trace_is_not_found(traced: SqlStore) -> None:
    logged = traced.log_assessment(tid(1), Feedback(value=1))
    for call in (
        lambda: traced.get_assessment(tid(2), logged.assessment_id or ""),
        lambda: traced.update_assessment(tid(2), logged.assessment_id or "", Feedback(value=2)),
        lambda: traced.override_feedback(tid(2), logged.assessment_id or "", Feedback(value=2)),
        lambda: traced.delete_assessment(tid(2), logged.assessment_id or ""),
    ):
        with pytest.raises(ResourceNotFoundError, match="No assessment"):
            call()
    assert traced.list_assessments(tid(1)) == [logged]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda s: s.log_assessment("tr-nope", Feedback(value=1)),
            ResourceNotFoundError,
            "No trace",
        ),
        (lambda s: s.log_assessment("", Feedback(value=1)), InvalidArgumentError, "trace_id"),
        (
            lambda s: s.log_assessment(tid(1), Feedback(value=1, span_id="ffffffffffffffff")),
            ResourceNotFoundError,
            "has no span with id 'ffffffffffffffff'",
        ),
        (
            lambda s: s.log_assessment(tid(1), Feedback(value=1, trace_id=tid(2))),
            InvalidArgumentError,
            "names trace",
        ),
        (lambda s: s.log_assessment(tid(1), {"value": 1}), InvalidArgumentError, "Feedback or an"),
        (
            lambda s: s.log_assessment(tid(1), Feedback(value=1, overrides="a-nope")),
            ResourceNotFoundError,
            "No assessment with id 'a-nope'",
        ),
        (lambda s: s.get_assessment(tid(1), ""), InvalidArgumentError, "assessment_id"),
    ],
)
def test_bad_input_raises_and_stores_nothing(traced: SqlStore, call, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call(traced)
    assert count(traced) == 0


def test_a_feedback_changed_after_it_was_made_is_checked_again(traced: SqlStore) -> None:
    feedback = Feedback(value=1)
    feedback.value = object()
    with pytest.raises(InvalidArgumentError, match="must be a bool"):
        traced.log_assessment(tid(1), feedback)
    feedback = Feedback(value=1)
    feedback.name = ""
    with pytest.raises(InvalidArgumentError, match="name must not be empty"):
        traced.log_assessment(tid(1), feedback)
    assert count(traced) == 0


def test_assessments_of_a_page_are_read_in_one_query(
    traced: SqlStore, statements: list[str]
) -> None:
    for n in (1, 2, 3):
        traced.log_assessment(tid(n), Feedback(value=n))
    statements.clear()
    page, _ = traced.search_traces(include_spans=False)
    assert all(len(x.info.assessments) == 1 for x in page)
    assert sum("from assessments" in s.lower() for s in statements) == 1


def test_a_trace_row_written_again_keeps_its_assessments(traced: SqlStore) -> None:
    logged = traced.log_assessment(tid(1), Feedback(value=1))
    traced.log_batch([trace_row(1, state="ERROR")], [])
    assert traced.list_assessments(tid(1)) == [logged]
