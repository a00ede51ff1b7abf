"""Whatever an assessment request holds, on a trace that exists, the answer is a 2xx or a
4xx with the error shape, never a 5xx (property-based, on SQLite and PostgreSQL).

Schemathesis (``test_schemathesis.py``) reaches these routes with random trace ids, which
are 404s; here the trace exists, so the bodies reach the store.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import batch, trace_id

text = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
maybe = st.one_of
bodies = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["feedback", "expectation", "other"]),
        "name": text,
        "value": json_values,
        "error": maybe(st.none(), st.fixed_dictionaries({"error_code": text}), json_values),
        "source": maybe(
            st.none(),
            st.fixed_dictionaries(
                {"source_type": st.sampled_from(["HUMAN", "AI_JUDGE", "x", ""]), "source_id": text}
            ),
        ),
        "rationale": maybe(st.none(), text),
        "metadata": maybe(st.none(), st.dictionaries(text, json_values, max_size=3)),
        "span_id": maybe(st.none(), text, st.just(f"{1:016x}")),
        "create_time_ms": maybe(st.none(), st.integers(-5, 2**64)),
    },
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def api(store_client: TestClient) -> TestClient:
    assert store_client.post("/api/v1/traces/batch", json=batch(1)).status_code == 200
    return store_client


def _checked(response: Any) -> Any:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message"} and error["message"]
    return response


@FUZZ
@given(body=bodies, patch=bodies, override=bodies)
def test_assessment_bodies_never_answer_5xx(api: TestClient, body, patch, override) -> None:  # type: ignore[no-untyped-def]
    path = f"/api/v1/traces/{trace_id(1)}/assessments"
    created = _checked(api.post(path, json=body))
    target = (
        path
        + "/"
        + (
            created.json()["assessment"]["assessment_id"]
            if created.status_code == 201
            else "a-none"
        )
    )
    patch = {
        k: v for k, v in patch.items() if k in ("name", "value", "error", "rationale", "metadata")
    }
    _checked(api.patch(target, json=patch))
    override = {
        k: v
        for k, v in override.items()
        if k in ("value", "error", "rationale", "source", "metadata")
    }
    _checked(api.post(target + "/override", json=override))
    _checked(api.get(path))


@FUZZ
@given(
    filter_string=st.one_of(
        st.text(max_size=40),
        st.builds(
            "feedback.{} {} {}".format,
            st.sampled_from(["q", "`a.b`", ""]),
            st.sampled_from(["=", ">", "IN", "IS", "LIKE", "IS NOT"]),
            st.sampled_from(["1", "true", "'x'", "(1, 'a')", "NULL", "1e999", ""]),
        ),
    ),
    bucket=st.sampled_from(["hour", "day", "year"]),
    start=st.none() | st.integers(-(2**63), 2**63),
    span=st.integers(-(10**12), 10**12),
)
def test_session_and_overview_queries_never_answer_5xx(  # type: ignore[no-untyped-def]
    api: TestClient, filter_string, bucket, start, span
) -> None:
    _checked(api.get("/api/v1/sessions", params={"filter_string": filter_string}))
    params: dict[str, Any] = {"filter_string": filter_string, "bucket": bucket}
    if start is not None:
        params.update(start_time_ms=start, end_time_ms=start + span)
    _checked(api.get("/api/v1/experiments/0/overview", params=params))
