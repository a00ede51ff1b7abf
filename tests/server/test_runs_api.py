"""``/api/v1/runs``: create, get, update, log a batch of params/metrics/tags, search."""

from __future__ import annotations

from fastapi.testclient import TestClient

API = "/api/v1/runs"


def _run(client: TestClient, **fields: object) -> dict:
    response = client.post(API, json={"experiment_id": "0", **fields})
    assert response.status_code == 201, response.text
    return response.json()["run"]


def test_create_get_update_delete(store_client: TestClient) -> None:
    run = _run(store_client, run_name="first", tags={"a": "1"})
    run_id = run["info"]["run_id"]
    assert run["info"]["status"] == "RUNNING" and run["data"]["tags"] == {"a": "1"}
    assert store_client.get(f"{API}/{run_id}").json()["run"] == run

    updated = store_client.patch(f"{API}/{run_id}", json={"status": "FINISHED", "end_time": 5})
    assert updated.json()["run_info"]["status"] == "FINISHED"
    assert updated.json()["run_info"]["end_time"] == 5

    deleted = store_client.delete(f"{API}/{run_id}").json()["run"]
    assert deleted["info"]["lifecycle_stage"] == "deleted"
    assert store_client.get(f"{API}/missing").status_code == 404


def test_log_batch_and_metric_history(store_client: TestClient) -> None:
    run_id = _run(store_client)["info"]["run_id"]
    body = {
        "params": {"lr": "0.1"},
        "metrics": [
            {"key": "loss", "value": 1.0, "timestamp": 1, "step": 0},
            {"key": "loss", "value": 0.5, "timestamp": 2, "step": 1},
        ],
        "tags": {"stage": "train"},
    }
    data = store_client.post(f"{API}/{run_id}/log-batch", json=body).json()["run"]["data"]
    assert data == {"params": {"lr": "0.1"}, "metrics": {"loss": 0.5}, "tags": {"stage": "train"}}

    history = store_client.get(f"{API}/{run_id}/metrics/history", params={"key": "loss"}).json()
    assert [m["value"] for m in history["metrics"]] == [1.0, 0.5]

    changed = store_client.post(f"{API}/{run_id}/log-batch", json={"params": {"lr": "0.2"}})
    assert changed.status_code == 400 and "immutable" in changed.json()["error"]["message"]

    untagged = store_client.delete(f"{API}/{run_id}/tags", params={"key": "stage"})
    assert untagged.json()["run"]["data"]["tags"] == {}


def test_search_with_a_filter_and_paging(store_client: TestClient) -> None:
    for n in range(3):
        run_id = _run(store_client, run_name=f"r{n}")["info"]["run_id"]
        metric = {"key": "acc", "value": n / 10, "timestamp": 1, "step": 0}
        store_client.post(f"{API}/{run_id}/log-batch", json={"metrics": [metric]})
    found = store_client.post(
        f"{API}/search", json={"experiment_ids": ["0"], "filter_string": "metrics.acc > 0.05"}
    ).json()
    assert sorted(r["info"]["run_name"] for r in found["runs"]) == ["r1", "r2"]

    first = store_client.post(f"{API}/search", json={"experiment_ids": ["0"], "max_results": 2})
    assert len(first.json()["runs"]) == 2 and first.json()["next_page_token"]
    bad = store_client.post(
        f"{API}/search", json={"experiment_ids": ["0"], "filter_string": "metrics.acc >> 1"}
    )
    assert bad.status_code == 400


def test_runs_need_an_existing_experiment(client: TestClient) -> None:
    response = client.post(API, json={"experiment_id": "404"})
    assert response.status_code == 404
