"""The web UI's trace view on a 10,000-span trace: the whole trace vs. structure + one span.

Run by hand, never as a test::

    .venv/bin/python bench/trace_view.py [--steps 100] [--calls 100] [--runs 3]

Fills a SQLite store with one trace (1 + steps + steps x calls spans; half of the calls are
LLM calls with chat messages, the other half tool calls, each with realistic payloads),
starts ``threadline server`` on it and measures:

* bytes and server time of ``GET /api/v1/traces/{id}`` (the whole trace, what the page
  loaded before) vs. ``GET …/structure`` plus ``GET …/spans/{span_id}`` (what it loads now);
* time to first render in Chromium: from navigation to the span tree drawn and the first
  span's inputs shown, with the current page and with the previous ``trace_page.js``
  (taken from git ``HEAD~0`` or ``--before-ref``, served in place of the current one).

Prints a Markdown table. Needs ``/usr/bin/chromium`` and Playwright.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.test_server_process import running_server  # noqa: E402

from threadline.store.base import SpanRow, TraceRow  # noqa: E402
from threadline.store.sql import SqlStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
T0 = 1_700_000_000_000_000_000
TRACE_ID = "tr-" + "b" * 32
PAGE_JS = "src/threadline/server/ui/trace_page.js"
PROSE = (
    "The customer asked about the refund policy for an order that arrived damaged; the agent "
    "looked up the order, checked the warranty terms and drafted a reply. "
)


def _span(n: int, parent: int | None, name: str, kind: str, start: int, end: int) -> SpanRow:
    attributes: dict[str, Any] = {}
    inputs: Any = {"step": n, "query": PROSE * 2}
    outputs: Any = {"result": PROSE * 6}
    input_tokens = output_tokens = None
    if kind == "CHAT_MODEL":
        messages = [
            {"role": "system", "content": "You are a careful support agent. " * 10},
            {"role": "user", "content": PROSE * 4},
        ]
        inputs = {"messages": messages, "model": "gpt-4o-mini"}
        outputs = {"choices": [{"message": {"role": "assistant", "content": PROSE * 3}}]}
        input_tokens, output_tokens = 850, 120
        attributes = {
            "threadline.model": "gpt-4o-mini-2024-07-18",
            "threadline.token_usage": {"input_tokens": 850, "output_tokens": 120},
            "threadline.llm.cost": {
                "input_cost": 0.0001275,
                "output_cost": 0.000072,
                "total_cost": 0.0001995,
            },
            "threadline.chat.messages": [*messages, {"role": "assistant", "content": PROSE * 3}],
        }
    return SpanRow(
        trace_id=TRACE_ID,
        span_id=f"{n:016x}",
        parent_id=None if parent is None else f"{parent:016x}",
        name=name,
        span_type=kind,
        start_time_ns=start,
        end_time_ns=end,
        status_code="OK",
        status_message="",
        inputs_json=json.dumps(inputs),
        outputs_json=json.dumps(outputs),
        attributes_json=json.dumps(attributes),
        events_json="[]",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=None if input_tokens is None else input_tokens + (output_tokens or 0),
    )


def fill(uri: str, steps: int, calls: int) -> int:
    spans = [_span(0, None, "agent", "AGENT", T0, T0 + steps * 600_000_000)]
    for step in range(steps):
        step_id = 1 + step * (calls + 1)
        start = T0 + step * 600_000_000
        spans.append(_span(step_id, 0, f"step-{step}", "CHAIN", start, start + 500_000_000))
        for call in range(calls):
            kind = "CHAT_MODEL" if call % 2 else "TOOL"
            begin = start + call * 5_000_000
            spans.append(
                _span(
                    step_id + 1 + call,
                    step_id,
                    f"call-{step}-{call}",
                    kind,
                    begin,
                    begin + 4_000_000,
                )
            )
    trace = TraceRow(
        trace_id=TRACE_ID,
        experiment_id="0",
        request_time=T0 // 1_000_000,
        state="OK",
        execution_duration=steps * 600,
        name="agent",
    )
    store = SqlStore(uri)
    for i in range(0, len(spans), 2000):
        store.log_batch([trace] if i == 0 else [], spans[i : i + 2000])
    store.close()
    return len(spans)


def fetch(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return len(body), time.perf_counter() - started


def first_render(browser: Any, url: str, old_page_js: str | None) -> tuple[float, int]:
    """Seconds from navigation to the tree drawn and the selected span's inputs shown, and
    the bytes of API responses the page received by then."""
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    received: list[int] = []
    page.on(
        "response",
        lambda r: (
            received.append(int(r.headers.get("content-length", "0")))
            if "/api/v1/traces/" in r.url
            else None
        ),
    )
    if old_page_js is not None:
        page.route(
            "**/ui/trace_page.js",
            lambda route: route.fulfill(body=old_page_js, content_type="text/javascript"),
        )
    started = time.perf_counter()
    page.goto(f"{url}/#/traces/{TRACE_ID}")
    page.wait_for_selector(".tl-row", timeout=120_000)
    page.locator('.tl-detail .tl-section:has(> .tl-section-title:text-is("Inputs"))').wait_for(
        timeout=120_000
    )
    elapsed = time.perf_counter() - started
    page.close()
    return elapsed, sum(received)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--calls", type=int, default=99)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before-ref", default="HEAD", help="git ref of the previous page")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    old_js = subprocess.run(
        ["git", "show", f"{args.before_ref}:{PAGE_JS}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{Path(folder) / 'bench.db'}"
        count = fill(uri, args.steps, args.calls)
        with running_server(Path(folder), "--backend-store-uri", uri) as (_process, url):
            api = f"{url}/api/v1/traces/{TRACE_ID}"
            whole = [fetch(api) for _ in range(args.runs)]
            structure = [fetch(api + "/structure") for _ in range(args.runs)]
            span = [fetch(api + f"/spans/{2:016x}") for _ in range(args.runs)]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                first_render(browser, url, None)  # warm the server and the browser caches
                before = [first_render(browser, url, old_js) for _ in range(args.runs)]
                after = [first_render(browser, url, None) for _ in range(args.runs)]
                browser.close()

    def ms(samples: list[tuple[Any, float]]) -> str:
        return f"{statistics.median(s[1] for s in samples) * 1000:,.0f} ms"

    def seconds(samples: list[tuple[float, int]]) -> str:
        return f"{statistics.median(s[0] for s in samples):.2f} s"

    print(f"\n{count:,} spans, median of {args.runs} runs\n")
    print("| | before (whole trace) | after (structure + one span) |")
    print("|---|---|---|")
    print(f"| API bytes | {whole[0][0]:,} | {structure[0][0]:,} + {span[0][0]:,} |")
    print(f"| API time (client wall clock) | {ms(whole)} | {ms(structure)} + {ms(span)} |")
    print(f"| browser: bytes received until first render | {before[0][1]:,} | {after[0][1]:,} |")
    print(
        f"| browser: navigation to tree + first span's inputs | {seconds(before)} | {seconds(after)} |"
    )


if __name__ == "__main__":
    main()
