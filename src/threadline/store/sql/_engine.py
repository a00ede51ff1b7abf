"""Engine, transactions, errors and schema upgrade of ``SqlStore``, and the query helpers
every part of it shares (id chunks, key-value rows, dialect inserts).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.pool import StaticPool

from threadline import settings
from threadline.errors import (
    InvalidArgumentError,
    ResourceNotFoundError,
    StoreError,
    ThreadlineError,
)
from threadline.store import migrations
from threadline.store import tables as t
from threadline.store._redact import redact
from threadline.store._write_statements import WriteStatements

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
#: Ids per ``IN (…)`` list: below the bound-parameter limits of PostgreSQL (65,535) and
#: SQLite (32,766 since 3.32; 999 before, hence the smaller chunk there).
ID_CHUNK = 5_000
OLD_SQLITE_ID_CHUNK = 900
_BEGIN_MODE = "threadline_sqlite_begin"
_PG_MIGRATION_LOCK = zlib.crc32(b"threadline.store.migrations")


def now_ms() -> int:
    return int(time.time() * 1000)


def _create_engine(url: sa.URL, *, memory: bool) -> Engine:
    """An engine with the per-connection settings each back end needs."""
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S}
        )
        sa.event.listen(engine, "connect", _postgres_on_connect)
        return engine
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    }
    if memory:
        options["poolclass"] = StaticPool
    engine = sa.create_engine(url, **options)
    synchronous = settings.SQLITE_SYNCHRONOUS.get().upper()
    sa.event.listen(engine, "connect", _sqlite_on_connect(wal=not memory, synchronous=synchronous))
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _postgres_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Turn JIT off: our queries are short, and JIT compiling a filter with many
    conditions costs hundreds of milliseconds to seconds (stale statistics make it worse).
    """
    if dbapi_connection.info.server_version < 110000:  # no JIT before PostgreSQL 11
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET jit = off")
    finally:
        cursor.close()
    dbapi_connection.commit()  # or the pool's reset-on-return would roll the SET back


def _sqlite_on_connect(*, wal: bool, synchronous: str) -> Any:
    """Per-connection pragmas. In WAL mode ``synchronous=NORMAL`` makes every commit survive
    a killed process (``FULL``, a setting, also a power loss); a commit returns only then."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver: ``_sqlite_on_begin`` emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if wal:
                _enter_wal_mode(cursor)
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # LIKE is case-sensitive, as on PostgreSQL; ILIKE is lower() LIKE lower().
            cursor.execute("PRAGMA case_sensitive_like = ON")
        finally:
            cursor.close()

    return on_connect


def _enter_wal_mode(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL``, waiting while another process switches the file.

    SQLite answers "database is locked" at once, without its busy handler, when another
    connection is converting the same new file to WAL (several processes opening a new
    store together). The mode is kept in the file, so a later try finds it done.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_MODE, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _schema_revision(conn: Connection) -> str | None:
    """The schema revision recorded in the database (``None`` for an empty database)."""
    if not sa.inspect(conn).has_table(migrations.VERSION_TABLE):
        return None
    version = sa.table(migrations.VERSION_TABLE, sa.column("version_num"))
    return conn.execute(sa.select(version.c.version_num)).scalar()


def _is_connection_error(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, sa.exc.OperationalError) and (
        "connect" in text or "connection" in text or "does not exist" in text
    )


def _chunked(items: Sequence[str], size: int) -> Iterator[list[str]]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlBase:
    """The connection side of ``SqlStore``: engine, transactions, error mapping, schema."""

    def __init__(self, url: str | sa.URL) -> None:
        self._url = sa.make_url(url)
        self._dialect = self._url.get_backend_name()
        self._memory = self._dialect == "sqlite" and self._url.database in (None, "", ":memory:")
        # One shared connection in memory mode: transactions from several threads must queue.
        self._serial = threading.RLock() if self._memory else None
        self._engine = _create_engine(self._url, memory=self._memory)
        old_sqlite = self._dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 32)
        self._chunk_size = OLD_SQLITE_ID_CHUNK if old_sqlite else ID_CHUNK
        self._statements = WriteStatements(self._dialect)
        self._known_experiments: set[str] = set()  # ids seen in the table (never removed)
        #: Called with ``True`` once a write transaction holds SQLite's database-wide write
        #: lock and with ``False`` when it has committed or rolled back (the server pauses
        #: its decoding threads meanwhile, so the lock is held for as short as possible).
        self.on_write_lock: Callable[[bool], None] | None = None
        try:
            with self._errors("open the store"):
                self._ensure_schema()
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlStore({self._url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (tests hook events on it)."""
        return self._engine

    def close(self) -> None:
        """Release connections; the store reconnects if used again."""
        self._engine.dispose()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Connection]:
        """A connection inside one transaction (``BEGIN IMMEDIATE`` for SQLite writes)."""
        lock = self._serial if self._serial is not None else contextlib.nullcontext()
        with lock, self._engine.connect() as conn:
            if write and self._dialect == "sqlite":
                conn.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
            transaction = conn.begin()  # BEGIN IMMEDIATE: the write lock is ours from here
            hook = self.on_write_lock if write and self._dialect == "sqlite" else None
            if hook is not None:
                hook(True)
            try:
                with transaction:
                    yield conn
            finally:
                if hook is not None:
                    hook(False)

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        with self._errors(action), self._transaction(write=True) as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with self._errors(action), self._transaction(write=False) as conn:
            yield conn

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn driver errors into a ``StoreError`` that says what failed and what to check."""
        try:
            yield
        except ThreadlineError:
            raise
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:  # the data, not the store
            raise InvalidArgumentError(self._explain(action, exc)) from exc
        except (sa.exc.SQLAlchemyError, OverflowError) as exc:
            raise StoreError(self._explain(action, exc)) from exc

    def _explain(self, action: str, exc: Exception) -> str:
        """What failed, for people: never the store URL or its password (the message reaches
        HTTP clients and log lines), nor the driver's text of them."""
        first_line = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        detail = redact(
            first_line, self._url.password, self._url.render_as_string(hide_password=False)
        )
        if self._dialect == "postgresql" and _is_connection_error(exc):
            host = self._url.host or "localhost"
            port = self._url.port or 5432
            return (
                f"Could not {action}: cannot connect to PostgreSQL at {host}:{port} "
                f"(database {self._url.database!r}): {detail}. Is the server running and "
                "reachable, and does the database exist?"
            )
        if self._dialect == "sqlite" and "database is locked" in detail:
            return (
                f"Could not {action}: the SQLite database {self._url.database!r} stayed locked "
                f"by another writer for more than {SQLITE_BUSY_TIMEOUT_MS // 1000} s. Use "
                "PostgreSQL for many concurrent writer processes."
            )
        if self._dialect == "sqlite" and "unable to open database" in detail:
            return (
                f"Could not {action}: cannot open the SQLite database {self._url.database!r} "
                f"({detail}). Check that its folder exists and is writable."
            )
        return f"Could not {action} in the {self._dialect} store: {detail}"

    def _ensure_schema(self) -> None:
        """Upgrade the schema to head unless a cheap check says it is already there."""
        with self._transaction(write=False) as conn:
            if _schema_revision(conn) == migrations.HEAD_REVISION:
                return
        with self._migration_transaction() as conn:
            current = _schema_revision(conn)
            if current == migrations.HEAD_REVISION:
                return
            if current is not None and current not in migrations.known_revisions():
                raise StoreError(
                    f"The database schema is at revision {current!r}, which this version of "
                    "threadline does not know (it was upgraded by a newer threadline). "
                    "Upgrade threadline."
                )
            logger.info("Upgrading the threadline schema from %s to head", current or "empty")
            migrations.upgrade(conn)

    @contextlib.contextmanager
    def _migration_transaction(self) -> Iterator[Connection]:
        """A write transaction that only one process at a time can hold."""
        with self._transaction(write=True) as conn:
            if self._dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            yield conn

    def _chunks(self, ids: Sequence[str]) -> Iterator[list[str]]:
        """``ids`` in slices small enough for one ``IN (…)`` list."""
        return _chunked(ids, self._chunk_size)

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which knows ``ON CONFLICT``."""
        module = postgresql if self._dialect == "postgresql" else sqlite
        return module.insert(table)

    def _upsert_kv(
        self,
        conn: Connection,
        table: sa.Table,
        owner: str,
        rows: list[dict[str, str]],
        *,
        overwrite: bool,
    ) -> None:
        """Insert key-value rows; on a taken key either overwrite the value or keep it."""
        if not rows:
            return
        insert = self._insert(table)
        keys = [table.c[owner], table.c.key]
        if overwrite:
            statement = insert.on_conflict_do_update(
                index_elements=keys, set_={"value": insert.excluded.value}
            )
        else:
            statement = insert.on_conflict_do_nothing(index_elements=keys)
        conn.execute(statement, rows)

    def _key_values(
        self, conn: Connection, table: sa.Table, owner: str, ids: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        """``{owner id: {key: value}}`` for many owners at once."""
        out: dict[str, dict[str, str]] = {}
        for chunk in self._chunks(ids):
            query = sa.select(table.c[owner], table.c.key, table.c.value).where(
                table.c[owner].in_(chunk)
            )
            for owner_id, key, value in conn.execute(query):
                out.setdefault(owner_id, {})[key] = value
        return out

    def _require_experiment(self, conn: Connection, experiment_id: str) -> RowMapping:
        query = sa.select(t.experiments).where(t.experiments.c.experiment_id == str(experiment_id))
        row = conn.execute(query).mappings().first()
        if row is None:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}.")
        return row

    def _existing_experiments(self, conn: Connection, experiment_ids: set[str]) -> set[str]:
        if not experiment_ids:
            return set()
        query = self._statements.existing_experiments
        return set(conn.execute(query, {"ids": sorted(experiment_ids)}).scalars())
