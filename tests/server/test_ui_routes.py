"""The web UI over HTTP: the page and its files, the security headers, the stats endpoint."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import ClientFactory, batch, trace_row
from threadline.server.ui_routes import CONTENT_SECURITY_POLICY
from threadline.ui import read_asset

UI_FILES = sorted(
    f.name
    for f in resources.files("threadline.server").joinpath("ui").iterdir()
    if f.name.endswith((".js", ".css"))
)


def _secure(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"


def test_index_is_served_with_csp(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    _secure(response)
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    html = response.text
    assert '<script type="module" src="/ui/app.js"></script>' in html
    # No inline script or style: every <script> has a src, no style attributes or tags.
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert "<style" not in html and "style=" not in html and " on" not in html.lower()


@pytest.mark.parametrize("name", UI_FILES)
def test_ui_files_are_served(client: TestClient, name: str) -> None:
    response = client.get(f"/ui/{name}")
    assert response.status_code == 200
    _secure(response)
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    assert response.headers["content-type"].startswith(kind)
    if name.endswith(".js"):  # CSP-safe code: nothing parses HTML or evaluates strings
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function"):
            assert banned not in response.text, (name, banned)


@pytest.mark.parametrize("name", ["trace_view.js", "trace_view.css"])
def test_shared_renderer_is_served(client: TestClient, name: str) -> None:
    response = client.get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.text == read_asset(name)
    _secure(response)


def test_every_import_resolves(client: TestClient) -> None:
    """Each ES module's relative imports name a file the server serves."""
    for name in [n for n in UI_FILES if n.endswith(".js")]:
        for target in re.findall(r'from "\./([^"]+)"', client.get(f"/ui/{name}").text):
            assert client.get(f"/ui/{target}").status_code == 200, (name, target)


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/..%2Fapp.py", "/ui/index.html", "/ui/x.py"])
def test_unknown_files_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_ui_needs_no_token_but_the_api_does(make_client: ClientFactory) -> None:
    from threadline.server.config import TokenGrant

    client = make_client(auth_tokens=(TokenGrant(token="s3cret"),))
    assert client.get("/").status_code == 200
    assert client.get("/ui/app.js").status_code == 200
    assert client.get("/api/v1/stats/experiments").status_code == 401
    authed = client.get("/api/v1/stats/experiments", headers={"Authorization": "Bearer s3cret"})
    assert authed.status_code == 200


def test_experiment_stats(client: TestClient) -> None:
    experiment_id = client.post("/api/v1/experiments", json={"name": "stats"}).json()[
        "experiment_id"
    ]
    rows = batch(1, 2, 3, experiment_id=experiment_id)
    rows["traces"][1] = trace_row(2, experiment_id, state="ERROR", execution_duration=40)
    rows["traces"].append(trace_row(4, experiment_id, state="IN_PROGRESS", execution_duration=None))
    assert client.post("/api/v1/traces/batch", json=rows).status_code == 200
    client.post("/api/v1/traces/batch", json=batch(9))  # the Default experiment

    body = client.get("/api/v1/stats/experiments", params={"experiment_id": experiment_id}).json()
    (stats,) = body["stats"]
    last = max(r["request_time"] + (r["execution_duration"] or 0) for r in rows["traces"])
    assert stats == {
        "experiment_id": experiment_id,
        "trace_count": 4,
        "error_count": 1,
        "in_progress_count": 1,
        "error_rate": 0.25,
        "last_activity_ms": last,
    }
    everything = client.get("/api/v1/stats/experiments").json()["stats"]
    assert {s["experiment_id"] for s in everything} == {"0", experiment_id}


def test_stats_of_an_experiment_without_traces(client: TestClient) -> None:
    body = client.get("/api/v1/stats/experiments", params={"experiment_id": "0"}).json()
    assert body["stats"] == [
        {
            "experiment_id": "0",
            "trace_count": 0,
            "error_count": 0,
            "in_progress_count": 0,
            "error_rate": None,
            "last_activity_ms": None,
        }
    ]


def test_stats_respect_scoped_tokens(make_client: ClientFactory) -> None:
    from threadline.server.config import TokenGrant

    grant = TokenGrant(token="t", experiment_ids=frozenset({"0"}))
    client = make_client(auth_tokens=(grant,), token="t")
    assert client.get("/api/v1/stats/experiments", params={"experiment_id": "7"}).status_code == 403
    assert [
        s["experiment_id"] for s in client.get("/api/v1/stats/experiments").json()["stats"]
    ] == ["0"]
