"""Shared fixtures: PostgreSQL databases and a per-test tracking store."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests._pg import create_database, drop_database, pg_available

# tests/isolated/<name>/ run only in their own venvs (scripts/test.sh sets the variable).
collect_ignore = [] if os.environ.get("THREADLINE_TEST_ISOLATED") else ["isolated"]


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (``postgresql://…``)."""
    reason = pg_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the PostgreSQL tests, but: {reason}")
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    name, uri = create_database()
    try:
        yield uri
    finally:
        drop_database(name)


@pytest.fixture(autouse=True)
def _fresh_tracing_state(tmp_path, monkeypatch):
    """Each test starts with default tracing state, an empty store in its own folder, and
    internal tracing errors raised (so bugs fail tests instead of being logged)."""
    from threadline.tracing import _runtime, _safety

    for name in list(os.environ):
        if name.startswith(("THREADLINE_", "OTEL_")) and not name.startswith("THREADLINE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("THREADLINE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.chdir(tmp_path)
    _safety.raise_internal_errors(True)
    _safety.reset()
    _runtime.reset()
    yield
    _runtime.reset()
    _safety.raise_internal_errors(False)
    _reset_store_cache()


def _reset_store_cache() -> None:
    try:
        from threadline.store import reset_store_cache
    except ImportError:
        return
    reset_store_cache()


@pytest.fixture
def captured():
    """Traces go to memory for this test; yields the ``CapturedTraces``."""
    from threadline.testing import capture_traces

    with capture_traces() as cap:
        yield cap
