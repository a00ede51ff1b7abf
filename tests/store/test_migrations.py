"""Schema migrations: run on first use, skipped when at head, safe across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import threadline.store
from tests._pg import create_database, drop_database
from threadline.errors import StoreError
from threadline.store import get_store, migrations, reset_store_cache
from threadline.store import tables as t
from threadline.store.sql import SqlStore

SRC = str(Path(threadline.store.__file__).resolve().parents[2])


@pytest.fixture
def fresh_pg_uri(postgres_uri: str) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database (beyond the session one)."""
    name, uri = create_database()
    try:
        yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of an empty database on each back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("fresh_pg_uri")  # type: ignore[no-any-return]


def revision(store: SqlStore) -> str | None:
    table = sa.table(migrations.VERSION_TABLE, sa.column("version_num"))
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table.c.version_num)).scalar()


def test_head_revision_constant_matches_the_scripts() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    assert script.get_current_head() == migrations.HEAD_REVISION
    assert migrations.known_revisions() == {"0001"}


def test_a_fresh_database_is_upgraded_to_exactly_the_tables(fresh_uri: str) -> None:
    store = SqlStore(fresh_uri)
    try:
        assert revision(store) == migrations.HEAD_REVISION
        assert store.get_experiment("0").name == "Default"
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": migrations.VERSION_TABLE}
            )
            assert compare_metadata(context, t.metadata) == []
    finally:
        store.close()


def test_a_store_at_head_does_not_run_migrations(
    fresh_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqlStore(fresh_uri).close()

    def refuse(connection: object) -> None:
        raise AssertionError("migrations ran again")

    monkeypatch.setattr(migrations, "upgrade", refuse)
    store = get_store(fresh_uri)
    assert isinstance(store, SqlStore)
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    store.create_experiment("still works")
    reset_store_cache()
    assert get_store(fresh_uri).get_experiment_by_name("still works") is not None
    assert not any("CREATE" in s.upper() for s in statements)


def test_the_fast_path_does_not_import_alembic(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    SqlStore(uri).close()
    code = textwrap.dedent(
        f"""
        import sys
        from threadline.store import get_store
        get_store({uri!r}).get_experiment("0")
        assert "alembic" not in sys.modules, "alembic was imported"
        """
    )
    run_python(code)


def test_a_database_from_a_newer_threadline_is_refused(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    store = SqlStore(uri)
    table = sa.table(migrations.VERSION_TABLE, sa.column("version_num"))
    with store.engine.begin() as conn:
        conn.execute(table.update().values(version_num="9999_future"))
    store.close()
    with pytest.raises(StoreError, match=r"'9999_future'.*Upgrade threadline"):
        SqlStore(uri)


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    process = start_python(code, *args)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return process


def start_python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


OPEN_AT_ONCE = textwrap.dedent(
    """
    import os, sys, time
    from threadline.store import get_store
    from threadline.store.base import TraceRow
    import alembic.command, threadline.store.sql  # so that the race below is tight
    uri, go, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    store = get_store(uri)
    store.log_batch([TraceRow(f"tr-{n:032x}", "0", 1, "OK")], [])
    print(store.get_experiment("0").name)
    """
)


def test_processes_starting_at_once_on_a_new_database_all_succeed(
    fresh_uri: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    processes = [start_python(OPEN_AT_ONCE, fresh_uri, str(go), str(n)) for n in range(4)]
    for process in processes:  # every process has imported threadline and waits
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    go.touch()
    results = [p.communicate(timeout=60) for p in processes]
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err
        assert out.strip() == "Default"
    store = SqlStore(fresh_uri)
    try:
        assert revision(store) == migrations.HEAD_REVISION
        assert len(store.search_traces()[0]) == 4
        assert [e.name for e in store.search_experiments()[0]] == ["Default"]
    finally:
        store.close()
