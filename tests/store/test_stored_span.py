"""Stored spans parse their payloads lazily (``store/_stored_span.py``), yet read exactly as
the eagerly built spans of the old read path; the span order, ties included, is unchanged;
the offloading store resolves references and leaves other spans unparsed."""

from __future__ import annotations

import copy
import json
import pickle
import random
from pathlib import Path

import pytest

from tests.store._stored_payloads import (
    CASES,
    T0,
    case_span,
    eager_spans,
    insert_trace,
    old_ordered_spans,
    span_id,
    trace_id,
)
from threadline import _json as fast_json
from threadline.artifacts.local import LocalArtifactRepository
from threadline.entities.span import Span
from threadline.store._stored_span import NonFiniteValue, StoredSpan, span_dict
from threadline.store.offload import OffloadingStore
from threadline.store.sql import SqlStore, _ordered_spans

from ._factory import span_row, trace_row


def all_cases(store: SqlStore) -> str:
    return insert_trace(store, 1, [case_span(name) for name in CASES])


def test_lazy_spans_equal_the_eagerly_built_ones(store: SqlStore) -> None:
    tid = all_cases(store)
    trace = store.get_trace(tid)
    assert trace is not None
    expected = eager_spans(store, tid)
    assert all(type(s) is StoredSpan for s in trace.data.spans)
    assert [s.span_id for s in trace.data.spans] == [s.span_id for s in expected]
    for lazy, eager in zip(trace.data.spans, expected):
        assert repr(lazy.to_dict()) == repr(eager.to_dict())  # repr: exact types, -0.0
        assert lazy == eager and eager == lazy
        assert repr(lazy) == repr(eager)
        assert (lazy.inputs, lazy.outputs) == (eager.inputs, eager.outputs)
        assert lazy.attributes == eager.attributes and lazy.events == eager.events
        assert lazy.status == eager.status and lazy.duration_ns == eager.duration_ns
        assert lazy.get_attribute("model") == eager.get_attribute("model")
    for name in CASES:  # one span at a time, read straight through get_span
        (eager,) = [s for s in expected if s.name == name]
        got = store.get_span(tid, eager.span_id)
        assert type(got) is StoredSpan and repr(got.to_dict()) == repr(eager.to_dict())


def test_payloads_are_parsed_once_on_first_read(store: SqlStore) -> None:
    tid = insert_trace(store, 1, [case_span("plain")])
    span = store.get_span(tid, span_id(1))
    assert isinstance(span, StoredSpan)
    assert span.unparsed_text("inputs") == CASES["plain"][0]
    first = span.inputs
    assert span.unparsed_text("inputs") is None and span.inputs is first
    assert "_inputs_text" not in vars(span)  # the text is not kept beside the value
    assert span.unparsed_text("attributes") == CASES["plain"][2]
    span.attributes["added"] = 1  # the value read is the span's own, as on a Span
    assert span.to_dict()["attributes"] == {"model": "m", "t": 0.5, "added": 1}
    assert span_dict(span, verbatim=True)["attributes"] == {"model": "m", "t": 0.5, "added": 1}
    span._outputs = "replaced"  # the live span's way of writing a field still works
    assert span.outputs == "replaced" and span.unparsed_text("outputs") is None
    with pytest.raises(ValueError, match="not a span payload"):
        span.unparsed_text("name")


def test_a_field_parsed_by_another_thread_meanwhile_is_read_not_reparsed(
    store: SqlStore,
) -> None:
    """Two threads may start reading one field at once; the one that finds the text gone
    (the other parsed it) returns the other's value instead of failing."""
    tid = insert_trace(store, 1, [case_span("plain")])
    span = store.get_span(tid, span_id(1))
    assert isinstance(span, StoredSpan)
    state = vars(span)
    state["_inputs"] = parsed = {"parsed": "by the other thread"}
    del state["_inputs_text"]
    assert type(span).__dict__["_inputs"].__get__(span, type(span)) is parsed


def test_stored_spans_copy_pickle_and_convert_like_spans(store: SqlStore) -> None:
    tid = insert_trace(store, 1, [case_span("events"), case_span("big_ints")])
    trace = store.get_trace(tid)
    assert trace is not None
    for span in trace.data.spans:
        clone = pickle.loads(pickle.dumps(span))  # unparsed (SpanEvent does not pickle)
        twin = copy.deepcopy(span)
        expected = span.to_dict()
        assert clone == span and clone.to_dict() == expected
        assert twin.to_dict() == expected
        back = StoredSpan.from_dict(expected)
        assert type(back) is Span and back == span
        assert repr(span).startswith("Span(name=")
    assert trace.data.root_span is not None and trace.data.request == json.dumps(None)


def test_verbatim_dict_splices_only_what_reads_back_the_same(store: SqlStore) -> None:
    tid = all_cases(store)
    trace = store.get_trace(tid)
    assert trace is not None
    spliced = {}
    for span in trace.data.spans:
        if span.name == "out_of_range":  # 1e400 reads as inf: the plain rendering's business
            with pytest.raises(NonFiniteValue):
                span_dict(span, verbatim=True)
            continue
        data = span_dict(span, verbatim=True)
        spliced[span.name] = [
            field for field in ("inputs", "outputs", "attributes") if _is_fragment(data[field])
        ]
        assert span_dict(span, verbatim=False) == span.to_dict()
    every = ["inputs", "outputs", "attributes"]
    assert spliced == {
        **{name: every for name in CASES if name != "out_of_range"},
        "nulls": ["inputs", "outputs"],  # attributes "null" read as {}
        "non_finite": [],  # NaN and Infinity literals read as strings: plain values, no raise
        "not_json": [],
        "pairs": ["inputs", "outputs"],  # a list of pairs is no JSON object
        "surrogate": ["attributes"],
        "nested": ["inputs", "attributes"],  # outputs too deep: text
    }


def test_a_plain_span_with_a_non_finite_number_is_rendered_plain() -> None:
    span = Span.from_dict(
        {"trace_id": trace_id(1), "span_id": span_id(1), "name": "s", "start_time_ns": 1}
    )
    assert span_dict(span, verbatim=True) == span.to_dict()
    span._inputs = {"x": [float("inf")]}
    with pytest.raises(NonFiniteValue):
        span_dict(span, verbatim=True)
    assert span_dict(span, verbatim=False) == span.to_dict()


def _is_fragment(value: object) -> bool:
    return type(value).__name__ == "Fragment"


@pytest.mark.parametrize(
    ("text", "spliced"),
    [
        ('{"a": 1}', True),
        ("  [1, 2]  ", True),
        ("null", True),
        ("123456789012345678901234", True),  # exact as written; json.loads keeps it so too
        ('"\\ud83d\\ude00"', True),
        ("NaN", False),
        ('{"x": Infinity}', False),
        ("1e400", False),
        ('"\\ud800"', False),
        ("not json", False),
        ("", False),
        ("[" * 2000 + "]" * 2000, False),
    ],
)
def test_verbatim_splices_strict_json_only(text: str, spliced: bool) -> None:
    fragment = fast_json.verbatim(text)
    assert (fragment is not None) is spliced
    if spliced:
        body = fast_json.dumps_bytes({"v": fragment})
        assert body is not None and json.loads(body)["v"] == json.loads(text)
        assert body == b'{"v":' + text.encode() + b"}"


def test_verbatim_object_wants_a_json_object() -> None:
    assert fast_json.verbatim_object("{}") is not None
    assert fast_json.verbatim_object('{"a": [1]}') is not None
    for text in ("null", "[]", "[[1, 2]]", '"{}"', "{", "{NaN: 1}"):
        assert fast_json.verbatim_object(text) is None, text


# --- order ------------------------------------------------------------------------------


def _spans(links: list[tuple[int, int | None, int]]) -> list[Span]:
    """Spans from ``(id, parent id, start offset)``."""
    return [
        Span(
            trace_id=trace_id(1),
            span_id=span_id(i),
            parent_id=None if parent is None else span_id(parent),
            name=f"s{i}",
            start_time_ns=T0 + start,
            end_time_ns=None,
        )
        for i, parent, start in links
    ]


def _ids(spans: list[Span]) -> list[str]:
    return [s.span_id for s in spans]


@pytest.mark.parametrize("seed", range(300))
def test_order_is_the_old_order_ties_and_loops_included(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 30)
    links = []
    for i in range(1, size + 1):
        parent = rng.choice([None, rng.randint(1, size), rng.randint(1, size + 5)])
        links.append((i, parent, rng.randint(0, size // rng.choice([1, 2, 4, 8]) + 1)))
    spans = _spans(links)
    by_start = sorted(spans, key=lambda s: s.start_time_ns)  # as the rows come from SQL
    for given in (spans, by_start, list(reversed(by_start))):
        assert _ids(_ordered_spans(list(given))) == _ids(old_ordered_spans(list(given)))


def test_distinct_start_times_need_no_depths() -> None:
    spans = _spans([(3, 2, 5), (1, None, 1), (2, 1, 3)])
    assert _ids(_ordered_spans(spans)) == [span_id(1), span_id(2), span_id(3)]


@pytest.mark.parametrize("child_first", [True, False])
def test_a_parent_comes_before_its_child_at_the_same_instant(
    store: SqlStore, child_first: bool
) -> None:
    parent = {"span_id": span_id(1), "start_time_ns": T0 + 5}
    child = {"span_id": span_id(2), "parent_id": span_id(1), "start_time_ns": T0 + 5}
    grandchild = {"span_id": span_id(3), "parent_id": span_id(2), "start_time_ns": T0 + 5}
    early = {"span_id": span_id(4), "parent_id": span_id(1), "start_time_ns": T0 + 1}
    rows = [grandchild, child, early, parent] if child_first else [parent, early, child, grandchild]
    tid = insert_trace(store, 1, rows)
    trace = store.get_trace(tid)
    structure = store.get_trace_structure(tid)
    assert trace is not None and structure is not None
    expected = [span_id(4), span_id(1), span_id(2), span_id(3)]
    assert _ids(trace.data.spans) == expected == _ids(eager_spans(store, tid))
    assert _ids(structure.data.spans) == expected


# --- offloading ---------------------------------------------------------------------------


def test_offloading_resolves_references_and_leaves_other_spans_unparsed(
    store: SqlStore, tmp_path: Path
) -> None:
    offloading = OffloadingStore(store, LocalArtifactRepository(tmp_path), threshold_bytes=1000)
    big = {"text": "b" * 5000}
    events = [{"name": "chunk", "timestamp_ns": 7, "attributes": {"text": "e" * 5000}}]
    spans = [
        span_row(1, 0, inputs=big, outputs="small", events=events),
        span_row(1, 1, parent=0, inputs={"q": "caf\u00e9"}, outputs={"a": 1}),
    ]
    offloading.log_batch([trace_row(1)], spans)

    trace = offloading.get_trace(trace_id(1))
    assert trace is not None
    resolved, small = trace.data.spans
    assert resolved.inputs == big and resolved.events[0].attributes == events[0]["attributes"]
    assert span_dict(resolved, verbatim=True) == resolved.to_dict()
    assert isinstance(small, StoredSpan)  # no reference: still the stored span, unparsed
    assert all(small.unparsed_text(f) is not None for f in ("inputs", "outputs", "events"))
    assert small.inputs == {"q": "caf\u00e9"}

    got = offloading.get_span(trace_id(1), resolved.span_id)
    assert got is not None and got.inputs == big
    (found,), _ = offloading.search_traces(experiment_ids=["0"])
    assert [s.to_dict() for s in found.data.spans] == [s.to_dict() for s in trace.data.spans]


def test_offloading_leaves_references_it_did_not_write_as_they_are(
    store: SqlStore, tmp_path: Path
) -> None:
    """Rows written without ``OffloadingStore`` hold no reference, however they are spelt
    (plainly or with ``\\u`` escapes), even to an artifact that exists."""
    repository = LocalArtifactRepository(tmp_path)
    offloading = OffloadingStore(store, repository, threshold_bytes=1000)
    key = f"traces/{trace_id(1)}/{span_id(1)}/inputs.json"
    repository.put(key, b'{"whole": true}')
    plain = '{"threadline.artifact": {"key": "%s", "bytes": 15}}' % key
    escaped = '{"threadline\\u002eartifact": {"key": "%s", "bytes": 15}}' % key
    insert_trace(store, 1, [{"inputs": escaped, "outputs": plain}])
    got = offloading.get_span(trace_id(1), span_id(1))
    assert got is not None
    assert got.inputs == json.loads(escaped) and got.outputs == json.loads(plain)
