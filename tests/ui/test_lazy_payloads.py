"""The web UI's trace view loads a trace's structure and each span's payloads on demand;
costs show per span, per trace and in the trace list; the notebook keeps payloads inline.

A ``threadline server`` process over a SQLite store that the SDK filled in a child process
(so the SDK's exporter priced the LLM spans), driven by Playwright on Debian's Chromium.
Needs ``/usr/bin/chromium`` and ``pip install playwright`` (skipped otherwise, except under
``CI=true``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._browser import launched_chromium
from tests.server.test_server_process import running_server
from threadline.store.sql import SqlStore
from threadline.tracing import display

SPANS = "**/api/v1/traces/*/spans/*"

PREFILL = """
import sys

import threadline
from threadline.entities.span import SpanType

threadline.set_tracking_uri(sys.argv[1])


@threadline.trace(span_type=SpanType.CHAT_MODEL)
def chat(model: str, prompt_tokens: int, completion_tokens: int, question: str) -> dict:
    span = threadline.get_current_active_span()
    span.set_attribute("threadline.model", model)
    usage = {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}
    span.set_attribute("threadline.token_usage", usage)
    return {"role": "assistant", "content": f"an answer from {model}"}


@threadline.trace(span_type=SpanType.AGENT)
def compare_models(question: str) -> str:
    chat("gpt-4o-mini-2024-07-18", 1000, 500, question)  # $0.00015 + $0.0003
    chat("claude-3-5-haiku-20241022", 2000, 100, question)  # $0.0016 + $0.0004
    chat("my-private-model", 10, 10, question)  # no known price: no cost
    return "both answered"


threadline.set_experiment("pricing")
compare_models("Which model costs more?")
print(threadline.get_last_active_trace_id())
"""


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("lazy-payloads")
    return f"sqlite:///{folder / 'ui.db'}"


@pytest.fixture(scope="module")
def trace_id(store_uri: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THREADLINE_", "OTEL_"))}
    folder = Path(store_uri.removeprefix("sqlite:///")).parent
    done = subprocess.run(
        [sys.executable, "-c", PREFILL, store_uri],
        check=True,
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(store_uri: str, trace_id: str) -> Iterator[str]:
    folder = Path(store_uri.removeprefix("sqlite:///")).parent
    with running_server(folder, "--backend-store-uri", store_uri) as (_process, url):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


class Tab:
    """A page recording script errors and the API paths it requested."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 860})
        self.page.set_default_timeout(20_000)
        self.errors: list[str] = []
        self.api_paths: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._on_console)
        self.page.on("request", self._on_request)

    def _on_console(self, message: Any) -> None:
        # A failed span load (the 503 the test makes) is shown inline; Chromium logs it too.
        if message.type == "error" and "status of 503" not in message.text:
            self.errors.append(message.text)

    def _on_request(self, request: Any) -> None:
        path = urllib.parse.urlsplit(request.url).path
        if path.startswith("/api/v1/traces/"):
            self.api_paths.append(path)

    def row(self, name: str) -> Any:
        return self.page.locator(".tl-row").filter(has=self.page.locator(".tl-name", has_text=name))

    def section(self, title: str) -> Any:
        return self.page.locator(
            f'.tl-detail .tl-section:has(> .tl-section-title:text-is("{title}"))'
        )


@pytest.fixture
def open_tab(browser: Any) -> Iterator[Any]:
    tabs: list[Tab] = []

    def opener() -> Tab:
        tabs.append(Tab(browser))
        return tabs[-1]

    yield opener
    for tab in tabs:
        assert tab.errors == [], tab.errors
        tab.page.close()


def test_the_tree_comes_first_and_each_payload_once_when_opened(
    open_tab: Any, server: str, trace_id: str
) -> None:
    from playwright.sync_api import expect

    tab = open_tab()
    tab.page.goto(f"{server}/#/traces/{trace_id}")
    expect(tab.page.locator(".tl-row .tl-name")).to_have_count(4)
    root = tab.section("Inputs")
    expect(root).to_contain_text("Which model costs more?")  # the root, selected first
    structure = f"/api/v1/traces/{trace_id}/structure"
    assert structure in tab.api_paths
    assert f"/api/v1/traces/{trace_id}" not in tab.api_paths  # never the whole trace
    span_reads = [p for p in tab.api_paths if "/spans/" in p]
    assert len(span_reads) == 1

    tab.row("chat").first.click()
    expect(tab.section("Outputs")).to_contain_text("an answer from gpt-4o-mini-2024-07-18")
    expect(tab.section("Attributes")).to_contain_text("threadline.token_usage")
    tab.row("compare_models").click()
    tab.row("chat").first.click()  # already loaded: shown from the cache
    expect(tab.section("Outputs")).to_contain_text("gpt-4o-mini-2024-07-18")
    assert len([p for p in tab.api_paths if "/spans/" in p]) == 2


def test_a_span_shows_loading_then_errors_inline_with_a_retry(
    open_tab: Any, server: str, trace_id: str
) -> None:
    from playwright.sync_api import expect

    tab = open_tab()
    held: list[Any] = []
    tab.page.route(SPANS, lambda route: held.append(route))  # answered below
    tab.page.goto(f"{server}/#/traces/{trace_id}")
    expect(tab.page.locator(".tl-row .tl-name")).to_have_count(4)  # drawn before any payload
    expect(tab.page.locator(".tl-detail .tl-loading")).to_be_visible()
    expect(tab.page.locator(".tl-detail-name")).to_have_text("compare_models")
    assert tab.section("Inputs").count() == 0
    held[0].continue_()
    tab.page.unroute(SPANS)
    expect(tab.section("Inputs")).to_contain_text("Which model costs more?")
    expect(tab.page.locator(".tl-detail .tl-loading")).to_have_count(0)

    def unavailable(route: Any) -> None:
        error = {"error": {"code": "UNAVAILABLE", "message": "the store is down"}}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(error))

    tab.page.route(SPANS, unavailable)
    tab.row("chat").nth(1).click()
    failure = tab.page.locator(".tl-detail .tl-load-error")
    expect(failure).to_contain_text("Could not load this span: the store is down")
    expect(tab.page.locator(".tl-detail-name")).to_have_text("chat")  # the structure still shows
    tab.page.unroute(SPANS)
    failure.get_by_role("button", name="Retry").click()
    expect(tab.section("Outputs")).to_contain_text("an answer from claude-3-5-haiku-20241022")
    expect(failure).to_have_count(0)


def test_costs_show_per_span_per_trace_and_in_the_list(
    open_tab: Any, server: str, trace_id: str
) -> None:
    from playwright.sync_api import expect

    tab = open_tab()
    experiments = json.loads(
        urllib.request.urlopen(f"{server}/api/v1/experiments/by-name?name=pricing").read()
    )
    experiment_id = experiments["experiment"]["experiment_id"]
    tab.page.goto(f"{server}/#/experiments/{experiment_id}")
    row = tab.page.locator("tr.tla-trace-row")
    expect(row.locator("td.tla-cost")).to_have_text("$0.00245")
    header = [h.strip() for h in tab.page.locator("thead th").all_inner_texts()]
    assert header[header.index("Tokens") + 1] == "Cost"

    row.locator("a.tla-trace-link").click()
    trace_cost = tab.page.locator(".tl-header .tl-cost")
    expect(trace_cost.locator(".tl-meta-value")).to_have_text("$0.00245")
    assert trace_cost.get_attribute("title") == "input $0.00175 \u00b7 output $0.0007"
    span_cost = tab.page.locator(".tl-detail .tl-cost .tl-meta-value")
    tab.row("chat").first.click()
    expect(span_cost).to_have_text("$0.00045")
    tab.row("chat").nth(1).click()
    expect(span_cost).to_have_text("$0.002")
    tab.row("chat").nth(2).click()
    expect(tab.page.locator(".tl-detail-name")).to_have_text("chat")
    expect(tab.section("Outputs")).to_contain_text("my-private-model")
    expect(span_cost).to_have_count(0)  # no price, no guess
    tab.row("chat").first.click()


def test_the_notebook_view_keeps_payloads_inline(
    browser: Any, store_uri: str, trace_id: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    store = SqlStore(store_uri)
    trace = store.get_trace(trace_id)
    store.close()
    assert trace is not None
    path = tmp_path / "notebook.html"
    path.write_text(display.traces_html([trace]), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(path.as_uri())
        expect(page.locator(".tl-header .tl-cost .tl-meta-value")).to_have_text("$0.00245")
        detail = page.locator(".tl-detail")
        expect(detail).to_contain_text("Which model costs more?")
        page.locator(".tl-row", has_text="chat").first.click()
        expect(detail.locator(".tl-cost .tl-meta-value")).to_have_text("$0.00045")
        assert detail.locator(".tl-loading").count() == 0
        assert errors == []
    finally:
        page.close()
