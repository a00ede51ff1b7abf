"""Bearer tokens: 401 without, 403 without the right, and nothing leaks across experiments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import PROTOBUF, ClientFactory, batch, otlp_request, trace_id
from threadline.errors import InvalidArgumentError
from threadline.server.config import TokenGrant, grants_from_file, grants_from_tokens

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


TOKEN_A = "alpha-0123456789abcdef"
TOKEN_B = "beta-0123456789abcdef"
TOKEN_C = "gamma-0123456789abcdef"


def test_a_tokens_file_grants_exactly_what_each_line_says(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    lines = [
        "\ufeff# tokens of the team",  # a byte-order mark, then a whole-line comment
        f"{TOKEN_A} write *",
        "   # an indented comment",
        "",
        f"\t{TOKEN_B}\tread\t1,2  ",
        f"{TOKEN_C} write 7\r",  # a CRLF line
        "  \t ",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    grants = grants_from_file(path)
    assert grants == [
        TokenGrant(TOKEN_A),
        TokenGrant(TOKEN_B, write=False, experiment_ids=frozenset({"1", "2"})),
        TokenGrant(TOKEN_C, experiment_ids=frozenset({"7"})),
    ]
    assert TOKEN_A not in repr(grants)
    with pytest.raises(InvalidArgumentError, match="Cannot read"):
        grants_from_file(tmp_path / "missing")


HOSTILE_LINES = {
    # issue 12: '#' cut the line, leaving the token "xyz" with write access everywhere
    "glued comment": ("xyz#longsecret-0123456789 read 1", "'#' at column 4"),
    "trailing comment": (f"{TOKEN_A} read 1 # team", "'#' at column 31"),
    "token alone": (TOKEN_A, "expected 3 fields"),
    "no experiments": (f"{TOKEN_A} read", "expected 3 fields"),
    "more fields": (f"{TOKEN_A} read 1 2", "expected 3 fields"),
    "unknown right": (f"{TOKEN_A} admin *", "'read' or 'write'"),
    "right in capitals": (f"{TOKEN_A} WRITE *", "'read' or 'write'"),
    "empty id": (f"{TOKEN_A} read 1,,2", "third field"),
    "trailing comma": (f"{TOKEN_A} read 1,", "third field"),
    "star among ids": (f"{TOKEN_A} read 1,*", "third field"),
    "id too long": (f"{TOKEN_A} read {'9' * 257}", "third field"),
    "short token": ("shorttoken read *", "has 10 characters; a token needs at least 16"),
    "comma in token": ("alpha,0123456789abcdef read *", "visible ASCII"),
    "non-ASCII token": ("alph\u00e4-0123456789abcdef read *", "visible ASCII"),
    "NUL": (f"{TOKEN_A}\x00 read *", "U+0000 at column 23"),
    "no-break space": (f"{TOKEN_A}\u00a0read *", "U+00A0"),
    "vertical tab": (f"{TOKEN_A}\x0bread *", "U+000B"),  # str.splitlines() splits there
    "line separator": (f"{TOKEN_A} read 1\u2028{TOKEN_B} write *", "U+2028"),
    "carriage return": (f"{TOKEN_A} read\r*", "U+000D"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_LINES))
def test_a_hostile_tokens_line_is_refused_naming_its_line(tmp_path: Path, name: str) -> None:
    line, expected = HOSTILE_LINES[name]
    path = tmp_path / "tokens"
    path.write_text(f"# team tokens\n{TOKEN_B} read 1\n{line}\n", encoding="utf-8")
    with pytest.raises(InvalidArgumentError) as refused:
        grants_from_file(path)
    message = str(refused.value)
    assert message.startswith(f"{path}:3: "), message
    assert expected in message
    for secret in ("longsecret", TOKEN_A, TOKEN_B, "shorttoken", "0123456789abcdef"):
        assert secret not in message


def test_a_token_given_twice_or_no_token_at_all_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN_A} read 1\n{TOKEN_B} read 1\n{TOKEN_A} write *\n")
    with pytest.raises(InvalidArgumentError, match=r"tokens:3: this token is already granted"):
        grants_from_file(path)
    path.write_text("# every token commented out\n# alpha-0123456789abcdef write *\n\n")
    with pytest.raises(InvalidArgumentError, match="grants no token, so auth would be off"):
        grants_from_file(path)


def test_plain_tokens_need_16_visible_characters() -> None:
    assert grants_from_tokens([TOKEN_A]) == [TokenGrant(TOKEN_A)]
    with pytest.raises(InvalidArgumentError) as refused:
        grants_from_tokens([TOKEN_A, "s3cret"])
    message = str(refused.value)
    assert "THREADLINE_SERVER_AUTH_TOKENS, token 2: the token has 6 characters" in message
    assert "s3cret" not in message
    with pytest.raises(InvalidArgumentError, match="visible ASCII"):
        grants_from_tokens(["spaced token 0123456789"])


def _server(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """``threadline server ARGS`` expected to stop at once (a bounded wait either way)."""
    return subprocess.run(
        [sys.executable, "-m", "threadline.cli", "server", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


def test_the_server_refuses_to_start_on_a_bad_tokens_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"# ops\n{TOKEN_A} write *\nxyz#longsecret-0123456789 read 1\n")
    result = _server(tmp_path, "--auth-tokens-file", str(path))
    assert result.returncode == 1, result
    assert result.stderr.startswith(f"threadline: error: {path}:3: '#' at column 4"), result.stderr
    assert "listening" not in result.stdout
    assert "longsecret" not in result.stdout + result.stderr
    assert not (tmp_path / "threadline.db").exists()  # stopped before opening the store

    path.write_text(f"{TOKEN_A}\n")  # a token without rights: refused, not full access
    result = _server(tmp_path, env={"THREADLINE_SERVER_AUTH_TOKENS_FILE": str(path)})
    assert result.returncode == 1 and f"{path}:1: expected 3 fields" in result.stderr


def test_the_server_refuses_a_short_token(tmp_path: Path) -> None:
    result = _server(tmp_path, "--auth-token", "s3cret")
    assert result.returncode == 1, result
    assert "token 1: the token has 6 characters; a token needs at least 16" in result.stderr
    assert "s3cret" not in result.stderr and "listening" not in result.stdout
    result = _server(tmp_path, env={"THREADLINE_SERVER_AUTH_TOKENS": f"{TOKEN_A},short"})
    assert result.returncode == 1 and "token 2: the token has 5 characters" in result.stderr
    assert not (tmp_path / "threadline.db").exists()
