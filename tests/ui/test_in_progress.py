"""An in-progress trace in the web UI: its spans so far, then new spans and its end, live.

A ``threadline server`` process on an empty SQLite store; a separate SDK process with the
server as its tracking URI opens a trace with the low-level client and, step by step on
this test's command, adds a span and ends the trace (flushing after each step, as a long
agent's spans stream in). Chromium (Playwright) keeps the trace page open meanwhile: the
page must follow without a reload. Needs ``/usr/bin/chromium`` and ``pip install
playwright`` (skipped otherwise, except under ``CI=true``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._browser import launched_chromium
from tests.server.test_server_process import running_server

UPDATE_TIMEOUT_MS = 20_000  # the page polls every 2 s; a slow shared machine needs slack

# The SDK side, in its own process: one command per line on stdin, one answer per line.
AGENT = """
import sys

import threadline
from threadline.client import ThreadlineClient

threadline.set_tracking_uri(sys.argv[1])
client = ThreadlineClient()
root = client.start_trace("long-agent", inputs={"task": "plan a trip"})
trace_id = root.trace_id


def step(name: str) -> None:
    span = client.start_span(name, trace_id=trace_id, parent_id=root.span_id, inputs={"step": name})
    client.end_span(trace_id, span.span_id, outputs=f"{name} done")


step("step-1")
threadline.flush_trace_async_logging()
print(trace_id, flush=True)
for command in sys.stdin:
    if command.strip() == "step":
        step("step-2")
    elif command.strip() == "end":
        client.end_trace(trace_id, outputs="trip planned")
    threadline.flush_trace_async_logging()
    print("done", flush=True)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("in-progress")
    with running_server(folder, "--backend-store-uri", f"sqlite:///{folder / 'ui.db'}") as (
        _process,
        url,
    ):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


class Agent:
    """The SDK process: ``command("step")`` / ``command("end")`` returns once flushed."""

    def __init__(self, url: str, folder: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("THREADLINE_", "OTEL_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-c", AGENT, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=folder,
            env=env,
        )
        self.trace_id = self._answer()

    def _answer(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line, f"the agent process stopped (exit code {self.process.poll()})"
        return line

    def command(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        assert self._answer() == "done"

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            if self.process.stdout is not None:
                self.process.stdout.close()


def test_an_in_progress_trace_shows_its_spans_and_follows_them(
    browser: Any, server: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    agent = Agent(server, tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    errors: list[str] = []
    loads: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("load", lambda: loads.append(page.url))
    try:
        page.goto(f"{server}/#/traces/{agent.trace_id}")
        names = page.locator(".tl-row .tl-name")
        state = page.locator(".tl-header .tl-state")
        expect(names).to_have_text(["step-1"])  # the root is still open: not stored yet
        expect(state).to_have_text("IN_PROGRESS")
        expect(page.locator("#live")).to_contain_text("in progress")
        page.locator(".tl-row", has_text="step-1").click()
        expect(page.locator(".tl-detail")).to_contain_text("step-1 done")  # its payload

        agent.command("step")
        expect(names).to_have_text(["step-1", "step-2"], timeout=UPDATE_TIMEOUT_MS)
        expect(state).to_have_text("IN_PROGRESS")

        agent.command("end")
        expect(state).to_have_text("OK", timeout=UPDATE_TIMEOUT_MS)
        expect(names).to_have_text(["long-agent", "step-1", "step-2"])
        expect(page.locator("#live")).to_have_text("")  # polling stopped with the trace
        expect(page.locator(".tl-row.tl-selected")).to_contain_text("step-1")  # kept
        page.locator(".tl-row", has_text="long-agent").click()
        expect(page.locator(".tl-detail")).to_contain_text("trip planned")
        assert len(loads) == 1, loads  # every update came without a reload
        assert errors == [], errors
    finally:
        page.close()
        agent.close()
