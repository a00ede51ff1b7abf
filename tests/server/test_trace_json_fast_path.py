"""The trace routes splice stored payload JSON into the response unparsed where that is
safe, and send what the old code sent: compared, value by value with number types, with
the body the eager read path and ``to_dict`` rendering produce for payloads of every kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import ClientFactory
from tests.store._stored_payloads import (
    CASES,
    FALLBACK_CASES,
    case_span,
    eager_spans,
    insert_trace,
    same_json,
    span_id,
    trace_id,
)
from threadline import _json as fast_json
from threadline.artifacts.local import LocalArtifactRepository
from threadline.entities.trace import Trace, TraceData
from threadline.server.errors import SpanDataJSONResponse
from threadline.store.base import SpanRow, TraceRow
from threadline.store.offload import OffloadingStore
from threadline.store.sql import SqlStore

SAFE_CASES = [name for name in CASES if name not in FALLBACK_CASES]
#: Cases whose every payload is strict JSON and whose events are empty: nothing to parse.
UNPARSED_CASES = ["plain", "spacing", "constants", "numbers", "big_ints", "unicode"]


def old_trace(store: SqlStore, tid: str) -> Trace:
    """The trace as the old ``get_trace`` built it (eager spans)."""
    info = store.get_trace_info(tid)
    assert info is not None
    return Trace(info=info, data=TraceData(spans=eager_spans(store, tid)))


def old_body(content: Any) -> bytes:
    """How the old routes rendered ``content`` (orjson, else the standard path)."""
    return SpanDataJSONResponse(content).body


def case_trace(store: SqlStore, n: int, *names: str) -> str:
    """Trace ``n``: a root span per case in ``names`` and a plain child of the first."""
    spans = [case_span(name, span_id=span_id(i + 1)) for i, name in enumerate(names)]
    spans.append({"span_id": span_id(99), "parent_id": span_id(1), "inputs": '{"child": 1}'})
    return insert_trace(store, n, spans)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every stored text parsed (``_json.stored_value``) while the test runs."""
    seen: list[str] = []
    real = fast_json.stored_value

    def spy(text: str) -> Any:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(fast_json, "stored_value", spy)
    return seen


@pytest.mark.parametrize("name", list(CASES))
def test_a_trace_reads_as_before(store_client: TestClient, any_store: SqlStore, name: str) -> None:
    tid = case_trace(any_store, 1, name)
    response = store_client.get(f"/api/v1/traces/{tid}")
    assert response.status_code == 200
    expected = old_body({"trace": old_trace(any_store, tid).to_dict()})
    assert same_json(response.content, expected)
    if name == "big_ints":
        inputs = json.loads(response.content)["trace"]["data"]["spans"][0]["inputs"]
        assert inputs == {"n": 123456789012345678901234, "m": -98765432109876543210}


@pytest.mark.parametrize("name", UNPARSED_CASES)
def test_strict_json_payloads_are_sent_unparsed(
    client: TestClient, sqlite_store: SqlStore, parses: list[str], name: str
) -> None:
    tid = case_trace(sqlite_store, 1, name)
    response = client.get(f"/api/v1/traces/{tid}")
    assert response.status_code == 200 and parses == []
    span = client.get(f"/api/v1/traces/{tid}/spans/{span_id(1)}")
    assert span.status_code == 200 and parses == []
    expected = old_trace(sqlite_store, tid)  # the eager oracle parses, of course
    assert same_json(response.content, old_body({"trace": expected.to_dict()}))
    assert same_json(span.content, old_body({"span": expected.data.spans[0].to_dict()}))


def test_other_payloads_are_parsed_as_before(
    client: TestClient, sqlite_store: SqlStore, parses: list[str]
) -> None:
    tid = case_trace(sqlite_store, 1, "non_finite", "events")
    assert client.get(f"/api/v1/traces/{tid}").status_code == 200
    inputs, outputs, attributes, _ = CASES["non_finite"]
    assert {inputs, outputs, attributes} <= set(parses) and CASES["events"][3] in parses


@pytest.mark.parametrize(
    ("names", "shown"), [(["out_of_range"], None), (["out_of_range", "big_ints"], "Infinity")]
)
def test_numbers_beyond_the_double_range_render_as_before(
    client: TestClient, sqlite_store: SqlStore, names: list[str], shown: str | None
) -> None:
    """``1e400`` reads as inf, which orjson writes as null and the standard path (taken
    before when a big integer was anywhere in the response) as "Infinity"."""
    tid = case_trace(sqlite_store, 1, *names)
    body = json.loads(client.get(f"/api/v1/traces/{tid}").content)
    assert body["trace"]["data"]["spans"][0]["inputs"] == shown


def _every_read(client: TestClient, store: SqlStore, tids: list[str]) -> None:
    """Trace, span and search bodies, each compared with the old rendering."""
    for tid in tids:
        trace = old_trace(store, tid)
        got = client.get(f"/api/v1/traces/{tid}")
        assert same_json(got.content, old_body({"trace": trace.to_dict()})), tid
        for span in trace.data.spans:
            one = client.get(f"/api/v1/traces/{tid}/spans/{span.span_id}")
            assert same_json(one.content, old_body({"span": span.to_dict()})), span.name
    traces = [old_trace(store, tid) for tid in reversed(tids)]  # newest first
    for include_spans in (True, False):
        body = {"experiment_ids": ["0"], "include_spans": include_spans}
        got = client.post("/api/v1/traces/search", json=body)
        items = [t.to_dict() for t in traces]
        if not include_spans:
            items = [{**item, "data": {"spans": []}} for item in items]
        assert same_json(got.content, old_body({"traces": items, "next_page_token": None}))
    safe = client.post(
        "/api/v1/traces/search",
        json={"filter_string": "trace.name = 'trace-1'", "include_spans": True},
    )
    expected = {"traces": [old_trace(store, tids[0]).to_dict()], "next_page_token": None}
    assert same_json(safe.content, old_body(expected))


def test_every_read_route_answers_as_before(store_client: TestClient, any_store: SqlStore) -> None:
    tids = [
        case_trace(any_store, 1, *SAFE_CASES),  # the fast path throughout
        case_trace(any_store, 2, *CASES),  # orjson refuses some: the standard path
    ]
    _every_read(store_client, any_store, tids)


@pytest.mark.parametrize("missing", ["fragments", "orjson"])
def test_without_orjson_fragments_the_answers_are_the_same(
    client: TestClient, sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    tids = [case_trace(sqlite_store, 1, *SAFE_CASES), case_trace(sqlite_store, 2, *CASES)]
    expected = {tid: client.get(f"/api/v1/traces/{tid}").content for tid in tids}
    monkeypatch.setattr(fast_json, "HAVE_FRAGMENTS", False)
    if missing == "orjson":
        monkeypatch.setattr(fast_json, "_orjson", None)
        monkeypatch.setattr(fast_json, "HAVE_ORJSON", False)
    for tid in tids:
        got = client.get(f"/api/v1/traces/{tid}").content
        assert same_json(got, expected[tid])
    _every_read(client, sqlite_store, tids)


def test_an_orjson_refusal_renders_the_plain_values(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[bool] = []

    def build(verbatim: bool) -> Any:
        built.append(verbatim)
        return {"n": 2**70} if verbatim else {"n": 2**70, "plain": True}

    from threadline.server.api import stored_span_response

    body = stored_span_response(build).body
    assert json.loads(body) == {"n": 2**70, "plain": True} and built == [True, False]


def test_offloaded_payloads_are_resolved_in_the_response(
    make_client: ClientFactory, sqlite_store: SqlStore, tmp_path: Path, parses: list[str]
) -> None:
    offloading = OffloadingStore(
        sqlite_store, LocalArtifactRepository(tmp_path / "artifacts"), threshold_bytes=1000
    )
    big = {"text": "b" * 5000}
    events = [{"name": "chunk", "timestamp_ns": 7, "attributes": {"text": "e" * 5000}}]
    tid = trace_id(1)
    root = _span_row(tid, 1, None, json.dumps(big), json.dumps(events))
    small = _span_row(tid, 2, span_id(1), '{"q": "caf\u00e9"}', "[]")
    trace = TraceRow(trace_id=tid, experiment_id="0", request_time=1, state="OK")
    offloading.log_batch([trace], [root, small])
    client = make_client(store=offloading)
    parses.clear()

    body = json.loads(client.get(f"/api/v1/traces/{tid}").content)
    spans = body["trace"]["data"]["spans"]
    assert spans[0]["inputs"] == big and spans[0]["events"] == events
    assert spans[1]["inputs"] == {"q": "caf\u00e9"} and spans[1]["events"] == []
    assert small.inputs_json not in parses  # no reference: sent without being parsed
    one = json.loads(client.get(f"/api/v1/traces/{tid}/spans/{span_id(1)}").content)
    assert one["span"] == spans[0]


def _span_row(tid: str, n: int, parent: str | None, inputs: str, events: str) -> SpanRow:
    return SpanRow(
        trace_id=tid,
        span_id=span_id(n),
        parent_id=parent,
        name=f"s{n}",
        span_type="CHAIN",
        start_time_ns=1_000 + n,
        end_time_ns=2_000,
        status_code="OK",
        status_message="",
        inputs_json=inputs,
        outputs_json='"out"',
        attributes_json="{}",
        events_json=events,
    )
