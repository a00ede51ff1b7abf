"""Shared fixtures: PostgreSQL databases and a per-test tracking store."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests._pg import create_database, drop_database, pg_available


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
