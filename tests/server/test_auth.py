"""Bearer tokens: 401 without, 403 without the right, and nothing leaks across experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import PROTOBUF, ClientFactory, batch, otlp_request, trace_id
from threadline.errors import InvalidArgumentError
from threadline.server.config import TokenGrant, grants_from_file

ADMIN = TokenGrant("admin-token")
READER = TokenGrant("reader-token", write=False)
TEAM = TokenGrant("team-token", experiment_ids=frozenset({"1"}))
TEAM_READER = TokenGrant("team-reader", write=False, experiment_ids=frozenset({"1"}))
GRANTS = (ADMIN, READER, TEAM, TEAM_READER)


class As:
    """Requests through one shared client (one event loop), with a given token."""

    def __init__(self, client: TestClient, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __getattr__(self, method: str) -> Any:
        call = getattr(self.client, method)

        def request(url: str, **kwargs: Any) -> Any:
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return call(url, headers=headers, **kwargs)

        return request


@pytest.fixture
def clients(make_client: ClientFactory) -> dict[str, As]:
    """One caller per token (and one without); experiments 1 and 2 hold traces."""
    client = make_client(auth_tokens=GRANTS)
    out = {
        "admin": As(client, ADMIN.token),
        "reader": As(client, READER.token),
        "team": As(client, TEAM.token),
        "team_reader": As(client, TEAM_READER.token),
        "anonymous": As(client, None),
    }
    admin = out["admin"]
    for experiment in ("one", "two"):
        assert admin.post("/api/v1/experiments", json={"name": experiment}).status_code == 201
    assert (
        admin.post("/api/v1/traces/batch", json=batch(1, 2, experiment_id="1")).status_code == 200
    )
    assert admin.post("/api/v1/traces/batch", json=batch(3, experiment_id="2")).status_code == 200
    return out


def test_no_token_is_401_but_health_is_open(clients: dict[str, As]) -> None:
    anonymous = clients["anonymous"]
    response = anonymous.get("/api/v1/experiments")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert anonymous.post("/v1/traces", content=b"", headers=PROTOBUF).status_code == 401
    wrong = anonymous.get("/api/v1/experiments", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert anonymous.get("/health").status_code == 200
    assert anonymous.get("/ready").status_code == 200
    assert anonymous.get("/openapi.json").status_code == 200


def test_read_only_tokens_cannot_write(clients: dict[str, As]) -> None:
    reader = clients["reader"]
    assert len(reader.post("/api/v1/traces/search", json={}).json()["traces"]) == 3
    assert reader.post("/api/v1/experiments", json={"name": "x"}).status_code == 403
    assert reader.post("/api/v1/traces/batch", json=batch(9)).status_code == 403
    body = otlp_request([{"trace": 9, "span": 1}]).SerializeToString()
    assert reader.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 403
    tag = reader.post(f"/api/v1/traces/{trace_id(1)}/tags", json={"key": "a", "value": "b"})
    assert tag.status_code == 403


def test_scoped_tokens_see_only_their_experiments(clients: dict[str, As]) -> None:
    team = clients["team_reader"]
    traces = team.post("/api/v1/traces/search", json={}).json()["traces"]
    assert sorted(t["info"]["trace_id"] for t in traces) == [trace_id(1), trace_id(2)]
    listed = team.get("/api/v1/traces", params={"filter_string": "trace.status = 'OK'"}).json()
    assert {t["info"]["experiment_id"] for t in listed["traces"]} == {"1"}
    experiments = team.get("/api/v1/experiments").json()["experiments"]
    assert [e["experiment_id"] for e in experiments] == ["1"]

    assert team.get(f"/api/v1/traces/{trace_id(3)}").status_code == 404  # no leak by id
    assert team.get(f"/api/v1/traces/{trace_id(3)}/info").status_code == 404
    assert team.get("/api/v1/experiments/2").status_code == 403
    assert team.get("/api/v1/experiments/by-name", params={"name": "two"}).status_code == 404
    searched = team.post("/api/v1/traces/search", json={"experiment_ids": ["1", "2"]})
    assert searched.status_code == 403


def test_scoped_writers_write_only_into_their_experiments(clients: dict[str, As]) -> None:
    team = clients["team"]
    assert team.post("/api/v1/traces/batch", json=batch(4, experiment_id="1")).status_code == 200
    assert team.post("/api/v1/traces/batch", json=batch(5, experiment_id="2")).status_code == 403
    assert team.post("/api/v1/experiments", json={"name": "mine"}).status_code == 403
    # spans into an existing trace of another experiment: refused, even with a row of ours
    hijack = batch(3, experiment_id="1")
    assert team.post("/api/v1/traces/batch", json=hijack).status_code == 403
    body = otlp_request([{"trace": 3, "span": 7, "parent": 1}]).SerializeToString()
    headers = {**PROTOBUF, "x-threadline-experiment-id": "1"}
    assert team.post("/v1/traces", content=body, headers=headers).status_code == 403
    assert team.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 403
    deleted = team.post(
        "/api/v1/traces/delete", json={"experiment_id": "2", "trace_ids": [trace_id(3)]}
    )
    assert deleted.status_code == 403
    assert (
        clients["admin"]
        .get(f"/api/v1/traces/{trace_id(3)}")
        .json()["trace"]["info"]["experiment_id"]
        == "2"
    )


def test_runs_follow_their_experiment(clients: dict[str, As]) -> None:
    run = clients["admin"].post("/api/v1/runs", json={"experiment_id": "2"}).json()["run"]
    team = clients["team"]
    assert team.get(f"/api/v1/runs/{run['info']['run_id']}").status_code == 404
    assert team.post("/api/v1/runs", json={"experiment_id": "2"}).status_code == 403
    assert team.post("/api/v1/runs", json={"experiment_id": "1"}).status_code == 201
    search = team.post("/api/v1/runs/search", json={"experiment_ids": ["2"]})
    assert search.status_code == 403


def test_tokens_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment\nalpha\nbeta read\ngamma write 1,2  # team\n\ndelta read *\n")
    grants = grants_from_file(path)
    assert grants == [
        TokenGrant("alpha"),
        TokenGrant("beta", write=False),
        TokenGrant("gamma", experiment_ids=frozenset({"1", "2"})),
        TokenGrant("delta", write=False),
    ]
    assert "alpha" not in repr(grants)
    path.write_text("alpha admin\n")
    with pytest.raises(InvalidArgumentError, match=r"tokens:1: access must be"):
        grants_from_file(path)
    with pytest.raises(InvalidArgumentError, match="Cannot read"):
        grants_from_file(tmp_path / "missing")
