"""The trace view in a real browser: Debian's Chromium driven by Playwright.

The page is the notebook display's self-contained HTML, opened from a file (no server).
Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and ``pip install playwright``
(never ``playwright install``: the system Chromium is used). Skipped with a message when
either is missing, except under CI (``CI=true``), where they must run.

``THREADLINE_TEST_SCREENSHOT=docs/trace-view.png`` also saves a screenshot of the view.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import threadline
from tests._browser import launched_chromium
from threadline.entities.span import Span, SpanStatus, SpanType
from threadline.entities.trace import Trace, TraceData, TraceInfo
from threadline.tracing import display

XSS = {
    "script": "<script>alert(1)</script>",
    "img": "<img src=x onerror=alert(1)>",
    "link": '<a href="javascript:alert(1)">click me</a> javascript:alert(1)',
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


class Page:
    """A browser tab on one HTML file, recording dialogs and script errors."""

    def __init__(self, browser: Any, html: str, path: Path) -> None:
        path.write_text(html, encoding="utf-8")
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(path.as_uri())
        self.page.wait_for_selector(".tl-row")

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def row(self, name: str) -> Any:
        return self.page.locator(".tl-row").filter(has=self.page.locator(".tl-name", has_text=name))

    def section(self, title: str) -> Any:
        """A section of the span detail by its exact title."""
        return self.page.locator(
            f'.tl-detail .tl-section:has(> .tl-section-title:text-is("{title}"))'
        )

    def names(self) -> list[str]:
        return self.page.locator(".tl-row .tl-name").all_text_contents()

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def open_page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    pages: list[Page] = []

    def opener(traces: list[Trace]) -> Page:
        page = Page(browser, display.traces_html(traces), tmp_path / f"view{len(pages)}.html")
        pages.append(page)
        return page

    yield opener
    for page in pages:
        assert page.errors == [], page.errors
        page.close()


# ---------------------------------------------------------------- a real agent trace


@threadline.trace(span_type=SpanType.EMBEDDING)
def embed(text: str) -> list[float]:
    time.sleep(0.004)
    return [round(len(text) / 100, 3), 0.25, -0.5]


@threadline.trace(span_type=SpanType.RETRIEVER)
def search_guidebook(query: str, k: int = 2) -> list[dict[str, Any]]:
    embed(query)
    time.sleep(0.01)
    return [
        {"id": "lisbon-1", "text": "Lisbon: ride tram 28 through Alfama.", "score": 0.91},
        {"id": "lisbon-2", "text": "Pasteis de nata are best warm.", "score": 0.84},
    ][:k]


@threadline.trace(span_type=SpanType.TOOL)
def get_weather(city: str) -> str:
    time.sleep(0.006)
    raise ConnectionError(f"weather service unreachable while looking up {city!r}")


@threadline.trace(span_type=SpanType.TOOL)
def convert_currency(amount: float, currency: str) -> float:
    time.sleep(0.003)
    return round(amount * 1.08, 2)


@threadline.trace(span_type=SpanType.CHAT_MODEL)
def chat_completion(messages: list[dict[str, Any]], model: str = "gpt-4o-mini") -> dict:
    time.sleep(0.02)
    span = threadline.get_current_active_span()
    assert span is not None
    span.set_attribute("threadline.model", model)
    span.set_attribute(
        "threadline.token_usage", {"input_tokens": 182, "output_tokens": 41, "total_tokens": 223}
    )
    if messages[-1]["role"] == "user":
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                _call("call_1", "get_weather", {"city": "Lisbon"}),
                _call("call_2", "convert_currency", {"amount": 200, "currency": "EUR"}),
            ],
        }
    else:
        message = {
            "role": "assistant",
            "content": "Ride tram 28 through Alfama and try pasteis de nata. "
            "200 EUR is about 216 USD. (The weather service is down right now.)",
        }
    return {"id": "chatcmpl-1", "model": model, "choices": [{"index": 0, "message": message}]}


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    import json

    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


@threadline.trace(span_type=SpanType.AGENT)
def travel_agent(question: str) -> str:
    threadline.update_current_trace(tags={"app": "travel", "env": "test"})
    docs = search_guidebook(question)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a concise travel assistant."},
        {"role": "user", "content": question + "\nNotes: " + " ".join(d["text"] for d in docs)},
    ]
    reply = chat_completion(messages)["choices"][0]["message"]
    messages.append(reply)
    for call in reply["tool_calls"]:
        try:
            if call["function"]["name"] == "get_weather":
                result: Any = get_weather("Lisbon")
            else:
                result = convert_currency(200, "EUR")
        except ConnectionError as exc:
            result = f"error: {exc}"
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": str(result)})
    return chat_completion(messages)["choices"][0]["message"]["content"]


def agent_trace() -> Trace:
    travel_agent("What should I see in Lisbon, and what is 200 EUR in USD?")
    trace_id = threadline.get_last_active_trace_id()
    assert trace_id is not None
    trace = threadline.get_trace(trace_id)
    assert trace is not None
    return trace


def test_the_tree_shows_every_span_and_a_click_shows_its_details(open_page):
    trace = agent_trace()
    page = open_page([trace])
    expected = sorted(span.name for span in trace.data.spans)
    assert sorted(page.names()) == expected
    assert page.page.locator(".tl-bar").count() == len(expected)
    header = page.page.locator(".tl-header").inner_text()
    assert "travel_agent" in header and "app: travel" in header
    assert "446 total" in header  # tokens summed over the trace's two LLM calls

    page.row("search_guidebook").click()
    detail = page.page.locator(".tl-detail")
    assert "search_guidebook" in detail.locator(".tl-detail-name").inner_text()
    inputs = page.section("Inputs").inner_text()
    assert "What should I see in Lisbon" in inputs and "query" in inputs
    assert "lisbon-1" in page.section("Outputs").inner_text()

    page.row("get_weather").click()
    exception = page.section("Exception").inner_text()
    assert "ConnectionError: weather service unreachable" in exception
    assert "Traceback" in exception

    page.row("chat_completion").last.click()
    conversation = detail.locator(".tl-chat")
    roles = conversation.locator(".tl-msg-role").all_inner_texts()
    expected_roles = ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert [role.lower() for role in roles] == expected_roles
    assert "convert_currency" in conversation.inner_text()
    assert "about 216 USD" in conversation.inner_text()

    page.row("search_guidebook").locator(".tl-toggle").click()  # collapse: embed is hidden
    assert "embed" not in page.names()
    page.row("search_guidebook").locator(".tl-toggle").click()
    assert "embed" in page.names()

    page.row("search_guidebook").click()  # the keyboard: left collapses, right expands, down moves
    page.page.keyboard.press("ArrowLeft")
    assert "embed" not in page.names()
    page.page.keyboard.press("ArrowRight")
    page.page.keyboard.press("ArrowDown")
    assert detail.locator(".tl-detail-name").inner_text() == "embed"

    screenshot = os.environ.get("THREADLINE_TEST_SCREENSHOT")
    if screenshot:
        page.row("chat_completion").last.click()
        page.page.locator(".tl-scroll").evaluate("el => el.blur()")
        page.page.locator(".tl-tv").screenshot(path=screenshot)


def test_several_traces_show_as_tabs(open_page):
    first, second = agent_trace(), agent_trace()
    page = open_page([first, second])
    tabs = page.page.locator(".tl-tab")
    assert tabs.count() == 2
    assert page.page.locator(".tl-header .tl-mono").inner_text().endswith(first.info.trace_id)
    tabs.nth(1).click()
    assert page.page.locator(".tl-header .tl-mono").inner_text().endswith(second.info.trace_id)


# ---------------------------------------------------------------- untrusted content


@threadline.trace(name=XSS["script"], span_type=SpanType.CHAT_MODEL)
def hostile_llm(messages: list[dict[str, Any]], note: str) -> dict[str, Any]:
    threadline.update_current_trace(tags={"x": XSS["img"]})
    span = threadline.get_current_active_span()
    assert span is not None
    span.set_attribute("payload", XSS["img"])
    reply = {"role": XSS["script"], "content": XSS["img"] + " " + XSS["link"]}
    return {"choices": [{"message": reply}]}


def test_untrusted_content_is_inert_text(open_page):
    with pytest.raises(ZeroDivisionError), threadline.start_span(name="outer") as span:
        span.set_inputs({"html": XSS["script"], "img": XSS["img"], "link": XSS["link"]})
        hostile_llm([{"role": "user", "content": XSS["script"]}], note=XSS["link"])
        raise ZeroDivisionError(XSS["img"])
    trace = threadline.get_trace(threadline.get_last_active_trace_id() or "")
    assert trace is not None
    page = open_page([trace])
    page.row("outer").click()
    page.row(XSS["script"]).click()  # the LLM span named with the payload: its conversation
    page.page.locator(".tl-section-title", has_text="Attributes").click()
    page.page.locator(".tl-section-title", has_text="Attributes").click()
    page.row("outer").click()

    dom = page.page.evaluate(
        """() => ({
            images: document.querySelectorAll("img").length,
            scripts: document.querySelectorAll("script").length,
            links: document.querySelectorAll("a").length,
            handlers: document.querySelectorAll("[onerror], [onclick], [onload]").length,
        })"""
    )
    assert dom == {"images": 0, "scripts": 2, "links": 0, "handlers": 0}
    assert page.dialogs == []
    text = page.page.locator(".tl-tv").inner_text()
    for payload in XSS.values():
        assert payload in text
    assert page.page.get_by_text(XSS["img"]).first.is_visible()
    page.row(XSS["script"]).click()
    conversation = page.page.locator(".tl-chat").inner_text()
    assert XSS["script"] in conversation and XSS["link"] in conversation
    assert page.dialogs == []


# ---------------------------------------------------------------- a very large trace


def big_trace(steps: int = 99, calls: int = 100) -> Trace:
    """A trace of 1 + steps + steps * calls spans (10,000 by default)."""
    trace_id = "tr-" + "f" * 32
    t0 = 1_700_000_000_000_000_000
    spans = [_span(trace_id, 0, None, "agent", SpanType.AGENT, t0, t0 + 60_000_000_000)]
    for step in range(steps):
        step_id = 1 + step * (calls + 1)
        start = t0 + step * 600_000_000
        spans.append(_span(trace_id, step_id, 0, f"step-{step}", "CHAIN", start, start + 5e8))
        for call in range(calls):
            kind = SpanType.CHAT_MODEL if call % 2 else SpanType.TOOL
            begin = start + call * 5_000_000
            spans.append(
                _span(
                    trace_id,
                    step_id + 1 + call,
                    step_id,
                    f"call-{step}-{call}",
                    kind,
                    begin,
                    begin + 4e6,
                )
            )
    info = TraceInfo(trace_id, "0", t0 // 1_000_000, 60_000, "OK", name="agent")
    return Trace(info, TraceData(spans))


def _span(
    trace_id: str, n: int, parent: int | None, name: str, kind: str, start: float, end: float
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=f"{n:016x}",
        parent_id=None if parent is None else f"{parent:016x}",
        name=name,
        span_type=kind,
        start_time_ns=int(start),
        end_time_ns=int(end),
        status=SpanStatus("OK"),
        inputs={"n": n, "prompt": f"input of span {n}"},
        outputs={"text": f"output of span {n}"},
    )


def test_a_trace_of_10000_spans_opens_and_scrolls(open_page):
    trace = big_trace()
    assert len(trace.data.spans) == 10_000
    started = time.perf_counter()
    page = open_page([trace])
    opened = time.perf_counter() - started
    p = page.page
    assert p.locator(".tl-row").count() < 200  # virtualised: only rows near the view exist

    started = time.perf_counter()
    p.eval_on_selector(".tl-scroll", "el => { el.scrollTop = el.scrollHeight; }")
    page.row("call-98-99").wait_for()
    p.eval_on_selector(".tl-scroll", "el => { el.scrollTop = el.scrollHeight / 2; }")
    p.locator(".tl-name", has_text="call-49-").first.wait_for()
    scrolled = time.perf_counter() - started
    assert p.locator(".tl-row").count() < 200

    page.row("call-49-50").click()
    assert "input of span" in p.locator(".tl-detail").inner_text()
    p.get_by_role("button", name="Collapse all").click()
    assert page.names() == ["agent"]
    p.get_by_role("button", name="Expand all").click()
    height = p.eval_on_selector(".tl-spacer", "el => el.getBoundingClientRect().height")
    assert height == 10_000 * 26
    print(f"\n10,000-span trace: opened in {opened:.2f} s, scrolled in {scrolled:.2f} s")


# What the tree shows, read in the same task as the action before it (no frame in between):
# the rows drawn, the scroll offset and whether the drawn rows cover the visible part.
# The action is a head button's label ({"button": "Collapse all"}) or a key ({"key": …}).
TREE_STATE = """(action) => {
    const scroller = document.querySelector(".tl-scroll");
    if (action && action.button) {
        [...document.querySelectorAll(".tl-wf-head button")]
            .find((b) => b.textContent === action.button).click();
    }
    if (action && action.key) {
        scroller.dispatchEvent(new KeyboardEvent("keydown", {key: action.key}));
    }
    const rows = [...scroller.querySelectorAll(".tl-row")];
    const indexes = rows.map((row) => Number(row.dataset.index));
    const top = scroller.scrollTop;
    const height = scroller.clientHeight;
    const total = parseFloat(scroller.querySelector(".tl-spacer").style.height);
    const first = Math.min(...indexes) * 26;
    const last = (Math.max(...indexes) + 1) * 26;
    return {
        names: rows.map((row) => row.querySelector(".tl-name").textContent),
        top,
        valid: top >= 0 && top <= Math.max(0, scroller.scrollHeight - height),
        covered: rows.length > 0 && first <= top && last >= Math.min(top + height, total),
        total,
    };
}"""


def _tree_state(page: Any, **action: str) -> dict[str, Any]:
    return page.page.evaluate(TREE_STATE, action)


def _next_frame(page: Any) -> None:
    page.page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r)))")


def test_collapse_all_while_scrolled_to_the_middle_shows_rows(open_page):
    """Issue 11: collapsing while scrolled down drew from the stale offset: no rows at all."""
    page = open_page([big_trace()])
    page.page.eval_on_selector(".tl-scroll", "el => { el.scrollTop = el.scrollHeight / 2; }")
    page.page.locator(".tl-name", has_text="call-49-").first.wait_for()
    middle = _tree_state(page)
    assert middle["top"] > 100_000 and middle["covered"], middle

    collapsed = _tree_state(page, button="Collapse all")
    assert collapsed["names"] == ["agent"], collapsed
    assert collapsed["valid"] and collapsed["covered"] and collapsed["total"] == 26, collapsed
    _next_frame(page)
    assert _tree_state(page)["names"] == ["agent"]

    expanded = _tree_state(page, button="Expand all")
    assert expanded["total"] == 10_000 * 26 and expanded["valid"] and expanded["covered"]
    assert expanded["names"][:3] == ["agent", "step-0", "call-0-0"], expanded["names"][:3]
    page.page.eval_on_selector(".tl-scroll", "el => { el.scrollTop = el.scrollHeight / 2; }")
    page.page.locator(".tl-name", has_text="call-49-").first.wait_for()
    assert _tree_state(page)["covered"]


def test_collapsing_one_span_at_the_bottom_keeps_rows_in_view(open_page):
    """Collapsing one subtree while scrolled to the end shrinks the list below the offset."""
    page = open_page([big_trace()])
    page.page.eval_on_selector(".tl-scroll", "el => { el.scrollTop = el.scrollHeight; }")
    page.row("call-98-99").click()
    page.page.keyboard.press("ArrowLeft")  # to its parent, step-98
    state = _tree_state(page, key="ArrowLeft")  # collapses step-98
    assert state["total"] == (10_000 - 100) * 26, state["total"]
    assert state["valid"] and state["covered"], state
    assert state["names"][-1] == "step-98", state["names"][-3:]
