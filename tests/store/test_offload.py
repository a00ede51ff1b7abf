"""``OffloadingStore`` over each SQL back end with a local artifact folder: the write path a
direct user (not the server) takes, references in the rows, reads, failures and odd ids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.store._factory import sid, span_row, tid, trace_row
from threadline.artifacts import ArtifactStoreError
from threadline.artifacts.local import LocalArtifactRepository
from threadline.entities.span import SpanEvent
from threadline.errors import InvalidArgumentError, StoreError
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
    assert raw.inputs[REFERENCE]["key"] == artifact_key(tid(1), sid(1000), "inputs")
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


def test_ids_that_are_not_key_safe_are_hashed(offloading: OffloadingStore, folder: Path) -> None:
    span = dataclasses.replace(
        span_row(1, 0, inputs=BIG), trace_id="tr-../../escape", span_id="a/b"
    )
    offloading.log_batch([], [span])
    (path,) = files(folder)
    assert path.startswith(trace_prefix("tr-../../escape"))
    assert path.startswith("traces/h-") and ".." not in path
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
