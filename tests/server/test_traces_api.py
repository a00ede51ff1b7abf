"""``/api/v1/traces``: log rows (the SDK's path), get, search, delete, tags."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.server.conftest import T0, batch, span_row, trace_id, trace_row

API = "/api/v1/traces"


def _log(client: TestClient, body: dict, **headers: str) -> dict:
    response = client.post(f"{API}/batch", json=body, headers=headers)
    assert response.status_code in (200, 202), response.text
    return response.json()


def test_logged_rows_read_back_at_once(store_client: TestClient) -> None:
    body = batch(1)
    child = span_row(1, span=2, parent=1, span_type="LLM", input_tokens=3, output_tokens=4)
    body["spans"].append(child)
    assert _log(store_client, body) == {"traces": 1, "spans": 2, "written": True}

    trace = store_client.get(f"{API}/{trace_id(1)}").json()["trace"]
    assert trace["info"]["state"] == "OK" and trace["info"]["request_preview"] == "question 1"
    assert [s["span_id"] for s in trace["data"]["spans"]] == [f"{1:016x}", f"{2:016x}"]
    assert trace["data"]["spans"][0]["inputs"] == {"question": 1}
    assert trace["data"]["spans"][1]["parent_id"] == f"{1:016x}"
    info = store_client.get(f"{API}/{trace_id(1)}/info").json()["trace_info"]
    assert info == trace["info"]
    assert '"total_tokens": 7' in info["trace_metadata"]["token_usage"]


def test_search_filters_orders_and_pages(store_client: TestClient) -> None:
    _log(store_client, batch(1, 2, 3, 4, 5))
    error = trace_row(6, state="ERROR", request_time=T0 // 1_000_000 + 60)
    _log(store_client, {"traces": [error], "spans": [span_row(6, status_code="ERROR")]})

    found = store_client.post(
        f"{API}/search", json={"filter_string": "trace.status = 'ERROR'"}
    ).json()
    assert [t["info"]["trace_id"] for t in found["traces"]] == [trace_id(6)]

    ids: list[str] = []
    token = None
    while True:
        body = {"max_results": 2, "order_by": ["timestamp_ms ASC"], "include_spans": False}
        page = store_client.post(f"{API}/search", json={**body, "page_token": token}).json()
        ids += [t["info"]["trace_id"] for t in page["traces"]]
        assert all(t["data"]["spans"] == [] for t in page["traces"])
        token = page["next_page_token"]
        if token is None:
            break
    assert ids == [trace_id(n) for n in range(1, 7)]

    listed = store_client.get(API, params={"experiment_id": "0", "max_results": 3}).json()
    assert len(listed["traces"]) == 3 and listed["next_page_token"]
    with_spans = store_client.get(API, params={"include_spans": True, "max_results": 1}).json()
    assert with_spans["traces"][0]["data"]["spans"]


def test_bad_filter_is_400_naming_the_token(client: TestClient) -> None:
    response = client.post(f"{API}/search", json={"filter_string": "trace.status = 'OK' OR 1=1"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT" and "'OR'" in error["message"]
    bad_order = client.post(f"{API}/search", json={"order_by": ["timestamp_ms; DROP TABLE x"]})
    assert bad_order.status_code == 400


def test_delete_by_ids_by_time_and_by_count(store_client: TestClient) -> None:
    _log(store_client, batch(1, 2, 3, 4, 5))
    by_ids = store_client.post(
        f"{API}/delete", json={"experiment_id": "0", "trace_ids": [trace_id(5)]}
    )
    assert by_ids.json() == {"deleted": 1}
    oldest_two = {
        "experiment_id": "0",
        "max_timestamp_millis": T0 // 1_000_000 + 10,
        "max_traces": 2,
    }
    assert store_client.post(f"{API}/delete", json=oldest_two).json() == {"deleted": 2}
    remaining = store_client.post(f"{API}/search", json={}).json()["traces"]
    assert sorted(t["info"]["trace_id"] for t in remaining) == [trace_id(3), trace_id(4)]
    neither = store_client.post(f"{API}/delete", json={"experiment_id": "0"})
    assert neither.status_code == 400


def test_set_and_delete_tags(store_client: TestClient) -> None:
    _log(store_client, batch(1))
    tagged = store_client.post(f"{API}/{trace_id(1)}/tags", json={"key": "env", "value": "prod"})
    assert tagged.json()["trace_info"]["tags"] == {"env": "prod"}
    found = store_client.post(f"{API}/search", json={"filter_string": "tags.env = 'prod'"})
    assert len(found.json()["traces"]) == 1
    untagged = store_client.delete(f"{API}/{trace_id(1)}/tags", params={"key": "env"})
    assert untagged.json()["trace_info"]["tags"] == {}
    missing = store_client.post(f"{API}/{trace_id(9)}/tags", json={"key": "a", "value": "b"})
    assert missing.status_code == 404


def test_batches_are_answered_once_committed_unless_queued_is_asked_for(
    client: TestClient,
) -> None:
    assert _log(client, batch(1))["written"] is True  # no header: committed
    assert client.get(f"{API}/{trace_id(1)}").status_code == 200
    queued = client.post(f"{API}/batch", json=batch(2, 3), headers={"x-threadline-ack": "queued"})
    assert queued.status_code == 202 and queued.json()["written"] is False
    _log(client, batch(4), **{"x-threadline-ack": "committed"})  # queues behind: all written
    found = client.post(f"{API}/search", json={}).json()["traces"]
    assert len(found) == 4


def test_an_unnamed_lossy_mode_and_bad_ack_headers_are_refused(client: TestClient) -> None:
    legacy = client.post(f"{API}/batch", json=batch(1), headers={"x-threadline-sync": "0"})
    assert legacy.status_code == 400 and "x-threadline-ack: queued" in legacy.text
    bad = client.post(f"{API}/batch", json=batch(1), headers={"x-threadline-ack": "maybe"})
    assert bad.status_code == 400 and "x-threadline-ack" in bad.text
    assert _log(client, batch(1), **{"x-threadline-sync": "1"})["written"] is True
    assert client.post(f"{API}/search", json={}).json()["traces"][0]["info"]["trace_id"] == (
        trace_id(1)
    )


def test_traces_in_an_unknown_experiment_create_it(client: TestClient) -> None:
    _log(client, batch(1, experiment_id="77"))
    assert client.get("/api/v1/experiments/77").status_code == 200
    assert client.get(f"{API}/{trace_id(1)}").json()["trace"]["info"]["experiment_id"] == "77"


def test_deeply_nested_payloads_are_kept_as_text(client: TestClient) -> None:
    deep = "[" * 5000 + "]" * 5000
    body = {
        "traces": [trace_row(1)],
        "spans": [span_row(1, inputs_json=deep, attributes_json=deep)],
    }
    _log(client, body)
    span = client.get(f"{API}/{trace_id(1)}").json()["trace"]["data"]["spans"][0]
    assert span["inputs"] == deep  # a string now, readable without recursion
