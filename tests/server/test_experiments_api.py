"""``/api/v1/experiments`` on SQLite and PostgreSQL: the SDK client's experiment calls."""

from __future__ import annotations

from fastapi.testclient import TestClient

API = "/api/v1/experiments"


def test_create_get_by_id_and_by_name(store_client: TestClient) -> None:
    created = store_client.post(API, json={"name": "agents", "tags": {"team": "a"}})
    assert created.status_code == 201
    experiment_id = created.json()["experiment_id"]

    by_id = store_client.get(f"{API}/{experiment_id}").json()["experiment"]
    by_name = store_client.get(f"{API}/by-name", params={"name": "agents"}).json()["experiment"]
    assert by_id == by_name
    assert by_id["name"] == "agents" and by_id["tags"] == {"team": "a"}
    assert by_id["lifecycle_stage"] == "active"


def test_errors_have_the_error_shape_and_status(store_client: TestClient) -> None:
    store_client.post(API, json={"name": "taken"})
    taken = store_client.post(API, json={"name": "taken"})
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "ALREADY_EXISTS"
    missing = store_client.get(f"{API}/12345")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "NOT_FOUND", "message": "No experiment with id '12345'."}
    }
    assert store_client.get(f"{API}/by-name", params={"name": "nope"}).status_code == 404


def test_search_pages_through_every_experiment(store_client: TestClient) -> None:
    for n in range(5):
        store_client.post(API, json={"name": f"exp-{n}"})
    names: list[str] = []
    token = None
    while True:
        params = {"max_results": 2, **({"page_token": token} if token else {})}
        page = store_client.get(API, params=params).json()
        assert len(page["experiments"]) <= 2
        names += [e["name"] for e in page["experiments"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert sorted(names) == sorted(["Default", *(f"exp-{n}" for n in range(5))])
    like = store_client.get(API, params={"name_like": "exp-%"}).json()["experiments"]
    assert len(like) == 5


def test_rename_delete_restore_and_tag(store_client: TestClient) -> None:
    experiment_id = store_client.post(API, json={"name": "old"}).json()["experiment_id"]
    renamed = store_client.patch(f"{API}/{experiment_id}", json={"new_name": "new"})
    assert renamed.json()["experiment"]["name"] == "new"

    deleted = store_client.delete(f"{API}/{experiment_id}").json()["experiment"]
    assert deleted["lifecycle_stage"] == "deleted"
    active = [e["name"] for e in store_client.get(API).json()["experiments"]]
    assert "new" not in active
    everything = store_client.get(API, params={"include_deleted": True}).json()["experiments"]
    assert "new" in [e["name"] for e in everything]

    restored = store_client.post(f"{API}/{experiment_id}/restore").json()["experiment"]
    assert restored["lifecycle_stage"] == "active"
    tagged = store_client.post(f"{API}/{experiment_id}/tags", json={"key": "k", "value": "v"})
    assert tagged.json()["experiment"]["tags"] == {"k": "v"}


def test_invalid_bodies_are_400_with_the_field_named(client: TestClient) -> None:
    response = client.post(API, json={"name": ""})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert "name" in response.json()["error"]["message"]
    assert client.post(API, json={"name": "x" * 300}).status_code == 400
    assert client.post(API, json={"name": "a", "surprise": 1}).status_code == 400
    assert client.get(API, params={"max_results": 0}).status_code == 400
    assert client.get(API, params={"page_token": "garbage"}).status_code == 400
