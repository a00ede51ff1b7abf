"""The API reference at ``/docs``: our own page under the UI's Content-Security-Policy,
nothing loaded from another origin by any page the server serves, no token needed for the
page (as for the UI) while the API keeps requiring one; and in Chromium, the page renders
every operation of ``/openapi.json``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests._browser import launched_chromium
from tests.server.conftest import ClientFactory
from tests.server.test_server_process import _call, _wait_healthy, running_server
from tests.server.test_ui_browser import Tab
from threadline.server.config import TokenGrant
from threadline.server.ui_routes import CONTENT_SECURITY_POLICY

_ABSOLUTE_URL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", re.IGNORECASE)
_LINKS = re.compile(r"""(?:src|href)=["']([^"']*)["']""")
_IMPORTS = re.compile(r"""from\s+["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']""")
_METHODS = ("get", "put", "post", "patch", "delete")


def _served_pages(client: TestClient) -> dict[str, str]:
    """Every page and file the server serves to a browser: the pages, what they link and
    import (followed), every file of the UI folder, and the OpenAPI document."""
    folder = resources.files("threadline.server").joinpath("ui")
    pending = ["/", "/docs", "/openapi.json"]
    pending += [f"/ui/{f.name}" for f in folder.iterdir() if f.name.endswith((".js", ".css"))]
    served: dict[str, str] = {}
    while pending:
        path = pending.pop()
        if path in served:
            continue
        response = client.get(path)
        assert response.status_code == 200, path
        served[path] = response.text
        targets = _LINKS.findall(response.text)
        targets += [a or b for a, b in _IMPORTS.findall(response.text)]
        for target in targets:
            assert not _ABSOLUTE_URL.match(target), (path, target)
            if target.startswith("./"):
                pending.append("/ui/" + target[2:])
            elif target.startswith("/") and not target.startswith("//"):
                pending.append(target)
    return served


def test_no_served_page_names_another_origin(client: TestClient) -> None:
    served = _served_pages(client)
    assert {"/docs", "/ui/docs.js", "/ui/docs.css", "/ui/app.js"} <= set(served)
    for path, text in served.items():
        assert not _ABSOLUTE_URL.search(text), (path, _ABSOLUTE_URL.search(text))


def test_docs_is_our_page_under_the_ui_policy(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/ui/docs.js"></script>' in response.text
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", response.text))
    assert "<style" not in response.text and "style=" not in response.text
    for path in ("/redoc", "/docs/oauth2-redirect", "/ui/docs.html"):
        assert client.get(path).status_code == 404, path


def test_docs_need_no_token_but_the_api_does(make_client: ClientFactory) -> None:
    client = make_client(auth_tokens=(TokenGrant(token="s3cret-token-for-docs"),))
    for path in ("/docs", "/ui/docs.js", "/ui/docs.css", "/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200, path
    assert client.get("/docs").headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert client.get("/api/v1/experiments").status_code == 401
    authorized = {"Authorization": "Bearer s3cret-token-for-docs"}
    assert client.get("/api/v1/experiments", headers=authorized).status_code == 200


# --- in Chromium ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("docs-server")
    with running_server(folder, "--backend-store-uri", f"sqlite:///{folder / 'docs.db'}") as (
        _process,
        url,
    ):
        _wait_healthy(url)
        yield url


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


def test_the_docs_page_renders_every_operation(chromium: Any, docs_server: str) -> None:
    document = _call(f"{docs_server}/openapi.json")
    operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in _METHODS
        if method in item
    ]
    tab = Tab(chromium, docs_server)  # records script errors and CSP violations
    try:
        tab.page.goto(f"{docs_server}/docs")
        sections = tab.page.locator("section.tld-op")
        sections.first.wait_for()
        assert sections.count() == len(operations)
        shown = [
            (s.locator(".tld-method").text_content(), s.locator(".tld-path").text_content())
            for s in sections.all()
        ]
        assert sorted(shown) == sorted(operations)
        tags = tab.page.locator("section.tld-ops > h2").all_text_contents()
        assert {"ingest", "traces", "experiments", "runs"} <= set(tags)

        listing = tab.page.locator(
            "section.tld-op",
            has=tab.page.locator(".tld-path", has_text=re.compile(r"^/api/v1/traces$")),
        ).filter(has_text="GET")
        parameters = listing.locator("table").first.locator("td .tld-name").all_text_contents()
        assert {"filter_string", "max_results", "order_by"} <= set(parameters)
        listing.locator("a", has_text="TraceList").first.click()
        assert tab.page.url.endswith("#schema-TraceList")
        schema = tab.page.locator("#schema-TraceList")
        assert "traces" in schema.locator(".tld-name").all_text_contents()

        tab.page.fill("input.tld-filter", "otlp")
        visible = tab.page.locator("section.tld-op:visible")
        visible.first.wait_for()
        assert visible.count() == 1
        assert visible.locator(".tld-path").text_content() == "/v1/traces"
        assert tab.errors == [] and tab.dialogs == []
    finally:
        tab.page.close()
