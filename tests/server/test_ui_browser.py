"""The web UI in a real browser: ``threadline server`` as a process on 127.0.0.1 with a
SQLite store prefilled through the SDK, driven by Playwright on Debian's Chromium.

Needs ``/usr/bin/chromium`` and ``pip install playwright`` (never ``playwright install``).
Skipped with a message when either is missing, except under CI (``CI=true``).
``THREADLINE_TEST_SCREENSHOT_DIR=docs`` (relative to the repository) also saves ``trace-list.png`` and ``experiments.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._browser import launched_chromium
from tests.server.conftest import trace_row
from tests.server.test_server_process import running_server
from tests.ui.test_trace_view_browser import XSS

BIG_TRACE_SECONDS = 15.0
LIVE_SECONDS = 15.0

# Run in a child process: the SDK's global state stays out of the test process.
PREFILL = """
import json
import sys

import threadline
from threadline.client import ThreadlineClient
from threadline.entities.span import SpanType

threadline.set_tracking_uri(sys.argv[1])
XSS = json.loads(sys.argv[2])


@threadline.trace(span_type=SpanType.RETRIEVER)
def search_docs(query: str) -> list[str]:
    return [f"doc about {query}", "refund policy: 30 days"]


@threadline.trace(span_type=SpanType.CHAT_MODEL)
def chat(messages: list[dict[str, str]]) -> dict[str, str]:
    span = threadline.get_current_active_span()
    span.set_attribute("threadline.model", "gpt-4o-mini")
    usage = {"input_tokens": 120, "output_tokens": 38, "total_tokens": 158}
    span.set_attribute("threadline.token_usage", usage)
    return {"role": "assistant", "content": "You can get a refund within 30 days."}


@threadline.trace(span_type=SpanType.AGENT)
def answer_question(question: str) -> str:
    search_docs(question)
    if "crash" in question:
        raise ValueError("the model timed out")
    system = {"role": "system", "content": "Be brief."}
    return chat([system, {"role": "user", "content": question}])["content"]


threadline.set_experiment("support-bot")
questions = [
    "How do I get a refund?", "Where is my order?", "Can I change my address?",
    "Do you ship abroad?", "Please crash now", "What is the warranty?",
]
with threadline.start_run(run_name="eval-1"):
    threadline.log_params({"model": "gpt-4o-mini", "temperature": 0.2})
    threadline.log_metrics({"accuracy": 0.83, "latency_p50_ms": 412})
    for question in questions:
        try:
            answer_question(question)
        except ValueError:
            pass
ThreadlineClient().set_trace_tag(threadline.get_last_active_trace_id(), "reviewed", "yes")

threadline.set_experiment("xss")


@threadline.trace(name="<img src=x onerror=alert(1)>")
def hostile(**kwargs: str) -> str:
    return XSS["script"]


hostile(**XSS)

threadline.set_experiment("big")


@threadline.trace
def leaf(i: int) -> int:
    return i


@threadline.trace
def branch(b: int) -> None:
    for i in range(99):
        leaf(b * 100 + i)


@threadline.trace(name="big-agent")
def big() -> str:
    for b in range(101):
        branch(b)
    return "done"


big()  # 1 + 101 + 9,999 = 10,101 spans
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("THREADLINE_", "OTEL_", "CI"))}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's URL, on a store the SDK filled (in a child process)."""
    folder = tmp_path_factory.mktemp("ui-server")
    uri = f"sqlite:///{folder / 'ui.db'}"
    subprocess.run(
        [sys.executable, "-c", PREFILL, uri, json.dumps(XSS)],
        check=True,
        cwd=folder,
        env=_clean_env(),
        timeout=120,
    )
    with running_server(folder, "--backend-store-uri", uri) as (_process, url):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


class Tab:
    """A browser tab on the UI, recording dialogs and script errors."""

    def __init__(self, browser: Any, url: str) -> None:
        self.url = url
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 860})
        self.page.set_default_timeout(20_000)
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._on_console)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _on_console(self, message: Any) -> None:
        # A wrong filter is a 400 the page shows inline; Chromium also logs the status.
        if message.type == "error" and "status of 400" not in message.text:
            self.errors.append(message.text)

    def go(self, hash_: str = "") -> None:
        self.page.goto(self.url + "/" + hash_)

    def rows(self) -> Any:
        return self.page.locator("tr.tla-trace-row")

    def section(self, title: str) -> Any:
        return self.page.locator(
            f'.tl-detail .tl-section:has(> .tl-section-title:text-is("{title}"))'
        )

    def span_row(self, name: str) -> Any:
        return self.page.locator(".tl-row").filter(has=self.page.locator(".tl-name", has_text=name))


@pytest.fixture
def open_tab(browser: Any, server: str) -> Iterator[Any]:
    tabs: list[Tab] = []

    def opener() -> Tab:
        tabs.append(Tab(browser, server))
        return tabs[-1]

    yield opener
    for tab in tabs:
        assert tab.errors == [], tab.errors
        assert tab.dialogs == [], tab.dialogs
        tab.page.close()


def _api(url: str, path: str, body: Any = None, method: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + "/api/v1" + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _experiment_id(url: str, name: str) -> str:
    query = urllib.parse.urlencode({"name": name})
    return str(_api(url, f"/experiments/by-name?{query}")["experiment"]["experiment_id"])


def _traces(url: str, experiment_id: str, filter_string: str = "") -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"experiment_id": experiment_id, "filter_string": filter_string})
    return [t["info"] for t in _api(url, f"/traces?{query}")["traces"]]


def _wait_count(locator: Any, count: int, timeout: float = 20.0) -> None:
    """Waits until ``locator`` matches ``count`` elements (no page-side eval: the CSP forbids it)."""
    deadline = time.monotonic() + timeout
    while locator.count() != count:
        assert time.monotonic() < deadline, f"expected {count}, found {locator.count()}"
        time.sleep(0.05)


def _screenshot(tab: Tab, name: str) -> None:
    folder = os.environ.get("THREADLINE_TEST_SCREENSHOT_DIR")
    if folder:
        root = Path(__file__).resolve().parents[2]  # relative to the repository (tests chdir)
        tab.page.screenshot(path=str(root / folder / name))


# ------------------------------------------------------------------------------ tests


def test_experiments_to_list_to_trace_to_span(open_tab: Any) -> None:
    tab = open_tab()
    tab.go()
    row = tab.page.locator(".tla-experiments tr", has_text="support-bot")
    row.wait_for()
    cells = row.locator("td").all_text_contents()
    assert cells[2] == "6" and cells[3].startswith("17%"), cells  # 6 traces, 1 error
    _screenshot(tab, "experiments.png")

    row.locator("a", has_text="support-bot").click()
    tab.rows().first.wait_for()
    assert tab.rows().count() == 6
    assert "158" in tab.rows().first.inner_text()  # tokens
    tab.page.wait_for_selector(".tla-chip")  # the 'reviewed' tag
    _screenshot(tab, "trace-list.png")

    search = tab.page.locator("input.tla-filter")
    search.fill("bogus = 1")
    search.press("Enter")
    error = tab.page.locator(".tla-filter-error")
    error.wait_for(state="visible")
    assert "bogus" in error.inner_text()
    assert "filter=bogus" in tab.page.url

    search.fill("trace.request_preview LIKE '%refund%'")
    search.press("Enter")
    _wait_count(tab.rows(), 1)
    assert error.is_hidden()
    tab.rows().first.locator("a.tla-trace-link").click()

    tab.span_row("chat").click()
    inputs = tab.section("Conversation")
    assert "How do I get a refund?" in inputs.inner_text()
    assert "span=" in tab.page.url

    tab.page.go_back()  # span selection replaces the entry: back is the filtered list
    tab.rows().first.wait_for()
    assert tab.rows().count() == 1
    assert tab.page.locator("input.tla-filter").input_value() == (
        "trace.request_preview LIKE '%refund%'"
    )


def test_deep_link_to_a_span_and_back(open_tab: Any, server: str) -> None:
    experiment_id = _experiment_id(server, "support-bot")
    info = _traces(server, experiment_id, "trace.request_preview LIKE '%order%'")[0]
    trace = _api(server, f"/traces/{info['trace_id']}")["trace"]
    span = next(s for s in trace["data"]["spans"] if s["name"] == "search_docs")

    tab = open_tab()
    tab.go(f"#/experiments/{experiment_id}")
    tab.rows().first.wait_for()
    tab.go(f"#/traces/{info['trace_id']}?span={span['span_id']}")
    tab.page.locator(".tl-row.tl-selected", has_text="search_docs").wait_for()
    assert "Where is my order?" in tab.section("Inputs").inner_text()

    tab.page.go_back()
    tab.rows().first.wait_for()
    assert tab.rows().count() == 6

    fresh = open_tab()  # a deep link opened in a new tab
    fresh.go(f"#/traces/{info['trace_id']}?span={span['span_id']}")
    fresh.page.locator(".tl-row.tl-selected", has_text="search_docs").wait_for()


def test_trace_data_is_inert(open_tab: Any, server: str) -> None:
    experiment_id = _experiment_id(server, "xss")
    tab = open_tab()
    tab.go(f"#/experiments/{experiment_id}")
    tab.rows().first.wait_for()
    assert "<img src=x onerror=alert(1)>" in tab.rows().first.inner_text()
    tab.rows().first.locator("a.tla-trace-link").click()
    tab.page.locator(".tl-row").first.click()
    inputs = tab.section("Inputs").inner_text()
    for text in (XSS["script"], XSS["img"], "javascript:alert(1)"):
        assert text in inputs
    tab.page.wait_for_timeout(300)
    assert tab.dialogs == []
    assert tab.page.locator("img").count() == 0
    assert tab.page.locator("script:not([src])").count() == 0
    assert tab.page.locator('a[href^="javascript:"]').count() == 0
    assert tab.page.locator("[onerror]").count() == 0


def test_a_trace_with_ten_thousand_spans_opens(open_tab: Any, server: str) -> None:
    experiment_id = _experiment_id(server, "big")
    trace_id = _traces(server, experiment_id)[0]["trace_id"]
    tab = open_tab()
    started = time.perf_counter()
    tab.go(f"#/traces/{trace_id}")
    tab.span_row("big-agent").wait_for()
    elapsed = time.perf_counter() - started
    print(f"\n10,101-span trace opened in {elapsed:.2f} s")
    assert "10101" in tab.page.locator(".tl-header").inner_text().replace(",", "")
    assert tab.page.locator(".tl-row").count() < 200  # virtualised
    assert elapsed < BIG_TRACE_SECONDS


def test_tags_delete_and_live_refresh(open_tab: Any, server: str) -> None:
    experiment_id = str(_api(server, "/experiments", {"name": "scratch"})["experiment_id"])
    rows = [trace_row(n, experiment_id, request_time=int(time.time() * 1000) - n) for n in (1, 2)]
    _api(server, "/traces/batch", {"traces": rows, "spans": []})
    tab = open_tab()
    tab.go(f"#/experiments/{experiment_id}")
    tab.rows().nth(1).wait_for()

    first = tab.rows().first
    first.locator(".tla-chip-add").click()
    first.locator("input.tla-tag-input").fill("label=good")
    first.locator("input.tla-tag-input").press("Enter")
    tab.page.locator(".tla-chip", has_text="label=good").wait_for()
    trace_id = first.get_attribute("data-trace-id")
    assert _api(server, f"/traces/{trace_id}/info")["trace_info"]["tags"] == {"label": "good"}

    tab.rows().nth(1).locator("input[type=checkbox]").check()
    delete = tab.page.locator("button", has_text="Delete selected")
    delete.click()
    tab.page.locator("button", has_text="Delete 1 trace(s)?").click()
    _wait_count(tab.rows(), 1)

    new = trace_row(3, experiment_id, request_time=int(time.time() * 1000), name="arrived-later")
    _api(server, "/traces/batch", {"traces": [new], "spans": []})
    tab.page.locator("tr.tla-trace-row", has_text="arrived-later").wait_for(
        timeout=LIVE_SECONDS * 1000
    )


def test_runs_page_shows_params_metrics_and_traces(open_tab: Any, server: str) -> None:
    experiment_id = _experiment_id(server, "support-bot")
    tab = open_tab()
    tab.go(f"#/experiments/{experiment_id}/runs")
    tab.page.locator(".tla-runs a", has_text="eval-1").click()
    tab.rows().first.wait_for()
    text = tab.page.locator(".tla-kv-grid").inner_text()
    for expected in ("model", "gpt-4o-mini", "accuracy", "0.83", "latency_p50_ms"):
        assert expected in text
    assert tab.rows().count() == 6
