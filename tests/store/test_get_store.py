"""``get_store``: URI forms, caching, thread safety, and errors that say what to fix."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.store._factory import simple_trace, tid
from tests.store.test_migrations import run_python
from threadline.errors import InvalidArgumentError, StoreError
from threadline.store import SpanRow, Store, TraceRow, get_store, reset_store_cache
from threadline.store.sql import SqlStore


def test_the_package_reexports_the_contract() -> None:
    assert (SpanRow.__name__, TraceRow.__name__, Store.__name__) == ("SpanRow", "TraceRow", "Store")


def test_importing_the_package_does_not_import_sqlalchemy() -> None:
    run_python(
        "import sys, threadline.store\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy was imported'\n"
        "assert 'threadline.store.sql' not in sys.modules\n"
    )


def test_a_store_satisfies_the_protocol(tmp_path: Path) -> None:
    assert isinstance(get_store(f"sqlite:///{tmp_path / 'a.db'}"), Store)


def test_relative_sqlite_paths_resolve_against_the_cwd_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    first = get_store("sqlite:///traces.db")
    assert get_store(f"sqlite:///{tmp_path / 'one' / 'traces.db'}") is first
    assert get_store("sqlite:///./traces.db") is first
    monkeypatch.chdir(tmp_path / "two")
    second = get_store("sqlite:///traces.db")
    assert second is not first
    assert (tmp_path / "one" / "traces.db").exists() and (tmp_path / "two" / "traces.db").exists()


def test_the_cache_is_per_uri_and_can_be_reset(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    store = get_store(uri)
    assert get_store(uri) is store
    assert get_store(f"sqlite:///{tmp_path / 'b.db'}") is not store
    reset_store_cache()
    assert get_store(uri) is not store


def test_concurrent_first_calls_share_one_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    got: list[Store] = []
    threads = [threading.Thread(target=lambda: got.append(get_store(uri))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(store is got[0] for store in got)


def test_memory_store_is_shared_across_threads() -> None:
    store = get_store("sqlite:///:memory:")
    row, spans = simple_trace(1)
    worker = threading.Thread(target=store.log_batch, args=([row], spans))
    worker.start()
    worker.join()
    trace = store.get_trace(tid(1))
    assert trace is not None and len(trace.data.spans) == 2


def test_memory_store_serialises_threads() -> None:
    store = get_store("sqlite:///:memory:")
    errors: list[BaseException] = []

    def work(start: int) -> None:
        try:
            for n in range(start, start + 20):
                row, spans = simple_trace(n)
                store.log_batch([row], spans)
                store.search_traces(max_results=5)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i * 100,)) for i in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.search_traces(max_results=1000)[0]) == 80


@pytest.mark.postgres
def test_both_postgres_spellings_give_the_psycopg_store(postgres_uri: str) -> None:
    plain = get_store(postgres_uri)
    explicit = get_store(postgres_uri.replace("postgresql://", "postgresql+psycopg://"))
    assert plain is explicit
    assert isinstance(plain, SqlStore) and plain.engine.url.drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    "uri",
    [
        "mysql://user@localhost/db",
        "postgresql+psycopg2://u@localhost/db",
        "postgres://u@localhost/db",
        "traces.db",
        "",
        "file:///tmp/x.db",
    ],
)
def test_unsupported_uris_name_the_accepted_forms(uri: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        get_store(uri)
    message = str(caught.value)
    assert "Accepted forms" in message and "sqlite:///" in message and "postgresql://" in message


def test_a_postgres_uri_needs_a_database() -> None:
    with pytest.raises(InvalidArgumentError, match="names no database"):
        get_store("postgresql://user@localhost:5432")


def test_passwords_are_hidden_in_errors() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        get_store("mysql://user:secret@localhost/db")
    assert "secret" not in str(caught.value)


def test_unreachable_postgres_says_where_and_what_to_check() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        get_store("postgresql://postgres:hunter2@127.0.0.1:1/nowhere")
    message = str(caught.value)
    assert "cannot connect to PostgreSQL at 127.0.0.1:1" in message
    assert "Is the server running" in message and "hunter2" not in message
    assert time.monotonic() - started < 15


def test_an_unopenable_sqlite_file_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="Check that its folder exists and is writable"):
        get_store(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = get_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 30000,
        "foreign_keys": 1,
    }


def test_a_locked_sqlite_database_waits_for_the_writer(tmp_path: Path) -> None:
    store = get_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(store, SqlStore)
    blocker = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    row, spans = simple_trace(1)
    with blocker.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        writer = threading.Thread(target=store.log_batch, args=([row], spans))
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive()  # queued on the busy timeout, not failed
        conn.rollback()
    writer.join(timeout=10)
    assert store.get_trace(tid(1)) is not None
    blocker.dispose()


@pytest.mark.postgres
def test_postgres_sessions_run_without_jit(postgres_uri: str) -> None:
    store = get_store(postgres_uri)
    assert isinstance(store, SqlStore)
    for _ in range(2):  # a pooled connection keeps the setting after a rollback
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
