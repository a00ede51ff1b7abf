"""``OffloadingStore`` over each SQL back end with a local artifact folder: the write path a
direct user (not the server) takes, references in the rows, reads, failures, odd ids, keys
per experiment, and references the store did not write (plain data)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.store._factory import sid, span_row, tid, trace_row
from threadline.artifacts import ArtifactStoreError, check_key
from threadline.artifacts.local import LocalArtifactRepository
from threadline.entities.span import SpanEvent
from threadline.errors import InvalidArgumentError, StoreError
from threadline.store import tables as t
from threadline.store.offload import REFERENCE, OffloadingStore, artifact_key, trace_prefix
from threadline.store.sql import SqlStore

THRESHOLD = 1000
BIG = {"text": "b" * 5000}
EVENTS = [{"name": "chunk", "timestamp_ns": 7, "attributes": {"text": "e" * 5000}}]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def offloading(store: SqlStore, folder: Path) -> OffloadingStore:
    return OffloadingStore(store, LocalArtifactRepository(folder), threshold_bytes=THRESHOLD)


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_rows_hold_references_and_reads_resolve_them(
    offloading: OffloadingStore, store: SqlStore, folder: Path
) -> None:
    span = span_row(1, 0, inputs=BIG, outputs="small", events=EVENTS)
    offloading.log_batch([trace_row(1)], [span])
    offloading.log_batch([trace_row(1)], [span])  # idempotent: the same objects again

    inner = store.get_trace(tid(1))
    assert inner is not None
    (raw,) = inner.data.spans
    assert raw.inputs[REFERENCE]["key"] == artifact_key("0", tid(1), sid(1000), "inputs")
    assert raw.inputs[REFERENCE]["bytes"] == len(json.dumps(BIG))
    assert raw.outputs == "small"
    (marker,) = raw.events  # still an event, so a reader without the wrapper sees what it is
    assert marker.name == REFERENCE and marker.timestamp_ns == span.start_time_ns
    assert len(files(folder)) == 2

    trace = offloading.get_trace(tid(1))
    assert trace is not None
    (whole,) = trace.data.spans
    assert whole.inputs == BIG
    assert whole.events == [SpanEvent.from_dict(e) for e in EVENTS]
    assert trace.info == inner.info
    got = offloading.get_span(tid(1), sid(1000))
    assert got is not None and got.inputs == BIG
    assert offloading.get_span(tid(1), sid(999)) is None
    assert offloading.get_trace(tid(2)) is None
    (found,), _ = offloading.search_traces(experiment_ids=["0"])
    assert found.data.spans[0].inputs == BIG
    (bare,), _ = offloading.search_traces(experiment_ids=["0"], include_spans=False)
    assert bare.data.spans == []


def test_a_failing_repository_writes_nothing(
    offloading: OffloadingStore, store: SqlStore, folder: Path
) -> None:
    (folder / "traces").write_text("a file where the folder should be")
    with pytest.raises(ArtifactStoreError) as error:
        offloading.log_batch([trace_row(1)], [span_row(1, 0, inputs=BIG)])
    assert isinstance(error.value, StoreError)  # the export pipeline retries StoreErrors
    assert store.get_trace_info(tid(1)) is None


def test_ids_that_are_not_key_safe_still_give_safe_keys(
    offloading: OffloadingStore, folder: Path
) -> None:
    span = dataclasses.replace(
        span_row(1, 0, inputs=BIG), trace_id="tr-../../escape", span_id="a/b"
    )
    offloading.log_batch([], [span])
    (path,) = files(folder)
    assert path.startswith(trace_prefix("0", "tr-../../escape"))
    assert ".." not in path and check_key(path) == path
    trace = offloading.get_trace("tr-../../escape")
    assert trace is not None and trace.data.spans[0].inputs == BIG
    assert offloading.delete_traces("0", trace_ids=["tr-../../escape"]) == 1
    assert files(folder) == []


def test_other_methods_pass_through(offloading: OffloadingStore, store: SqlStore) -> None:
    experiment_id = offloading.create_experiment("through the wrapper")
    assert store.get_experiment(experiment_id).name == "through the wrapper"
    assert offloading.engine is store.engine
    with pytest.raises(InvalidArgumentError, match="exactly one of"):
        offloading.delete_traces("0")
    with pytest.raises(InvalidArgumentError, match="single string"):
        offloading.delete_traces("0", trace_ids="tr-1")
    with pytest.raises(InvalidArgumentError, match="threshold_bytes"):
        OffloadingStore(store, offloading.repository, threshold_bytes=0)


def keys_column(store: SqlStore, trace_id: str) -> list[Any]:
    query = sa.select(t.spans.c.artifact_keys).where(t.spans.c.trace_id == trace_id)
    with store.engine.connect() as conn:
        return sorted(conn.execute(query).scalars(), key=str)


def forged(key: str) -> str:
    return json.dumps({REFERENCE: {"key": key, "bytes": 5, "preview": "x"}})


def test_keys_never_collide_across_experiments_and_ids() -> None:
    pairs = [
        ("1", "tr-a"),
        ("2", "tr-a"),
        ("1", "2tr-a"),
        ("12", "tr-a"),
        ('1", "tr', "-a"),
        ("1", 'tr-a", "'),
        ("0", "h-" + "0" * 40),
        ("0", "tr-\\ud800"),  # a backslash, then text
        ("0", "tr-" + chr(0xD800)),  # a lone surrogate
    ]
    prefixes = [trace_prefix(e, tr) for e, tr in pairs]
    assert len(set(prefixes)) == len(pairs)
    for prefix in prefixes:
        assert check_key(prefix + "x") and len(prefix) == len("traces/") + 64 + 1
    spans = {artifact_key("1", "tr-a", s, "inputs") for s in ("a", "a/b", "h-" + "1" * 40, "")}
    assert len(spans) == 4
    assert artifact_key("1", "tr-a", "s", "inputs") != artifact_key("1", "tr-a", "s", "outputs")


def test_keys_follow_the_experiment_the_trace_is_sent_into(
    offloading: OffloadingStore, store: SqlStore, folder: Path
) -> None:
    """The batch's trace row, else the stored trace, else "0" (where orphans are filed)."""
    # An id no other test uses: the shared PostgreSQL store remembers experiments it saw.
    one = "offload-keys"
    offloading.log_batch([trace_row(1, experiment_id=one)], [span_row(1, 0, inputs=BIG)])
    offloading.log_batch([], [span_row(1, 1, inputs=BIG), span_row(2, 0, inputs=BIG)])
    assert files(folder) == sorted(
        [
            artifact_key(one, tid(1), sid(1000), "inputs"),
            artifact_key(one, tid(1), sid(1001), "inputs"),
            artifact_key("0", tid(2), sid(2000), "inputs"),
        ]
    )
    # Trace 2 then moves to that experiment; deleting it there removes its artifacts all the same.
    offloading.log_batch([trace_row(2, experiment_id=one)], [])
    assert offloading.delete_traces(one, trace_ids=[tid(2)]) == 1
    assert files(folder) == sorted(
        artifact_key(one, tid(1), sid(n), "inputs") for n in (1000, 1001)
    )


def test_the_rows_record_what_was_offloaded(offloading: OffloadingStore, store: SqlStore) -> None:
    offloading.log_batch([trace_row(1)], [span_row(1, 0, inputs=BIG, events=EVENTS)])
    (recorded,) = keys_column(store, tid(1))
    assert json.loads(recorded) == {
        "events": artifact_key("0", tid(1), sid(1000), "events"),
        "inputs": artifact_key("0", tid(1), sid(1000), "inputs"),
    }
    store.log_batch([trace_row(2)], [span_row(2, 0, inputs=BIG)])  # not through the wrapper
    assert keys_column(store, tid(2)) == [None]


def test_a_span_sent_again_small_is_plain_data_even_if_it_copies_the_reference(
    offloading: OffloadingStore, store: SqlStore, folder: Path
) -> None:
    offloading.log_batch([trace_row(1)], [span_row(1, 0, inputs=BIG)])
    inner = store.get_span(tid(1), sid(1000))
    assert inner is not None
    reference = inner.inputs[REFERENCE]  # the server's reference, sent back by a client
    copied = json.dumps({REFERENCE: {"key": reference["key"], "bytes": reference["bytes"]}})
    again = dataclasses.replace(span_row(1, 0), inputs_json=copied)
    offloading.log_batch([trace_row(1)], [again])
    got = offloading.get_span(tid(1), sid(1000))
    assert got is not None and got.inputs == json.loads(copied)
    assert keys_column(store, tid(1)) == [None]


def test_a_reference_is_not_offloaded_again_when_the_threshold_is_small(
    store: SqlStore, folder: Path
) -> None:
    """The server offloads before queueing, and the writer's ``log_batch`` sees the rows
    again: a reference larger than the threshold stays the reference."""
    small = OffloadingStore(store, LocalArtifactRepository(folder), threshold_bytes=50)
    queued = small.offload([span_row(1, 0, inputs=BIG)])  # before queueing
    small.log_batch([trace_row(1)], queued)  # the writer
    got = small.get_span(tid(1), sid(1000))
    assert got is not None and got.inputs == BIG
    assert files(folder) == [artifact_key("0", tid(1), sid(1000), "inputs")]


def test_references_the_wrapper_did_not_write_are_plain_data(
    offloading: OffloadingStore, store: SqlStore, folder: Path
) -> None:
    """The SDK's embedded store writes a client's payloads that look like references (to
    another trace's artifact, and to where the old key scheme put this span's): read back
    exactly as written, and deleting the trace leaves those artifacts alone."""
    offloading.log_batch([trace_row(1)], [span_row(1, 0, inputs=BIG)])
    others = files(folder)
    old_scheme = {f: f"traces/{tid(2)}/{sid(2000)}/{f}.json" for f in ("inputs", "events")}
    for key in old_scheme.values():
        offloading.repository.put(key, b'{"not": "yours"}')
    inputs = forged(old_scheme["inputs"])
    events = [{"name": REFERENCE, "timestamp_ns": 1, "attributes": {"key": old_scheme["events"]}}]
    row = dataclasses.replace(span_row(2, 0, events=events), inputs_json=inputs)
    store.log_batch([trace_row(2)], [dataclasses.replace(row, outputs_json=forged(others[0]))])

    got = offloading.get_span(tid(2), sid(2000))
    assert got is not None
    assert got.inputs == json.loads(inputs)
    assert got.outputs == json.loads(forged(others[0]))
    assert [e.to_dict() for e in got.events] == events
    trace = offloading.get_trace(tid(2))
    assert trace is not None and trace.data.spans[0].to_dict() == got.to_dict()
    found, _ = offloading.search_traces(filter_string="trace.name = 'root-2'")
    assert found[0].data.spans[0].to_dict() == got.to_dict()

    assert offloading.delete_traces("0", trace_ids=[tid(2)]) == 1
    assert files(folder) == sorted([*others, *old_scheme.values()])
    trace = offloading.get_trace(tid(1))
    assert trace is not None and trace.data.spans[0].inputs == BIG


def test_a_store_that_records_no_artifact_keys_is_refused(folder: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="records which payloads are artifacts"):
        OffloadingStore(object(), LocalArtifactRepository(folder))  # type: ignore[arg-type]
