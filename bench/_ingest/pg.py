"""PostgreSQL for ``bench/ingest.py``: is it there, a fresh database per run, count rows.

Every PostgreSQL run gets its own database, ``bench_ingest_<pid>_<n>``, created through an
autocommit connection to the database the user named (``--postgres-uri``) and dropped
when the run ends, also when it fails. psycopg 3 (``threadline[postgres]``) talks to it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

_numbers = itertools.count(1)


def psycopg_dsn(uri: str) -> str:
    """The URI as psycopg takes it: ``postgresql+psycopg://`` becomes ``postgresql://``."""
    scheme, rest = uri.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def masked(uri: str) -> str:
    """The URI with its password hidden, for the report."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable(uri: str) -> str | None:
    """None when PostgreSQL answers at ``uri``; else the reason, ready for the report."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'threadline[postgres]')"
    try:
        with psycopg.connect(psycopg_dsn(uri), connect_timeout=5):
            return None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"skipped: PostgreSQL not reachable at {masked(uri)} ({first})"


class PostgresFailed(Exception):
    """Creating or dropping a benchmark database failed; the message says which and why."""


@contextmanager
def fresh_database(admin_uri: str) -> Iterator[str]:
    """Create an empty database next to ``admin_uri``'s; yield its URI; drop it after
    (also when the body raises). Raises ``PostgresFailed`` when either statement fails."""
    name = f"bench_ingest_{os.getpid()}_{next(_numbers)}"
    _admin(admin_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_uri)._replace(path=f"/{name}"))
    finally:
        _admin(admin_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(admin_uri: str, *statements: str) -> None:
    """Run ``statements`` outside a transaction (CREATE/DROP DATABASE need that)."""
    import psycopg

    try:
        with psycopg.connect(psycopg_dsn(admin_uri), autocommit=True, connect_timeout=5) as conn:
            for statement in statements:
                conn.execute(statement)  # statements built from our own database name
    except psycopg.Error as exc:
        raise PostgresFailed(f"PostgreSQL at {masked(admin_uri)}: {statements[-1]}: {exc}") from exc


def count_rows(uri: str, table: str) -> int | None:
    """``SELECT count(*)`` from ``table`` of the database at ``uri``, or None."""
    import psycopg

    try:
        with psycopg.connect(psycopg_dsn(uri), connect_timeout=10) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            return None if row is None else int(row[0])
    except psycopg.Error:
        return None
