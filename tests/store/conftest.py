"""Store fixtures: every main test runs on SQLite (a fresh file) and on PostgreSQL.

SQLite tests copy a migrated template file (so the migrations run once per session);
PostgreSQL tests share one migrated database that is emptied before each test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from threadline.store import reset_store_cache
from threadline.store import tables as t
from threadline.store.sql import SqlStore


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file already upgraded to the head schema."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    SqlStore(f"sqlite:///{path}").close()
    return path


@pytest.fixture(scope="session")
def pg_session_store(postgres_uri: str) -> Iterator[SqlStore]:
    store = SqlStore(postgres_uri.replace("postgresql://", "postgresql+psycopg://", 1))
    yield store
    store.close()


def _empty_postgres(store: SqlStore) -> None:
    """Remove every row, then put back the Default experiment the migration created."""
    with store.engine.begin() as conn:
        for table in t.ALL_TABLES:  # DELETE beats TRUNCATE on tables this small
            conn.execute(table.delete())
        conn.execute(
            t.experiments.insert().values(
                experiment_id="0", id_number=0, name="Default", creation_time=0, last_update_time=0
            )
        )
    store._known_experiments.clear()  # the store's cache of existing experiments, emptied too


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A store with only the Default experiment in it, on each back end."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        sqlite_store = SqlStore(f"sqlite:///{path}")
        yield sqlite_store
        sqlite_store.close()
    else:
        pg_store: SqlStore = request.getfixturevalue("pg_session_store")
        _empty_postgres(pg_store)
        yield pg_store


@pytest.fixture(autouse=True)
def _forget_cached_stores() -> Iterator[None]:
    yield
    reset_store_cache()


@pytest.fixture
def statements(store: SqlStore) -> Iterator[list[str]]:
    """Every SQL statement the store sends while the test runs."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(store.engine, "before_cursor_execute", record)
