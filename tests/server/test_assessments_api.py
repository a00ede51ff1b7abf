"""The assessment, session and overview REST API: shapes, the error shape, rights and
experiment scopes (two scoped tokens), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import T0, ClientFactory, batch, trace_id
from tests.server.test_auth import As
from threadline.server.config import TokenGrant

HOUR = 3_600_000
T0_MS = T0 // 1_000_000


def assessments_of(n: int) -> str:
    return f"/api/v1/traces/{trace_id(n)}/assessments"


def with_sessions(*numbers: int, experiment_id: str = "0", session: str = "chat") -> dict[str, Any]:
    body = batch(*numbers, experiment_id=experiment_id)
    for row in body["traces"]:
        row["metadata"] = {"session_id": session, "user": "ann"}
    return body


@pytest.fixture
def api(store_client: TestClient) -> TestClient:
    assert store_client.post("/api/v1/traces/batch", json=with_sessions(1, 2, 3)).status_code == 200
    return store_client


def test_log_list_get_patch_override_delete(api: TestClient) -> None:
    body = {
        "name": "correct",
        "value": False,
        "source": {"source_type": "AI_JUDGE", "source_id": "judge-1"},
        "rationale": "wrong year",
        "metadata": {"model": "m"},
        "span_id": f"{1:016x}",
    }
    created = api.post(assessments_of(1), json=body)
    assert created.status_code == 201
    first = created.json()["assessment"]
    assert set(first) == {
        "assessment_id",
        "trace_id",
        "kind",
        "name",
        "value",
        "error",
        "source",
        "rationale",
        "metadata",
        "span_id",
        "run_id",
        "overrides",
        "valid",
        "create_time_ms",
        "last_update_time_ms",
    }
    assert first["source"] == {"source_type": "LLM_JUDGE", "source_id": "judge-1"}
    assert (first["kind"], first["value"], first["valid"], first["error"]) == (
        "feedback",
        False,
        True,
        None,
    )
    one = f"{assessments_of(1)}/{first['assessment_id']}"
    assert api.get(one).json() == {"assessment": first}
    patched = api.patch(one, json={"rationale": "checked", "metadata": {"model": "m2"}}).json()[
        "assessment"
    ]
    assert (patched["rationale"], patched["metadata"], patched["value"]) == (
        "checked",
        {"model": "m2"},
        False,
    )
    override = api.post(
        f"{one}/override",
        json={"value": True, "source": {"source_type": "HUMAN", "source_id": "bob"}},
    )
    assert override.status_code == 201
    second = override.json()["assessment"]
    assert (second["overrides"], second["name"], second["span_id"]) == (
        first["assessment_id"],
        "correct",
        first["span_id"],
    )
    listed = api.get(assessments_of(1)).json()["assessments"]
    assert [(a["assessment_id"], a["valid"]) for a in listed] == [
        (first["assessment_id"], False),
        (second["assessment_id"], True),
    ]
    info = api.get(f"/api/v1/traces/{trace_id(1)}/info").json()["trace_info"]
    assert [a["assessment_id"] for a in info["assessments"]] == [
        first["assessment_id"],
        second["assessment_id"],
    ]
    found = api.post(
        "/api/v1/traces/search", json={"filter_string": "feedback.correct = true"}
    ).json()
    assert [t["info"]["trace_id"] for t in found["traces"]] == [trace_id(1)]
    assert api.delete(f"{assessments_of(1)}/{second['assessment_id']}").json() == {"deleted": 1}
    assert api.get(one).json()["assessment"]["valid"] is True  # restored
    expectation = api.post(
        assessments_of(2), json={"kind": "expectation", "name": "answer", "value": {"a": [1]}}
    )
    assert expectation.json()["assessment"]["value"] == {"a": [1]}
    error = api.post(assessments_of(2), json={"name": "judge", "error": {"error_code": "TIMEOUT"}})
    assert error.json()["assessment"]["error"] == {
        "error_code": "TIMEOUT",
        "error_message": None,
        "stack_trace": None,
    }
    switched = api.patch(
        f"{assessments_of(2)}/{error.json()['assessment']['assessment_id']}", json={"value": 0.5}
    )
    assert (switched.json()["assessment"]["value"], switched.json()["assessment"]["error"]) == (
        0.5,
        None,
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        (
            "post",
            "/api/v1/traces/tr-nope/assessments",
            {"value": 1},
            404,
            "No trace with id 'tr-nope'",
        ),
        ("post", assessments_of(1), {"name": "q"}, 400, "needs a value or an error"),
        (
            "post",
            assessments_of(1),
            {"value": 1, "error": {"error_code": "E"}},
            400,
            "both were given",
        ),
        ("post", assessments_of(1), {"name": "", "value": 1}, 400, "name"),
        ("post", assessments_of(1), {"value": 10**400}, 400, "too large"),
        ("post", assessments_of(1), {"value": "a\u0000"}, 400, "NUL"),
        ("post", assessments_of(1), {"value": 1, "span_id": "nope"}, 404, "has no span"),
        (
            "post",
            assessments_of(1),
            {"value": 1, "source": {"source_type": "ROBOT"}},
            400,
            "not a source type",
        ),
        (
            "post",
            assessments_of(1),
            {"kind": "expectation", "value": 1, "rationale": "r"},
            400,
            "neither an error",
        ),
        ("post", assessments_of(1), {"kind": "score", "value": 1}, 400, "kind"),
        ("post", assessments_of(1), {"value": 1, "extra": 2}, 400, "extra"),
        ("get", f"{assessments_of(1)}/a-nope", None, 404, "No assessment with id 'a-nope'"),
        ("patch", f"{assessments_of(1)}/a-nope", {"value": 1}, 404, "No assessment"),
        ("post", f"{assessments_of(1)}/a-nope/override", {"value": 1}, 404, "No assessment"),
        ("delete", f"{assessments_of(1)}/a-nope", None, 404, "No assessment"),
    ],
)
def test_bad_requests_get_the_error_shape_and_store_nothing(
    api: TestClient, method: str, path: str, body: Any, status: int, message: str
) -> None:
    kwargs = {"json": body} if body is not None else {}
    response = getattr(api, method)(path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"} and message in error["message"]
    assert api.get(assessments_of(1)).json()["assessments"] == []


def test_sessions_list_and_one_session(api: TestClient) -> None:
    api.post(assessments_of(1), json={"name": "thumbs", "value": True})
    listed = api.get("/api/v1/sessions").json()
    (session,) = listed["sessions"]
    assert listed["next_page_token"] is None
    assert (session["session_id"], session["user"], session["turns"], session["traces"]) == (
        "chat",
        "ann",
        3,
        [],
    )
    assert session["feedback"] == [
        {"name": "thumbs", "count": 1, "error_count": 0, "mean": None, "share_true": 1.0}
    ]
    searched = api.post("/api/v1/sessions/search", json={"include_traces": True}).json()[
        "sessions"
    ][0]
    assert [t["trace_id"] for t in searched["traces"]] == [trace_id(1), trace_id(2), trace_id(3)]
    assert (
        api.get("/api/v1/sessions", params={"filter_string": "feedback.thumbs = false"}).json()[
            "sessions"
        ]
        == []
    )
    one = api.get("/api/v1/sessions/chat", params={"experiment_id": "0"}).json()["session"]
    assert one["turns"] == 3 and len(one["traces"]) == 3
    assert one["traces"][0]["assessments"][0]["name"] == "thumbs"
    assert api.get("/api/v1/sessions/chat", params={"experiment_id": "1"}).status_code == 404
    assert api.get("/api/v1/sessions/chat").status_code == 400  # experiment_id is required
    bad = api.get("/api/v1/sessions", params={"order_by": "cost DESC"})
    assert bad.status_code == 400 and "cannot order by 'cost'" in bad.json()["error"]["message"]


def test_a_session_id_with_a_slash(api: TestClient) -> None:
    api.post("/api/v1/traces/batch", json=with_sessions(7, session="team/chat 1"))
    found = api.get("/api/v1/sessions/team%2Fchat%201", params={"experiment_id": "0"})
    assert found.status_code == 200 and found.json()["session"]["session_id"] == "team/chat 1"


def test_overview(api: TestClient) -> None:
    api.post(assessments_of(2), json={"name": "score", "value": 4})
    start = T0_MS - T0_MS % HOUR
    response = api.get(
        "/api/v1/experiments/0/overview",
        params={"start_time_ms": start, "end_time_ms": start + 3 * HOUR},
    )
    overview = response.json()["overview"]
    assert (overview["bucket"], overview["bucket_ms"], overview["start_time_ms"]) == (
        "hour",
        HOUR,
        start,
    )
    assert [b["trace_count"] for b in overview["buckets"]] == [3, 0, 0]
    assert overview["buckets"][0]["latency_p50_ms"] == 5.0
    assert overview["totals"]["feedback"] == [
        {"name": "score", "count": 1, "error_count": 0, "mean": 4.0, "share_true": None}
    ]
    filtered = api.get(
        "/api/v1/experiments/0/overview",
        params={
            "start_time_ms": start,
            "end_time_ms": start + HOUR,
            "filter_string": "feedback.score > 3",
        },
    ).json()["overview"]
    assert (
        filtered["totals"]["trace_count"] == 1 and filtered["filter_string"] == "feedback.score > 3"
    )
    daily = api.get("/api/v1/experiments/0/overview", params={"bucket": "day"}).json()["overview"]
    assert len(daily["buckets"]) == 30
    for params, message in (
        ({"bucket": "week"}, "bucket"),
        ({"start_time_ms": 0, "end_time_ms": 5000 * HOUR}, "at most 1000 buckets"),
        ({"filter_string": "nope = 1"}, "unknown field"),
    ):
        bad = api.get("/api/v1/experiments/0/overview", params=params)
        assert bad.status_code == 400 and message in bad.json()["error"]["message"]
    assert api.get("/api/v1/experiments/404/overview").status_code == 404


# --- rights and scopes ---------------------------------------------------------------------

WRITER_1 = TokenGrant("writer-one-token", experiment_ids=frozenset({"1"}))
READER_2 = TokenGrant("reader-two-token", write=False, experiment_ids=frozenset({"2"}))
ADMIN = TokenGrant("admin-token-0123")


@pytest.fixture
def scoped(make_client: ClientFactory) -> dict[str, As]:
    """Experiments 1 (traces 1, 2; session s1) and 2 (trace 3; session s2); an assessment
    on each trace; a write token for 1 and a read-only token for 2."""
    client = make_client(auth_tokens=(ADMIN, WRITER_1, READER_2))
    admin = As(client, ADMIN.token)
    for name in ("one", "two"):
        assert admin.post("/api/v1/experiments", json={"name": name}).status_code == 201
    admin.post("/api/v1/traces/batch", json=with_sessions(1, 2, experiment_id="1", session="s1"))
    admin.post("/api/v1/traces/batch", json=with_sessions(3, experiment_id="2", session="s2"))
    for n in (1, 2, 3):
        assert admin.post(assessments_of(n), json={"name": "q", "value": n}).status_code == 201
    return {
        "admin": admin,
        "one": As(client, WRITER_1.token),
        "two": As(client, READER_2.token),
        "none": As(client, None),
    }


def test_tokens_read_and_write_only_their_experiments(scoped: dict[str, As]) -> None:
    one, two, anonymous = scoped["one"], scoped["two"], scoped["none"]
    assert anonymous.get(assessments_of(1)).status_code == 401
    # writer of experiment 1
    assert one.post(assessments_of(1), json={"value": True}).status_code == 201
    (first,) = [a for a in one.get(assessments_of(1)).json()["assessments"] if a["name"] == "q"]
    assert (
        one.post(
            f"{assessments_of(1)}/{first['assessment_id']}/override", json={"value": 9}
        ).status_code
        == 201
    )
    for call in (
        lambda: one.get(assessments_of(3)),
        lambda: one.post(assessments_of(3), json={"value": 1}),
        lambda: one.get(f"{assessments_of(3)}/a-any"),
        lambda: one.delete(f"{assessments_of(3)}/a-any"),
    ):
        response = call()
        assert response.status_code == 404 and "No trace" in response.json()["error"]["message"]
    # read-only token of experiment 2
    (third,) = two.get(assessments_of(3)).json()["assessments"]
    assert two.get(f"{assessments_of(3)}/{third['assessment_id']}").status_code == 200
    for call in (
        lambda: two.post(assessments_of(3), json={"value": 1}),
        lambda: two.patch(f"{assessments_of(3)}/{third['assessment_id']}", json={"value": 2}),
        lambda: two.post(
            f"{assessments_of(3)}/{third['assessment_id']}/override", json={"value": 2}
        ),
        lambda: two.delete(f"{assessments_of(3)}/{third['assessment_id']}"),
    ):
        response = call()
        assert (
            response.status_code == 403 and response.json()["error"]["code"] == "PERMISSION_DENIED"
        )
    assert two.get(assessments_of(1)).status_code == 404
    assert len(scoped["admin"].get(assessments_of(3)).json()["assessments"]) == 1  # unchanged


def test_sessions_and_overview_follow_the_scopes(scoped: dict[str, As]) -> None:
    one, two = scoped["one"], scoped["two"]
    assert [s["session_id"] for s in one.get("/api/v1/sessions").json()["sessions"]] == ["s1"]
    assert [
        s["session_id"] for s in two.post("/api/v1/sessions/search", json={}).json()["sessions"]
    ] == ["s2"]
    assert one.get("/api/v1/sessions", params={"experiment_id": "2"}).status_code == 403
    assert one.get("/api/v1/sessions/s2", params={"experiment_id": "2"}).status_code == 403
    assert (
        two.get("/api/v1/sessions/s2", params={"experiment_id": "2"}).json()["session"]["turns"]
        == 1
    )
    # a filter cannot reach another experiment's traces
    leaked = one.get("/api/v1/sessions", params={"filter_string": "feedback.q = 3"}).json()
    assert leaked["sessions"] == []
    assert one.get("/api/v1/experiments/1/overview").status_code == 200
    assert one.get("/api/v1/experiments/2/overview").status_code == 403
    assert two.get("/api/v1/experiments/2/overview").status_code == 200
    found = one.post("/api/v1/traces/search", json={"filter_string": "feedback.q >= 1"}).json()[
        "traces"
    ]
    assert sorted(t["info"]["trace_id"] for t in found) == [trace_id(1), trace_id(2)]
