"""The overview in the SQL store (SQLite and PostgreSQL): UTC buckets, zero-filled, with
counts, error rate, latency percentiles, tokens, cost and feedback; rollups that follow
every write; the filtered path agreeing with the rollups."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa

from tests.store._factory import span_row, tid, trace_row
from threadline.entities.assessment import AssessmentError, Feedback
from threadline.errors import FilterSyntaxError, InvalidArgumentError, ResourceNotFoundError
from threadline.store import tables as t
from threadline.store.sql import SqlStore
from threadline.store.sql._figures import bin_value, latency_bin, percentile

HOUR = 3_600_000
DAY = 24 * HOUR
DAY0 = 1_700_006_400_000  # 2023-11-15T00:00:00Z, a UTC midnight
assert DAY0 % DAY == 0


def write(store: SqlStore, n: int, at: int, **fields: object) -> None:
    store.log_batch([trace_row(n, request_time=at, **fields)], [])  # type: ignore[arg-type]


def test_hour_buckets_start_on_utc_hours_and_empty_ones_are_zero(store: SqlStore) -> None:
    write(store, 1, DAY0 + 10, execution_duration=5)
    write(store, 2, DAY0 + HOUR - 1, execution_duration=7, state="ERROR")
    write(store, 3, DAY0 + 3 * HOUR + 5, execution_duration=9)
    write(store, 4, DAY0 + 5 * HOUR, execution_duration=1)  # outside the range
    overview = store.get_overview("0", start_time_ms=DAY0 + 20, end_time_ms=DAY0 + 4 * HOUR)
    assert (overview.start_time_ms, overview.end_time_ms, overview.bucket) == (
        DAY0,
        DAY0 + 4 * HOUR,
        "hour",
    )
    assert [b.start_time_ms for b in overview.buckets] == [DAY0 + h * HOUR for h in range(4)]
    assert [b.trace_count for b in overview.buckets] == [2, 0, 0, 1]
    first, empty = overview.buckets[0], overview.buckets[1]
    assert (first.error_count, first.error_rate) == (1, 0.5)
    assert (first.latency_p50_ms, first.latency_p95_ms) == (5.0, 7.0)
    assert (empty.error_rate, empty.latency_p50_ms, empty.cost, empty.feedback) == (
        None,
        None,
        0.0,
        {},
    )
    assert overview.totals.trace_count == 3 and overview.totals.start_time_ms == DAY0


def test_day_buckets_start_at_utc_midnight(store: SqlStore) -> None:
    write(store, 1, DAY0 - 1)
    write(store, 2, DAY0)
    write(store, 3, DAY0 + DAY + 23 * HOUR)
    overview = store.get_overview(
        "0", start_time_ms=DAY0 - DAY + 5, end_time_ms=DAY0 + DAY + 1, bucket="day"
    )
    assert [(b.start_time_ms, b.trace_count) for b in overview.buckets] == [
        (DAY0 - DAY, 1),
        (DAY0, 1),
        (DAY0 + DAY, 1),
    ]


def test_percentiles_are_nearest_rank_exact_below_32_ms(store: SqlStore) -> None:
    store.log_batch(
        [trace_row(n, request_time=DAY0 + n, execution_duration=n) for n in range(1, 21)], []
    )
    write(store, 99, DAY0 + 500, execution_duration=None, state="IN_PROGRESS")  # not finished
    bucket = store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + HOUR).buckets[0]
    assert (bucket.trace_count, bucket.latency_p50_ms, bucket.latency_p95_ms) == (21, 10.0, 19.0)


def test_longer_latencies_are_within_2_5_percent(store: SqlStore) -> None:
    durations = [100 + 7 * i for i in range(400)]
    store.log_batch(
        [
            trace_row(i + 1, request_time=DAY0 + i, execution_duration=d)
            for i, d in enumerate(durations)
        ],
        [],
    )
    bucket = store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + HOUR).totals
    ordered = sorted(durations)
    for got, share in ((bucket.latency_p50_ms, 0.5), (bucket.latency_p95_ms, 0.95)):
        exact = ordered[int(share * len(ordered)) - 1]
        assert got is not None and abs(got - exact) / exact <= 0.025


def test_histogram_bins() -> None:
    for duration in [0, 1, 31, 32, 33, 100, 999, 12_345, 10**9]:
        value = bin_value(latency_bin(duration))
        assert abs(value - duration) <= 0.025 * max(duration, 1)
    assert latency_bin(-5) == 0
    assert percentile({}, 0.5) is None
    assert percentile({3: 1, 7: 3}, 0.25) == 3.0 and percentile({3: 1, 7: 3}, 0.5) == 7.0


def test_tokens_cost_and_feedback(store: SqlStore) -> None:
    cost = {"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75}
    for n in (1, 2, 3):
        child = span_row(
            n, 1, parent=0, tokens=(10, 5, 15), attributes={"threadline.llm.cost": cost}
        )
        store.log_batch([trace_row(n, request_time=DAY0 + n)], [span_row(n, 0), child])
    store.log_assessment(tid(1), Feedback(name="thumbs", value=True))
    store.log_assessment(tid(2), Feedback(name="thumbs", value=True))
    store.log_assessment(tid(3), Feedback(name="thumbs", value=False))
    store.log_assessment(tid(1), Feedback(name="score", value=2))
    old = store.log_assessment(tid(2), Feedback(name="score", value=100))
    store.override_feedback(tid(2), old.assessment_id or "", Feedback(value=4))
    store.log_assessment(tid(3), Feedback(name="score", error=AssessmentError("E")))
    store.log_assessment(tid(3), Feedback(name="label", value="ok"))
    bucket = store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + HOUR).buckets[0]
    assert (bucket.input_tokens, bucket.output_tokens, bucket.total_tokens) == (30, 15, 45)
    assert bucket.cost == pytest.approx(2.25)
    thumbs, score, label = (
        bucket.feedback["thumbs"],
        bucket.feedback["score"],
        bucket.feedback["label"],
    )
    assert (thumbs.count, thumbs.share_true, thumbs.mean) == (3, pytest.approx(2 / 3), None)
    assert (score.count, score.error_count, score.mean, score.share_true) == (2, 1, 3.0, None)
    assert (label.count, label.mean, label.share_true) == (1, None, None)
    assert list(bucket.feedback) == ["label", "score", "thumbs"]


def test_rollups_follow_writes_deletions_and_assessments(store: SqlStore) -> None:
    def counts() -> list[int]:
        overview = store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + 3 * HOUR)
        return [b.trace_count for b in overview.buckets]

    write(store, 1, DAY0 + 1)
    assert counts() == [1, 0, 0]
    write(store, 2, DAY0 + 2)
    write(store, 3, DAY0 + HOUR + 2)
    assert counts() == [2, 1, 0]
    write(store, 3, DAY0 + 2 * HOUR + 2)  # its row written again, later: the trace moves
    assert counts() == [2, 0, 1]
    store.delete_traces("0", trace_ids=[tid(1)])
    assert counts() == [1, 0, 1]
    store.log_assessment(tid(2), Feedback(name="q", value=1))
    overview = store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + HOUR)
    assert overview.buckets[0].feedback["q"].count == 1
    store.delete_traces("0", max_timestamp_millis=DAY0 + 10 * HOUR)
    assert counts() == [0, 0, 0]
    with store.engine.connect() as conn:  # nothing left to recompute, nothing left over
        assert conn.execute(sa.select(sa.func.count()).select_from(t.stale_rollups)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(t.trace_rollups)).scalar() == 0


def test_experiments_are_apart(store: SqlStore) -> None:
    other = store.create_experiment("other")
    write(store, 1, DAY0)
    write(store, 2, DAY0, experiment_id=other)
    write(store, 3, DAY0 + 1, experiment_id=other)
    assert (
        store.get_overview(other, start_time_ms=DAY0, end_time_ms=DAY0 + 1).totals.trace_count == 2
    )
    assert store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + 1).totals.trace_count == 1


def test_a_filter_counts_the_matching_traces_as_the_rollups_count_all(store: SqlStore) -> None:
    for n in range(1, 31):
        write(
            store,
            n,
            DAY0 + n * 10 * 60_000,
            execution_duration=n * 3,
            state="ERROR" if n % 4 else "OK",
            tags={"env": "prod" if n % 2 else "dev"},
        )
        store.log_assessment(tid(n), Feedback(name="score", value=n % 5))
    window = {"start_time_ms": DAY0, "end_time_ms": DAY0 + 6 * HOUR}
    everything = store.get_overview("0", **window)
    matching_all = store.get_overview("0", filter_string="trace.timestamp_ms > 0", **window)
    assert matching_all.buckets == everything.buckets and matching_all.totals == everything.totals
    prod = store.get_overview("0", filter_string="tags.env = 'prod'", **window)
    assert prod.totals.trace_count == 15 and prod.filter_string == "tags.env = 'prod'"
    assert prod.totals.error_count == sum(1 for n in range(1, 31, 2) if n % 4)
    assert prod.totals.feedback["score"].mean == pytest.approx(
        sum(n % 5 for n in range(1, 31, 2)) / 15
    )
    good = store.get_overview("0", filter_string="feedback.score >= 3", **window)
    assert good.totals.trace_count == sum(1 for n in range(1, 31) if n % 5 >= 3)


def test_the_default_range_ends_with_the_bucket_of_now(store: SqlStore) -> None:
    now = int(time.time() * 1000)
    write(store, 1, now - 1000)
    hourly = store.get_overview("0")
    assert len(hourly.buckets) == 24 and hourly.buckets[-1].trace_count == 1
    assert hourly.end_time_ms > now >= hourly.buckets[-1].start_time_ms
    daily = store.get_overview("0", bucket="day")
    assert len(daily.buckets) == 30 and daily.end_time_ms % DAY == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"bucket": "week"}, InvalidArgumentError, "bucket must be 'hour' or 'day'"),
        (
            {"start_time_ms": 10 * HOUR, "end_time_ms": 5 * HOUR},
            InvalidArgumentError,
            "must be before",
        ),
        (
            {"start_time_ms": 0, "end_time_ms": 2000 * HOUR},
            InvalidArgumentError,
            "at most 1000 buckets",
        ),
        ({"start_time_ms": "0"}, InvalidArgumentError, "start_time_ms must be milliseconds"),
        ({"end_time_ms": 2**63}, InvalidArgumentError, "end_time_ms must be milliseconds"),
        ({"filter_string": "nope = 1"}, FilterSyntaxError, "unknown field"),
        ({"experiment_id": "404"}, ResourceNotFoundError, "No experiment"),
    ],
)
def test_bad_arguments(
    store: SqlStore, kwargs: dict[str, object], error: type, message: str
) -> None:
    arguments = {"experiment_id": "0", **kwargs}
    with pytest.raises(error, match=message):
        store.get_overview(**arguments)  # type: ignore[arg-type]


def test_rollups_are_stored_per_hour(store: SqlStore) -> None:
    write(store, 1, DAY0 + 5, execution_duration=40)
    store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + HOUR)
    with store.engine.connect() as conn:
        (row,) = conn.execute(sa.select(t.trace_rollups)).mappings().all()
    assert (row["experiment_id"], row["hour_ms"], row["trace_count"]) == ("0", DAY0, 1)
    assert json.loads(row["latencies"]) == {str(latency_bin(40)): 1}


def test_a_recomputation_waits_for_a_writer_of_its_hour(store: SqlStore) -> None:
    """The race, step by step (PostgreSQL): an hour is stale, a writer has added a trace to
    it and marked it again without committing yet; the overview must not recompute the hour
    without that trace and then forget the hour was stale."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    write(store, 1, DAY0 + 1)  # the hour is marked stale (committed)
    writer = store.engine.connect()
    writer.begin()
    writer.execute(
        t.traces.insert().values(
            trace_id=tid(2), experiment_id="0", request_time=DAY0 + 2, state="OK"
        )
    )
    store._mark_stale(writer, {("0", DAY0)})
    found: list[int] = []
    reader = threading.Thread(
        target=lambda: found.append(
            store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + HOUR).totals.trace_count
        )
    )
    reader.start()
    time.sleep(0.5)
    assert not found  # waiting on the stale mark's row lock
    writer.commit()
    writer.close()
    reader.join(30)
    assert found == [2]
    assert (
        store.get_overview("0", start_time_ms=DAY0, end_time_ms=DAY0 + HOUR).totals.trace_count == 2
    )
