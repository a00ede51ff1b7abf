"""Deleting traces (by age, count and id) and editing trace tags."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.store._factory import BASE_MS, simple_trace, tid
from threadline.errors import InvalidArgumentError, ResourceNotFoundError
from threadline.store import tables as t
from threadline.store.sql import SqlStore


def load(store: SqlStore, numbers: range, experiment_id: str = "0") -> None:
    rows, spans = [], []
    for n in numbers:
        row, pair = simple_trace(
            n, experiment_id=experiment_id, tags={"k": "v"}, metadata={"user": "u"}
        )
        rows.append(row)
        spans += pair
    store.log_batch(rows, spans)


def remaining(store: SqlStore) -> list[int]:
    traces, _ = store.search_traces(order_by=["timestamp_ms ASC"], include_spans=False)
    return [int(x.info.trace_id[3:], 16) for x in traces]


def rows_of(store: SqlStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_delete_by_age_removes_traces_and_their_children(store: SqlStore) -> None:
    load(store, range(1, 11))
    assert store.delete_traces("0", max_timestamp_millis=BASE_MS + 5000) == 5
    assert remaining(store) == [6, 7, 8, 9, 10]
    assert store.get_trace(tid(3)) is None
    assert (rows_of(store, t.spans), rows_of(store, t.trace_tags)) == (10, 5)
    assert rows_of(store, t.trace_metadata) == 5


def test_delete_by_age_and_count_takes_the_oldest_first(store: SqlStore) -> None:
    load(store, range(1, 11))
    deleted = store.delete_traces("0", max_timestamp_millis=BASE_MS + 8000, max_traces=3)
    assert deleted == 3
    assert remaining(store) == [4, 5, 6, 7, 8, 9, 10]


def test_delete_by_age_stays_within_the_experiment(store: SqlStore) -> None:
    load(store, range(1, 4), experiment_id="0")
    load(store, range(4, 7), experiment_id="9")
    assert store.delete_traces("9", max_timestamp_millis=BASE_MS + 10_000) == 3
    assert remaining(store) == [1, 2, 3]


def test_delete_by_ids(store: SqlStore) -> None:
    load(store, range(1, 4), experiment_id="0")
    load(store, range(4, 6), experiment_id="7")
    deleted = store.delete_traces("0", trace_ids=[tid(1), tid(3), tid(4), tid(99), tid(1)])
    assert deleted == 2  # trace 4 is in another experiment; 99 does not exist
    assert remaining(store) == [2, 4, 5]
    assert store.delete_traces("0", trace_ids=[]) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of max_timestamp_millis"),
        ({"max_timestamp_millis": 1, "trace_ids": ["x"]}, "exactly one of max_timestamp_millis"),
        ({"trace_ids": ["x"], "max_traces": 1}, "max_traces applies only"),
        ({"max_timestamp_millis": 1, "max_traces": 0}, "positive integer"),
        ({"max_timestamp_millis": "soon"}, "must be an integer"),
        ({"trace_ids": "tr-1"}, "list of trace ids"),
    ],
)
def test_bad_delete_arguments(store: SqlStore, kwargs: dict[str, object], message: str) -> None:
    load(store, range(1, 3))
    with pytest.raises(InvalidArgumentError, match=message):
        store.delete_traces("0", **kwargs)  # type: ignore[arg-type]
    assert remaining(store) == [1, 2]


def test_set_replace_and_delete_a_trace_tag(store: SqlStore) -> None:
    load(store, range(1, 3))
    store.set_trace_tag(tid(1), "reviewed", "yes")
    store.set_trace_tag(tid(1), "k", "changed")
    info = store.get_trace_info(tid(1))
    assert info is not None and info.tags == {"k": "changed", "reviewed": "yes"}
    found, _ = store.search_traces(filter_string="tags.reviewed = 'yes'")
    assert [x.info.trace_id for x in found] == [tid(1)]
    store.delete_trace_tag(tid(1), "reviewed")
    store.delete_trace_tag(tid(1), "never-set")
    info = store.get_trace_info(tid(1))
    assert info is not None and info.tags == {"k": "changed"}


def test_tags_of_an_unknown_trace(store: SqlStore) -> None:
    with pytest.raises(ResourceNotFoundError, match="No trace with id"):
        store.set_trace_tag(tid(404), "a", "b")
    with pytest.raises(ResourceNotFoundError, match="No trace with id"):
        store.delete_trace_tag(tid(404), "a")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", "v", "non-empty string"),
        (None, "v", "non-empty string"),
        ("k" * 251, "v", "the limit is 250"),
        ("k", "v" * 8001, "the limit is 8000"),
        ("k", 5, "must be a string"),
        ("k\x00", "v", "NUL"),
    ],
)
def test_trace_tags_are_validated(
    store: SqlStore, key: object, value: object, message: str
) -> None:
    load(store, range(1, 2))
    with pytest.raises(InvalidArgumentError, match=message):
        store.set_trace_tag(tid(1), key, value)  # type: ignore[arg-type]


def test_the_longest_allowed_tag(store: SqlStore) -> None:
    load(store, range(1, 2))
    store.set_trace_tag(tid(1), "k" * 250, "v" * 8000)
    info = store.get_trace_info(tid(1))
    assert info is not None and info.tags["k" * 250] == "v" * 8000
