"""The web UI on a store holding rows with absurd times (stored before times were checked):
the experiments page, the trace list and the trace page still render, with no script
errors and no "Internal error". Real server process, Chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.test_schema_limits import _store_bad_rows
from tests.server.test_server_process import running_server
from tests.server.test_ui_browser import Tab, browser
from threadline.store.sql import SqlStore

__all__ = ["browser"]  # the fixture, imported to be used here


@pytest.fixture
def bad_rows_server(tmp_path: Path) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'bad.db'}"
    store = SqlStore(uri)
    try:
        _store_bad_rows(store)
    finally:
        store.close()
    with running_server(tmp_path, "--backend-store-uri", uri) as (_process, url):
        yield url


def test_pages_render_rows_with_absurd_times(browser: Any, bad_rows_server: str) -> None:
    tab = Tab(browser, bad_rows_server)
    try:
        tab.go()
        row = tab.page.locator(".tla-experiments tr", has_text="Default")
        row.wait_for()
        assert row.locator("td").all_text_contents()[2] == "3"  # traces counted
        assert "Internal error" not in tab.page.content()

        row.locator("a", has_text="Default").click()
        tab.rows().first.wait_for()
        assert tab.rows().count() == 3
        assert "NaN" not in tab.page.locator("table").inner_text()
        far = tab.page.locator("tr.tla-trace-row", has_text="from the far future").first
        far.locator("a.tla-trace-link").click()
        tab.span_row("span-1").wait_for()
        assert "Internal error" not in tab.page.content()
        assert tab.errors == [], tab.errors
        assert tab.dialogs == [], tab.dialogs
    finally:
        tab.page.close()
