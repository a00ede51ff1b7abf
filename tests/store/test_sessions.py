"""Sessions in the SQL store (SQLite and PostgreSQL): the summary kept in step with every
write and deletion, and ``search_sessions`` / ``get_session``."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.store._factory import BASE_MS, simple_trace, span_row, tid, trace_row
from threadline.entities.assessment import AssessmentError, Feedback
from threadline.errors import FilterSyntaxError, InvalidArgumentError
from threadline.store import tables as t
from threadline.store.sql import SqlStore


def turn(store: SqlStore, n: int, session: str, **fields: object) -> None:
    """Trace ``n`` (root + LLM child with 15 tokens) in session ``session``."""
    metadata = {"session_id": session, **fields.pop("metadata", {})}  # type: ignore[dict-item]
    row, spans = simple_trace(n, metadata=metadata, **fields)
    store.log_batch([row], spans)


def session_rows(store: SqlStore) -> list[tuple[str, str, int]]:
    s = t.sessions.c
    with store.engine.connect() as conn:
        query = sa.select(s.experiment_id, s.session_id, s.trace_count).order_by(s.session_id)
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def test_a_session_gathers_its_traces_and_their_figures(store: SqlStore) -> None:
    turn(store, 1, "chat-1", metadata={"user": "ann"})
    turn(store, 2, "chat-1", state="ERROR")
    turn(store, 3, "chat-2")
    store.log_batch([trace_row(4)], [])  # no session
    page, token = store.search_sessions()
    assert token is None
    assert [s.session_id for s in page] == ["chat-2", "chat-1"]  # newest activity first
    chat = page[1]
    assert (chat.experiment_id, chat.user, chat.turns, chat.error_count) == ("0", "ann", 2, 1)
    assert (chat.first_time_ms, chat.last_time_ms) == (BASE_MS + 1000, BASE_MS + 2000)
    assert (chat.input_tokens, chat.output_tokens, chat.total_tokens) == (20, 10, 30)
    assert chat.cost is None
    assert [info.trace_id for info in chat.traces] == [tid(1), tid(2)]
    assert store.get_session("0", "chat-1") == chat
    assert store.get_session("0", "nope") is None
    assert store.get_session("1", "chat-1") is None


def test_the_summary_follows_later_writes(store: SqlStore) -> None:
    store.log_batch([trace_row(1, state="IN_PROGRESS", metadata={"session_id": "s"})], [])
    (session,) = store.search_sessions()[0]
    assert (session.turns, session.error_count, session.total_tokens) == (1, 0, 0)
    # spans arriving later bring tokens; the final row brings the state
    store.log_batch([], [span_row(1, 0, tokens=(3, 4, 7))])
    store.log_batch([trace_row(1, state="ERROR")], [])
    (session,) = store.search_sessions()[0]
    assert (session.turns, session.error_count, session.total_tokens) == (1, 1, 7)
    # a trace that gets its session later joins it
    store.log_batch([trace_row(2)], [])
    store.log_batch([trace_row(2, metadata={"session_id": "s"})], [])
    assert store.get_session("0", "s").turns == 2  # type: ignore[union-attr]


def test_deleting_traces_updates_and_removes_sessions(store: SqlStore) -> None:
    for n in (1, 2, 3):
        turn(store, n, "a")
    turn(store, 4, "b")
    assert store.delete_traces("0", trace_ids=[tid(1)]) == 1
    assert session_rows(store) == [("0", "a", 2), ("0", "b", 1)]
    assert store.delete_traces("0", trace_ids=[tid(4)]) == 1
    assert session_rows(store) == [("0", "a", 2)]
    assert store.delete_traces("0", max_timestamp_millis=BASE_MS + 10_000) == 2  # retention
    assert session_rows(store) == []
    assert store.search_sessions() == ([], None)


def test_a_trace_moved_to_another_experiment_moves_its_session(store: SqlStore) -> None:
    experiment = store.create_experiment("other")
    turn(store, 1, "s")
    turn(store, 2, "s")
    store.log_batch([trace_row(2, experiment_id=experiment)], [])
    assert sorted(session_rows(store)) == [("0", "s", 1), (experiment, "s", 1)]


def test_cost_and_feedback_are_summed_over_the_session(store: SqlStore) -> None:
    cost = {"input_cost": 0.01, "output_cost": 0.02, "total_cost": 0.03}
    for n in (1, 2):
        row, spans = simple_trace(n, metadata={"session_id": "s"})
        spans[1].attributes_json = json.dumps({"threadline.llm.cost": cost})
        store.log_batch([row], spans)
    store.log_assessment(tid(1), Feedback(name="thumbs", value=True))
    store.log_assessment(tid(2), Feedback(name="thumbs", value=False))
    store.log_assessment(tid(1), Feedback(name="score", value=4))
    store.log_assessment(tid(2), Feedback(name="score", value=2))
    old = store.log_assessment(tid(2), Feedback(name="score", value=100))
    store.override_feedback(tid(2), old.assessment_id or "", Feedback(value=3))
    store.log_assessment(tid(2), Feedback(name="judge", error=AssessmentError("E")))
    (session,) = store.search_sessions()[0]
    assert session.cost == pytest.approx(0.06)
    thumbs, score, judge = (
        session.feedback["thumbs"],
        session.feedback["score"],
        session.feedback["judge"],
    )
    assert (thumbs.count, thumbs.share_true, thumbs.mean) == (2, 0.5, None)
    assert (score.count, score.mean) == (3, 3.0)  # 4, 2 and 3 (100 was overridden)
    assert (judge.count, judge.error_count) == (0, 1)


def test_search_filters_orders_pages_and_scopes(store: SqlStore) -> None:
    other = store.create_experiment("other")
    for n in range(1, 13):
        turn(store, n, f"s{n % 4}", metadata={"user": "ann" if n % 4 == 1 else "bob"})
    turn(store, 13, "s1", experiment_id=other)
    store.log_assessment(tid(5), Feedback(name="thumbs", value=False))

    def ids(**kwargs: object) -> list[tuple[str, str]]:
        return [(s.experiment_id, s.session_id) for s in store.search_sessions(**kwargs)[0]]  # type: ignore[arg-type]

    assert ids(experiment_ids=["0"]) == [("0", "s0"), ("0", "s3"), ("0", "s2"), ("0", "s1")]
    assert ids() == [(other, "s1"), ("0", "s0"), ("0", "s3"), ("0", "s2"), ("0", "s1")]
    assert ids(experiment_ids=[other]) == [(other, "s1")]
    assert ids(experiment_ids=[]) == []
    assert ids(filter_string="trace.user = 'ann'") == [("0", "s1")]  # not other's s1
    assert ids(experiment_ids=["0"], filter_string="trace.user = 'ann'") == [("0", "s1")]
    assert ids(experiment_ids=["0"], filter_string="feedback.thumbs = false") == [("0", "s1")]
    assert ids(experiment_ids=["0"], filter_string="trace.timestamp_ms < 0") == []
    assert ids(experiment_ids=["0"], order_by=["first_time_ms ASC"]) == [
        ("0", "s1"),
        ("0", "s2"),
        ("0", "s3"),
        ("0", "s0"),
    ]
    assert ids(experiment_ids=["0", other], order_by=["turns ASC", "session.last_time_ms DESC"])[
        0
    ] == (
        other,
        "s1",
    )
    first, token = store.search_sessions(experiment_ids=["0"], max_results=3, include_traces=False)
    assert len(first) == 3 and token is not None and all(s.traces == [] for s in first)
    rest, last = store.search_sessions(experiment_ids=["0"], max_results=3, page_token=token)
    assert last is None and [s.session_id for s in first + rest] == ["s0", "s3", "s2", "s1"]
    assert [len(s.traces) for s in rest] == [3]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"filter_string": "trace.nope = 1"}, FilterSyntaxError, "unknown field"),
        ({"order_by": ["cost DESC"]}, FilterSyntaxError, "cannot order by 'cost'"),
        ({"max_results": 0}, InvalidArgumentError, "max_results"),
        ({"max_results": 10_001}, InvalidArgumentError, "max_results"),
        ({"page_token": "nope"}, InvalidArgumentError, "page_token"),
    ],
)
def test_bad_arguments(
    store: SqlStore, kwargs: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        store.search_sessions(**kwargs)  # type: ignore[arg-type]


def test_long_and_odd_session_ids(store: SqlStore) -> None:
    long_id = "x" * 7000 + "/é'\"%"
    turn(store, 1, long_id)
    turn(store, 2, long_id)
    (session,) = store.search_sessions()[0]
    assert session.session_id == long_id and session.turns == 2
    assert store.get_session("0", long_id) is not None
    with pytest.raises(InvalidArgumentError, match="session_id"):
        store.get_session("0", "")


def test_concurrent_writers_of_one_session_lose_no_trace(store: SqlStore) -> None:
    """Two writers add traces to the same session at once (on PostgreSQL each transaction
    aggregates what it sees; the session row lock makes the second see the first)."""
    import threading

    errors: list[BaseException] = []

    def write(first: int) -> None:
        try:  # each writer in its own hour: they share no overview mark either
            for n in range(first, first + 30):
                turn(store, n, "shared", request_time=BASE_MS + first * 3_600_000 + n)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(start,)) for start in (1, 101, 201, 301)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    session = store.get_session("0", "shared")
    assert session is not None and session.turns == 120 and len(session.traces) == 120
    assert session.total_tokens == 120 * 15


def test_a_writer_waits_for_the_session_another_is_recomputing(store: SqlStore) -> None:
    """The race, step by step: writer 1 has recomputed session S but not committed; writer
    2 (another trace of S) must wait for it and then count both traces."""
    import threading
    import time

    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    store.log_batch([trace_row(1), trace_row(2)], [])

    def add_to_session(conn: sa.Connection, n: int) -> None:
        conn.execute(t.trace_metadata.insert().values(trace_id=tid(n), key="session_id", value="S"))
        store._refresh_sessions(conn, {("0", "S")})

    first = store.engine.connect()
    first.begin()
    add_to_session(first, 1)
    second_done = threading.Event()

    def second_writer() -> None:
        with store.engine.begin() as conn:
            add_to_session(conn, 2)
        second_done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    time.sleep(0.5)
    assert not second_done.is_set()  # waiting on the session's row lock
    first.commit()
    first.close()
    thread.join(30)
    assert second_done.is_set()
    assert session_rows(store) == [("0", "S", 2)]
