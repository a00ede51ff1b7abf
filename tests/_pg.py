"""PostgreSQL test databases: one fresh database per test session on the local server.

Tests that need PostgreSQL skip with a clear message when the server is absent, except
under CI (``CI=true``), where its absence is a failure: CI must not skip them.
"""

from __future__ import annotations

import os
import uuid

PG_ADMIN_DSN = os.environ.get("THREADLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def pg_available() -> str | None:
    """``None`` when the server answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'threadline[postgres]')"
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except Exception as exc:  # any connection failure means "not available"
        return f"PostgreSQL at {PG_ADMIN_DSN} is not reachable: {exc}"


def create_database() -> tuple[str, str]:
    """Create an empty database; returns (name, SQLAlchemy-style URI)."""
    import psycopg

    name = f"threadline_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
