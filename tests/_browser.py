"""The one way the tests start a browser: Debian's Chromium through Playwright (never a
browser Playwright downloads), headless, with the flags this sandbox needs.

Browser tests skip with a message when Playwright or Chromium is missing, except under CI
(``CI=true``), where that is a failure: CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (under CI) a browser test that cannot run here."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser tests, but: {reason}")
    pytest.skip(f"browser tests skipped: {reason}")


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A Playwright ``Browser`` on Debian's Chromium, closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is missing: pip install playwright (no 'playwright install')")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:
            unavailable(f"Chromium did not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()
