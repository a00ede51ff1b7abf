"""``SqlStore``: the ``Store`` on SQLite or PostgreSQL through SQLAlchemy Core.

This is the only module that issues SQL. Sections: engine and transactions, schema
upgrade, traces (write, read, search, delete, tags), experiments, runs, and the pure
helpers that clean incoming rows and build entities from result rows.

Concurrency: SQLite runs in WAL mode; write transactions start with ``BEGIN IMMEDIATE``
so two writers queue on the busy timeout instead of failing on a lock upgrade.
PostgreSQL relies on ``ON CONFLICT`` upserts; rows are written in key order so
concurrent batches do not deadlock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import operator
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.pool import StaticPool

from threadline import _json as fast_json
from threadline import settings
from threadline.entities.experiment import (
    DEFAULT_EXPERIMENT_ID,
    Experiment,
    LifecycleStage,
)
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.run import Metric, Run, RunData, RunInfo, RunStatus
from threadline.entities.span import Span, SpanStatus, SpanStatusCode
from threadline.entities.trace import Trace, TraceData, TraceInfo, TraceMetadataKey
from threadline.errors import (
    InvalidArgumentError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    StoreError,
    ThreadlineError,
)
from threadline.store import _read_statements as reads
from threadline.store import migrations, search
from threadline.store import tables as t
from threadline.store._like import check_name_like, like
from threadline.store._redact import redact
from threadline.store._stored_span import SUMMARY_COLUMNS, StoredSpan
from threadline.store._write_statements import WriteStatements
from threadline.store.base import STRUCTURE_ATTRIBUTES, SpanRow, Store, TraceRow
from threadline.store.row_checks import ESCAPED_UNSTORABLE, SURROGATE, clean_text, unclean

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
#: Ids per ``IN (…)`` list: below the bound-parameter limits of PostgreSQL (65,535) and
#: SQLite (32,766 since 3.32; 999 before, hence the smaller chunk there).
ID_CHUNK = 5_000
OLD_SQLITE_ID_CHUNK = 900
MAX_EXPERIMENT_NAME = 256
MAX_SEARCH_EXPERIMENTS = 400
CREATE_RETRIES = 5

_BEGIN_MODE = "threadline_sqlite_begin"
_PG_MIGRATION_LOCK = zlib.crc32(b"threadline.store.migrations")
_PG_EXPERIMENT_LOCK = zlib.crc32(b"threadline.store.experiments")
_FINAL_STATES = ("OK", "ERROR")
_TRACE_STATES = ("OK", "ERROR", "IN_PROGRESS")


def _risky_json(text: str) -> bool:
    """Whether JSON readers in SQL would reject or mangle ``text``: NaN/Infinity, ``\\u0000``,
    lone surrogates. Substring tests first: a regex alternation is slow on long text."""
    if "NaN" in text or "Infinity" in text:
        return True
    if "\\u" in text and ESCAPED_UNSTORABLE.search(text) is not None:
        return True
    return not text.isascii() and SURROGATE.search(text) is not None


def now_ms() -> int:
    return int(time.time() * 1000)


class SqlStore:
    """The trace, experiment and run store on one database URL (``sqlite`` or ``postgresql``)."""

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

    # --- transactions and errors -------------------------------------------------------

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

    # --- schema --------------------------------------------------------------------------

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

    # --- traces: write -------------------------------------------------------------------

    def log_batch(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        """Upsert trace rows then span rows in one transaction (see ``Store.log_batch``)."""
        trace_rows = _merge_trace_rows(traces)
        # Everything but SQL is done before the write transaction: another process may be
        # waiting for SQLite's write lock, and our other threads want the GIL meanwhile.
        span_rows = sorted({row[:2]: row for row in map(_span_params, spans)}.values(), key=_IDS)
        if not trace_rows and not span_rows:
            return
        span_params = self._span_driver_params(span_rows)
        span_trace_ids = sorted({r[_COL_TRACE_ID] for r in span_rows})
        # Stored states matter only for spans whose trace row is not in this batch (are they
        # orphans?) and for IN_PROGRESS rows with tags (stale ones must not overwrite tags).
        unknown = {tid for tid in span_trace_ids if tid not in trace_rows}
        unknown |= {tid for tid, r in trace_rows.items() if r.state == "IN_PROGRESS" and r.tags}
        with self._write(f"write {len(trace_rows)} traces and {len(span_rows)} spans") as conn:
            stored = self._stored_states(conn, unknown) if unknown else {}
            orphans = [tid for tid in span_trace_ids if tid not in stored and tid not in trace_rows]
            experiment_ids = {r.experiment_id for r in trace_rows.values()}
            self._ensure_experiments(conn, experiment_ids | ({"0"} if orphans else set()))
            self._upsert_traces(conn, trace_rows, stored)
            self._insert_orphan_traces(conn, orphans, span_rows)
            if span_params:
                # Straight to the driver: SQLAlchemy's per-row parameter processing would
                # cost more than the insert itself, and this runs for every exported span.
                conn.exec_driver_sql(self._span_upsert_sql[0], span_params)
            # A trace gets its root span's name when the row had none (orphans, or a root
            # that arrives after its trace row, as with OTLP ingest).
            unnamed = sorted(
                set(orphans)
                | {tid for tid, row in trace_rows.items() if row.name is None}
                | {
                    r[_COL_TRACE_ID]
                    for r in span_rows
                    if r[_COL_PARENT_ID] is None and r[_COL_TRACE_ID] not in trace_rows
                }
            )
            self._refresh_span_totals(conn, span_trace_ids, unnamed)
            self._refresh_trace_costs(
                conn,
                sorted({r[_COL_TRACE_ID] for r in span_rows if _COST_MARK in r[_COL_ATTRIBUTES]}),
            )

    def _refresh_trace_costs(self, conn: Connection, trace_ids: list[str]) -> None:
        """Sum the ``threadline.llm.cost`` of each trace's spans into its ``cost`` metadata.

        Only spans with token counts can have a cost, so only those are read (the cost is
        pulled out of their attributes by the database, not loaded whole).
        """
        if not trace_ids:
            return
        spans = t.spans.c
        has_tokens = sa.or_(
            spans.input_tokens.is_not(None),
            spans.output_tokens.is_not(None),
            spans.total_tokens.is_not(None),
        )
        cost = self._attribute_json(SpanAttributeKey.COST)
        sums: dict[str, dict[str, Decimal]] = {}
        for chunk in self._chunks(trace_ids):
            query = sa.select(spans.trace_id, cost).where(spans.trace_id.in_(chunk), has_tokens)
            for trace_id, text in conn.execute(query):
                _add_cost(sums.setdefault(trace_id, dict.fromkeys(_COST_FIELDS, Decimal(0))), text)
        rows = [
            {
                "trace_id": trace_id,
                "key": TraceMetadataKey.COST,
                "value": json.dumps({field: float(total[field]) for field in _COST_FIELDS}),
            }
            for trace_id, total in sorted(sums.items())
        ]
        self._upsert_kv(conn, t.trace_metadata, "trace_id", rows, overwrite=True)

    def _attribute_json(self, key: str) -> sa.ColumnElement[Any]:
        """JSON text of one span attribute (SQL NULL when absent); ``key`` is our own constant."""
        if self._dialect == "postgresql":
            value = sa.cast(t.spans.c.attributes, sa.JSON).op("->")(sa.literal(key, sa.Text))
            return sa.cast(value, sa.Text)
        return sa.func.json_extract(t.spans.c.attributes, sa.literal(f'$."{key}"'))

    def _stored_states(self, conn: Connection, trace_ids: set[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        query = self._statements.stored_states
        for chunk in self._chunks(sorted(trace_ids)):
            states.update({row.trace_id: row.state for row in conn.execute(query, {"ids": chunk})})
        return states

    def _ensure_experiments(self, conn: Connection, experiment_ids: set[str]) -> None:
        """Create experiments that traces name but that do not exist, so nothing is lost."""
        unknown = experiment_ids - self._known_experiments
        if not unknown:
            return
        existing = self._existing_experiments(conn, unknown)
        self._known_experiments |= existing
        missing = unknown - existing
        for experiment_id in sorted(missing):
            logger.debug("Creating experiment %r on the fly for incoming traces", experiment_id)
            for name in _generated_names(experiment_id):
                values = _experiment_values(experiment_id, name, "")
                conn.execute(self._insert(t.experiments).values(values).on_conflict_do_nothing())
                if self._existing_experiments(conn, {experiment_id}):
                    break

    def _existing_experiments(self, conn: Connection, experiment_ids: set[str]) -> set[str]:
        if not experiment_ids:
            return set()
        query = self._statements.existing_experiments
        return set(conn.execute(query, {"ids": sorted(experiment_ids)}).scalars())

    def _upsert_traces(
        self, conn: Connection, rows: dict[str, TraceRow], stored: dict[str, str]
    ) -> None:
        """Insert or update summary rows; a stale IN_PROGRESS row never touches a final one."""
        if not rows:
            return
        ordered = [rows[tid] for tid in sorted(rows)]
        conn.execute(self._statements.trace_upsert, [_trace_values(row) for row in ordered])
        tags: list[dict[str, str]] = []
        kept_tags: list[dict[str, str]] = []
        metadata: list[dict[str, str]] = []
        for row in ordered:
            is_stale = row.state == "IN_PROGRESS" and stored.get(row.trace_id) in _FINAL_STATES
            target = kept_tags if is_stale else tags
            target.extend(_kv_rows("trace_id", row.trace_id, row.tags))
            metadata.extend(_kv_rows("trace_id", row.trace_id, row.metadata))
        for statement, kv_rows in (
            (self._statements.tags_overwrite, tags),
            (self._statements.tags_keep, kept_tags),
            (self._statements.metadata_keep, metadata),
        ):
            if kv_rows:
                conn.execute(statement, kv_rows)

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

    def _insert_orphan_traces(
        self, conn: Connection, orphans: list[str], span_rows: list[tuple[Any, ...]]
    ) -> None:
        """Spans whose trace has no row yet: an IN_PROGRESS row in experiment "0"."""
        if not orphans:
            return
        first_start: dict[str, int] = {}
        for row in span_rows:
            tid, start = row[_COL_TRACE_ID], row[_COL_START_TIME]
            first_start[tid] = min(first_start.get(tid, start), start)
        values = [
            {
                "trace_id": tid,
                "experiment_id": DEFAULT_EXPERIMENT_ID,
                "request_time": first_start[tid] // 1_000_000,
                "state": "IN_PROGRESS",
            }
            for tid in orphans
        ]
        conn.execute(self._statements.orphan_insert, values)

    def _span_driver_params(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """``_span_params`` rows as the driver takes them for ``_span_upsert_sql``."""
        order = self._span_upsert_sql[1]
        if order is None:  # named parameters (psycopg)
            return [dict(zip(SPAN_COLUMNS, row)) for row in rows]
        if order == list(SPAN_COLUMNS):  # SQLite: positional, in table order
            return rows
        positional = operator.itemgetter(*(SPAN_COLUMNS.index(name) for name in order))
        return [positional(row) for row in rows]

    @functools.cached_property
    def _span_upsert_sql(self) -> tuple[str, list[str] | None]:
        """The span upsert compiled for this engine, and its positional parameter order."""
        compiled = self._statements.span_upsert.compile(dialect=self._engine.dialect)
        order = compiled.positiontup
        return compiled.string, list(order) if order else None

    def _refresh_span_totals(
        self, conn: Connection, trace_ids: list[str], unnamed: list[str]
    ) -> None:
        """Recompute token totals and span counts from the spans; name nameless traces."""
        for chunk in self._chunks(trace_ids):
            conn.execute(self._statements.refresh_totals, {"ids": chunk})
        for chunk in self._chunks(unnamed):
            conn.execute(self._statements.fill_names, {"ids": chunk})

    # --- traces: read --------------------------------------------------------------------

    def get_trace(self, trace_id: str) -> Trace | None:
        """The trace with all its spans, or ``None``."""
        with self._read("read a trace") as conn:
            infos = self._trace_infos(conn, self._trace_rows(conn, [trace_id]))
            if not infos:
                return None
            spans = self._load_spans(conn, [trace_id]).get(trace_id, [])
        return Trace(info=infos[0], data=TraceData(spans=spans))

    def get_trace_info(self, trace_id: str) -> TraceInfo | None:
        """The trace's summary (no spans), or ``None``."""
        with self._read("read a trace") as conn:
            infos = self._trace_infos(conn, self._trace_rows(conn, [trace_id]))
        return infos[0] if infos else None

    def get_trace_structure(self, trace_id: str) -> Trace | None:
        """The trace with its spans but not their payloads (see ``Store.get_trace_structure``).

        The database picks the ``STRUCTURE_ATTRIBUTES`` out of each span's attributes, so
        inputs, outputs, events and large attributes are never read into Python.
        """
        with self._read("read a trace") as conn:
            infos = self._trace_infos(conn, self._trace_rows(conn, [trace_id]))
            if not infos:
                return None
            rows = conn.execute(self._structure_query(trace_id)).all()
        spans = [_structure_span(*row) for row in rows]
        return Trace(info=infos[0], data=TraceData(spans=_ordered_spans(spans)))

    def _structure_query(self, trace_id: str) -> sa.Select[Any]:
        """The span columns of one trace, with the structure attributes as a JSON array text."""
        c = t.spans.c
        columns = [c[name] for name in _STRUCTURE_COLUMNS]
        where = c.trace_id == trace_id
        if self._dialect == "postgresql":
            # Parse each span's attributes once (OFFSET 0 keeps the planner from inlining the
            # cast into every key lookup), then build the array from the parsed value.
            parsed = sa.cast(c.attributes, postgresql.JSONB).label("parsed")
            inner = sa.select(*columns, parsed).where(where).offset(0).subquery("structure")
            values = [
                inner.c.parsed.op("->")(sa.literal(key, sa.Text)) for key in STRUCTURE_ATTRIBUTES
            ]
            as_text = sa.cast(sa.func.jsonb_build_array(*values), sa.Text)
            return sa.select(
                *[inner.c[name] for name in _STRUCTURE_COLUMNS], as_text.label("picked")
            )
        paths = [sa.literal(f'$."{key}"') for key in STRUCTURE_ATTRIBUTES]  # our own keys
        picked = sa.case(  # several paths give a JSON array; most spans have no attributes
            (c.attributes == "{}", sa.null()),
            else_=sa.func.json_extract(c.attributes, *paths),
        )
        return sa.select(*columns, picked.label("picked")).where(where)

    def get_span(self, trace_id: str, span_id: str) -> Span | None:
        """One span with its payloads (parsed when read), or ``None``."""
        with self._read("read a span") as conn:
            row = conn.execute(reads.SPAN, {"trace_id": trace_id, "span_id": span_id}).first()
        return None if row is None else StoredSpan(row)

    def span_artifact_keys(
        self, trace_ids: Sequence[str], span_ids: Sequence[str] | None = None
    ) -> dict[tuple[str, str], str]:
        """``{(trace id, span id): spans.artifact_keys}`` for spans of ``trace_ids`` that
        have one (at least those of ``span_ids``, if given): which payloads
        ``OffloadingStore`` moved to its artifact repository, and where."""
        c = t.spans.c
        found: dict[tuple[str, str], str] = {}
        with self._read("read artifact keys") as conn:
            for chunk in self._chunks(list(trace_ids)):
                query = sa.select(c.trace_id, c.span_id, c.artifact_keys).where(
                    c.trace_id.in_(chunk), c.artifact_keys.is_not(None)
                )
                if span_ids is not None and len(span_ids) <= self._chunk_size:
                    query = query.where(c.span_id.in_(list(span_ids)))
                found.update(((tid, sid), keys) for tid, sid, keys in conn.execute(query))
        return found

    def _trace_rows(self, conn: Connection, trace_ids: list[str]) -> Sequence[Sequence[Any]]:
        """Summary rows (``reads.TRACE_COLUMNS``) of these traces."""
        return conn.execute(reads.TRACE_ROWS, {"ids": trace_ids}).all()

    def search_traces(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
        run_id: str | None = None,
        include_spans: bool = True,
    ) -> tuple[list[Trace], str | None]:
        """One page of traces matching the filter language (``store/search.py``)."""
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        conditions = search.compile_trace_filter(search.parse_filter(filter_string), self._dialect)
        order = search.parse_order_by(
            order_by,
            search.TRACE_ORDER_COLUMNS,
            prefix="trace",
            default=search.OrderKey("request_time", ascending=False),
        )
        if experiment_ids is not None:
            conditions.append(t.traces.c.experiment_id.in_(_experiment_id_list(experiment_ids)))
        if run_id is not None:
            conditions.append(t.traces.c.run_id == run_id)
        query = (
            sa.select(*reads.TRACE_SELECT)
            .where(*conditions)
            .order_by(*search.order_clauses(order, t.traces, "trace_id"))
            .limit(limit + 1)
            .offset(offset)
        )
        with self._read("search traces") as conn:
            rows = conn.execute(query).all()
            infos = self._trace_infos(conn, rows[:limit])
            spans = self._load_spans(conn, [i.trace_id for i in infos]) if include_spans else {}
        page = [Trace(info, TraceData(spans=spans.get(info.trace_id, []))) for info in infos]
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return page, token

    def _trace_infos(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> list[TraceInfo]:
        """``TraceInfo`` for summary rows (``reads.TRACE_COLUMNS``), with their tags and
        metadata (two queries; none when there are no rows)."""
        if not rows:
            return []
        ids = [row[0] for row in rows]
        tags = self._trace_key_values(conn, reads.TRACE_TAGS, ids)
        metadata = self._trace_key_values(conn, reads.TRACE_METADATA, ids)
        return [_trace_info(row, tags.get(row[0], {}), metadata.get(row[0], {})) for row in rows]

    def _trace_key_values(
        self, conn: Connection, statement: sa.Select[Any], ids: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        """``{trace id: {key: value}}`` from a prebuilt (trace_id, key, value) statement."""
        out: dict[str, dict[str, str]] = {}
        for chunk in self._chunks(ids):
            for owner_id, key, value in conn.execute(statement, {"ids": chunk}):
                out.setdefault(owner_id, {})[key] = value
        return out

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

    def _load_spans(self, conn: Connection, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        """Spans of many traces in one query per ``ID_CHUNK`` traces, payloads parsed on
        first use (``StoredSpan``)."""
        grouped: dict[str, list[Span]] = {}
        for chunk in self._chunks(trace_ids):
            rows = conn.execute(reads.SPANS, {"ids": chunk}).all()  # by trace, start time
            for trace_id, spans in itertools.groupby(map(StoredSpan, rows), _TRACE_ID):
                grouped.setdefault(trace_id, []).extend(spans)
        return {tid: _ordered_spans(spans) for tid, spans in grouped.items()}

    # --- traces: delete and tags ---------------------------------------------------------

    def delete_traces(
        self,
        experiment_id: str,
        max_timestamp_millis: int | None = None,
        max_traces: int | None = None,
        trace_ids: Sequence[str] | None = None,
    ) -> int:
        """Delete by age (oldest first, at most ``max_traces``) or by ids; returns the count."""
        _check_delete_arguments(max_timestamp_millis, max_traces, trace_ids)
        experiment_id = str(experiment_id)
        traces = t.traces.c
        with self._write("delete traces") as conn:
            if trace_ids is not None:
                deleted = 0
                for chunk in self._chunks(sorted(set(trace_ids))):
                    statement = t.traces.delete().where(
                        traces.experiment_id == experiment_id, traces.trace_id.in_(chunk)
                    )
                    deleted += conn.execute(statement).rowcount
                return deleted
            doomed = sa.select(traces.trace_id).where(
                traces.experiment_id == experiment_id,
                traces.request_time <= max_timestamp_millis,
            )
            if max_traces is not None:
                doomed = doomed.order_by(traces.request_time, traces.trace_id).limit(max_traces)
            statement = t.traces.delete().where(traces.trace_id.in_(doomed.scalar_subquery()))
            return conn.execute(statement).rowcount

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        """Set (or replace) one tag of a stored trace."""
        _check_tag(key, value)
        with self._write("set a trace tag") as conn:
            self._require_trace(conn, trace_id)
            row = {"trace_id": trace_id, "key": key, "value": value}
            self._upsert_kv(conn, t.trace_tags, "trace_id", [row], overwrite=True)

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        """Remove one tag of a stored trace (a tag that is not there is not an error)."""
        _check_key(key, "tag")
        with self._write("delete a trace tag") as conn:
            self._require_trace(conn, trace_id)
            conn.execute(
                t.trace_tags.delete().where(
                    t.trace_tags.c.trace_id == trace_id, t.trace_tags.c.key == key
                )
            )

    def _require_trace(self, conn: Connection, trace_id: str) -> None:
        query = sa.select(t.traces.c.trace_id).where(t.traces.c.trace_id == trace_id)
        if conn.execute(query).first() is None:
            raise ResourceNotFoundError(f"No trace with id {trace_id!r}.")

    # --- experiments ---------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """Create an experiment; returns its id (the next integer unless one is given)."""
        _check_experiment_name(name)
        tags = _check_tags(tags or {})
        if experiment_id is not None:
            experiment_id = _check_experiment_id(experiment_id)
        with self._errors("create an experiment"):
            for _attempt in range(CREATE_RETRIES):
                try:
                    return self._try_create_experiment(name, artifact_location, tags, experiment_id)
                except sa.exc.IntegrityError:
                    # A concurrent creator took the name or the id (SQLite and PostgreSQL
                    # serialise creators, so only an explicit id racing a generated one gets
                    # here): the next attempt re-checks the name (and reports it) or moves on.
                    logger.debug("Experiment id or name taken concurrently; retrying")
            raise StoreError(
                f"Could not create experiment {name!r}: its id kept colliding with "
                f"experiments created concurrently ({CREATE_RETRIES} attempts). Retry."
            )

    def _try_create_experiment(
        self,
        name: str,
        artifact_location: str | None,
        tags: dict[str, str],
        experiment_id: str | None,
    ) -> str:
        with self._transaction(write=True) as conn:
            if self._dialect == "postgresql":  # creators queue instead of colliding on ids
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_EXPERIMENT_LOCK)))
            self._refuse_taken_name(conn, name)
            if experiment_id is None:
                experiment_id = self._next_experiment_id(conn)
            elif self._existing_experiments(conn, {experiment_id}):
                raise ResourceAlreadyExistsError(
                    f"An experiment with id {experiment_id!r} already exists."
                )
            values = _experiment_values(experiment_id, name, artifact_location or "")
            conn.execute(t.experiments.insert().values(values))
            self._upsert_kv(
                conn,
                t.experiment_tags,
                "experiment_id",
                _kv_rows("experiment_id", experiment_id, tags),
                overwrite=True,
            )
            return experiment_id

    def _refuse_taken_name(self, conn: Connection, name: str) -> None:
        query = sa.select(t.experiments.c.lifecycle_stage).where(t.experiments.c.name == name)
        stage = conn.execute(query).scalar()
        if stage is None:
            return
        hint = " (it is deleted: restore it, or rename it first)" if stage != "active" else ""
        raise ResourceAlreadyExistsError(f"An experiment named {name!r} already exists{hint}.")

    def _next_experiment_id(self, conn: Connection) -> str:
        highest = conn.execute(sa.select(sa.func.max(t.experiments.c.id_number))).scalar()
        return str((highest if highest is not None else 0) + 1)

    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment with this id (deleted ones too); ``ResourceNotFoundError`` if none."""
        with self._read("read an experiment") as conn:
            found = self._experiments_where(
                conn, t.experiments.c.experiment_id == str(experiment_id)
            )
        if not found:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}.")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with this name, or ``None``."""
        with self._read("read an experiment") as conn:
            found = self._experiments_where(conn, t.experiments.c.name == name)
        return found[0] if found else None

    def _experiments_where(self, conn: Connection, *conditions: Any) -> list[Experiment]:
        rows = list(conn.execute(sa.select(t.experiments).where(*conditions)).mappings())
        return self._experiments(conn, rows)

    def _experiments(self, conn: Connection, rows: list[RowMapping]) -> list[Experiment]:
        ids = [row["experiment_id"] for row in rows]
        tags = self._key_values(conn, t.experiment_tags, "experiment_id", ids)
        return [_experiment(row, tags.get(row["experiment_id"], {})) for row in rows]

    def search_experiments(
        self,
        name_like: str | None = None,
        include_deleted: bool = False,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> tuple[list[Experiment], str | None]:
        """Experiments, newest first; ``name_like`` is a LIKE pattern (case-sensitive; see
        ``store/_like.py``: a bad one is an ``InvalidArgumentError``)."""
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        columns = t.experiments.c
        conditions: list[sa.ColumnElement[bool]] = []
        if name_like is not None:
            conditions.append(like(columns.name, check_name_like(name_like)))
        if not include_deleted:
            conditions.append(columns.lifecycle_stage == LifecycleStage.ACTIVE)
        query = (
            sa.select(t.experiments)
            .where(*conditions)
            .order_by(
                columns.creation_time.desc().nulls_last(),
                columns.id_number.desc().nulls_last(),
                columns.experiment_id,
            )
            .limit(limit + 1)
            .offset(offset)
        )
        with self._read("search experiments") as conn:
            rows = list(conn.execute(query).mappings())
            page = self._experiments(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return page, token

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Give an experiment a new, unused name."""
        _check_experiment_name(new_name)
        with self._write("rename an experiment") as conn:
            current = self._require_experiment(conn, experiment_id)
            if current["name"] == new_name:
                return
            self._refuse_taken_name(conn, new_name)
            self._update_experiment(conn, experiment_id, name=new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark an experiment deleted (its traces and runs stay); "0" cannot be deleted."""
        if str(experiment_id) == DEFAULT_EXPERIMENT_ID:
            raise InvalidArgumentError("The Default experiment (id '0') cannot be deleted.")
        with self._write("delete an experiment") as conn:
            self._require_experiment(conn, experiment_id)
            self._update_experiment(conn, experiment_id, lifecycle_stage=LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        """Make a deleted experiment active again."""
        with self._write("restore an experiment") as conn:
            self._require_experiment(conn, experiment_id)
            self._update_experiment(conn, experiment_id, lifecycle_stage=LifecycleStage.ACTIVE)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (or replace) one tag of an experiment."""
        _check_tag(key, value)
        with self._write("set an experiment tag") as conn:
            self._require_experiment(conn, experiment_id)
            row = {"experiment_id": str(experiment_id), "key": key, "value": value}
            self._upsert_kv(conn, t.experiment_tags, "experiment_id", [row], overwrite=True)

    def _require_experiment(self, conn: Connection, experiment_id: str) -> RowMapping:
        query = sa.select(t.experiments).where(t.experiments.c.experiment_id == str(experiment_id))
        row = conn.execute(query).mappings().first()
        if row is None:
            raise ResourceNotFoundError(f"No experiment with id {experiment_id!r}.")
        return row

    def _update_experiment(self, conn: Connection, experiment_id: str, **values: Any) -> None:
        statement = (
            t.experiments.update()
            .where(t.experiments.c.experiment_id == str(experiment_id))
            .values(**values, last_update_time=now_ms())
        )
        conn.execute(statement)

    # --- runs ----------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> Run:
        """Start a run (status RUNNING) in an active experiment."""
        tags = _check_tags(tags or {})
        run_id = uuid.uuid4().hex
        info = RunInfo(
            run_id=run_id,
            experiment_id=str(experiment_id),
            run_name=_check_run_name(run_name) if run_name else f"run-{run_id[:8]}",
            status=RunStatus.RUNNING,
            start_time=now_ms() if start_time is None else int(start_time),
            parent_run_id=parent_run_id,
        )
        with self._write("create a run") as conn:
            experiment = self._require_experiment(conn, info.experiment_id)
            if experiment["lifecycle_stage"] != LifecycleStage.ACTIVE:
                raise InvalidArgumentError(
                    f"Experiment {experiment_id!r} is deleted; restore it to create runs in it."
                )
            conn.execute(t.runs.insert().values(dataclasses.asdict(info)))
            rows = _kv_rows("run_id", run_id, tags)
            self._upsert_kv(conn, t.run_tags, "run_id", rows, overwrite=True)
        return Run(info=info, data=RunData(tags=dict(tags)))

    def get_run(self, run_id: str) -> Run:
        """The run with its params, latest metrics and tags."""
        with self._read("read a run") as conn:
            row = self._require_run(conn, run_id, active=False)
            return self._runs(conn, [row])[0]

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        """Change a run's status, end time or name; returns the updated info."""
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = _check_run_status(status)
        if end_time is not None:
            values["end_time"] = int(end_time)
        if run_name is not None:
            values["run_name"] = _check_run_name(run_name)
        with self._write("update a run") as conn:
            row = self._require_run(conn, run_id, active=False)
            if values:
                conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(values))
        return _run_info({**row, **values})

    def delete_run(self, run_id: str) -> None:
        """Mark a run deleted."""
        with self._write("delete a run") as conn:
            self._require_run(conn, run_id, active=False)
            statement = (
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(lifecycle_stage=LifecycleStage.DELETED)
            )
            conn.execute(statement)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        """Record params; a key logged again must keep its value."""
        checked = {_check_key(k, "param"): _check_value(v, k, "param") for k, v in params.items()}
        if not checked:
            return
        with self._write("log params") as conn:
            self._require_run(conn, run_id, active=True)
            self._refuse_changed_params(conn, run_id, checked)
            rows = _kv_rows("run_id", run_id, checked)
            self._upsert_kv(conn, t.run_params, "run_id", rows, overwrite=False)
            self._refuse_changed_params(conn, run_id, checked)  # a concurrent writer won

    def _refuse_changed_params(self, conn: Connection, run_id: str, params: dict[str, str]) -> None:
        stored = self._key_values(conn, t.run_params, "run_id", [run_id]).get(run_id, {})
        for key, value in params.items():
            if key in stored and stored[key] != value:
                raise InvalidArgumentError(
                    f"Param {key!r} of run {run_id!r} was already logged with value "
                    f"{stored[key]!r}; it cannot change to {value!r}. Params are immutable: "
                    "log a new key, or start a new run."
                )

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Append metric values to the history and keep the latest per key up to date."""
        rows = [_metric_values(run_id, m) for m in metrics]
        if not rows:
            return
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            best = latest.get(row["key"])
            if best is None or (row["step"], row["timestamp"]) >= (best["step"], best["timestamp"]):
                latest[row["key"]] = row
        with self._write("log metrics") as conn:
            self._require_run(conn, run_id, active=True)
            conn.execute(t.run_metrics.insert(), rows)
            insert = self._insert(t.run_latest_metrics)
            stored = t.run_latest_metrics.c
            newer = sa.or_(
                stored.step < insert.excluded.step,
                sa.and_(
                    stored.step == insert.excluded.step,
                    stored.timestamp <= insert.excluded.timestamp,
                ),
            )
            statement = insert.on_conflict_do_update(
                index_elements=[stored.run_id, stored.key],
                set_={c: insert.excluded[c] for c in ("value", "timestamp", "step")},
                where=newer,
            )
            conn.execute(statement, [latest[key] for key in sorted(latest)])

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set (or replace) tags of a run."""
        checked = _check_tags(tags)
        with self._write("set run tags") as conn:
            self._require_run(conn, run_id, active=False)
            rows = _kv_rows("run_id", run_id, checked)
            self._upsert_kv(conn, t.run_tags, "run_id", rows, overwrite=True)

    def delete_run_tag(self, run_id: str, key: str) -> None:
        """Remove one tag of a run (a tag that is not there is not an error)."""
        _check_key(key, "tag")
        with self._write("delete a run tag") as conn:
            self._require_run(conn, run_id, active=False)
            conn.execute(
                t.run_tags.delete().where(t.run_tags.c.run_id == run_id, t.run_tags.c.key == key)
            )

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str | None = None,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        """Active runs of the experiments matching a filter such as ``metrics.m > 0.5``."""
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        comparisons = search.parse_filter(filter_string, search.resolve_run_field)
        order = search.parse_order_by(
            order_by,
            search.RUN_ORDER_COLUMNS,
            prefix="attributes",
            default=search.OrderKey("start_time", ascending=False),
        )
        query = (
            sa.select(t.runs)
            .where(
                t.runs.c.experiment_id.in_(_experiment_id_list(experiment_ids)),
                t.runs.c.lifecycle_stage == LifecycleStage.ACTIVE,
                *search.compile_run_filter(comparisons, self._dialect),
            )
            .order_by(*search.order_clauses(order, t.runs, "run_id"))
            .limit(limit + 1)
            .offset(offset)
        )
        with self._read("search runs") as conn:
            rows = list(conn.execute(query).mappings())
            page = self._runs(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return page, token

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every logged value of one metric, by step then timestamp."""
        metrics = t.run_metrics.c
        query = (
            sa.select(metrics.key, metrics.value, metrics.timestamp, metrics.step)
            .where(metrics.run_id == run_id, metrics.key == key)
            .order_by(metrics.step, metrics.timestamp, metrics.metric_id)
        )
        with self._read("read a metric history") as conn:
            self._require_run(conn, run_id, active=False)
            return [_metric(row) for row in conn.execute(query).mappings()]

    def _require_run(self, conn: Connection, run_id: str, *, active: bool) -> RowMapping:
        row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
        if row is None:
            raise ResourceNotFoundError(f"No run with id {run_id!r}.")
        if active and row["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise InvalidArgumentError(f"Run {run_id!r} is deleted; it cannot be changed.")
        return row

    def _runs(self, conn: Connection, rows: list[RowMapping]) -> list[Run]:
        """Runs with their params, tags and latest metrics (three queries for the page)."""
        ids = [row["run_id"] for row in rows]
        params = self._key_values(conn, t.run_params, "run_id", ids)
        tags = self._key_values(conn, t.run_tags, "run_id", ids)
        metrics: dict[str, dict[str, float]] = {}
        for chunk in self._chunks(ids):
            latest = t.run_latest_metrics.c
            query = sa.select(latest.run_id, latest.key, latest.value).where(
                latest.run_id.in_(chunk)
            )
            for run_id, key, value in conn.execute(query):
                metrics.setdefault(run_id, {})[key] = math.nan if value is None else value
        return [
            Run(
                info=_run_info(row),
                data=RunData(
                    params=params.get(row["run_id"], {}),
                    metrics=metrics.get(row["run_id"], {}),
                    tags=tags.get(row["run_id"], {}),
                ),
            )
            for row in rows
        ]


# --- engine ------------------------------------------------------------------------------


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


# --- incoming rows: validation and cleaning ----------------------------------------------


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else clean_text(str(value))


def searchable_attributes(text: str) -> str:
    """Attributes as a strict JSON object that SQL JSON functions read on both back ends.

    Valid, strict JSON passes through untouched (the common case). NaN/Infinity become
    strings, ``\\u0000`` and lone surrogates become U+FFFD, and text that is not a JSON
    object is kept under ``threadline.unparsed`` rather than dropped.
    """
    if text == "{}":
        return text
    try:
        value = fast_json.loads(text)
    except (ValueError, TypeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        logger.debug("Span attributes are not a JSON object; keeping them as text")
        return json.dumps({"threadline.unparsed": clean_text(str(text))}, ensure_ascii=False)
    if not _risky_json(text):
        return text
    return json.dumps(_strict_json(value), ensure_ascii=False, separators=(",", ":"))


def _strict_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {clean_text(k): _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    return value


def _merge_trace_rows(rows: Iterable[TraceRow]) -> dict[str, TraceRow]:
    """One cleaned row per trace id, applying the upsert rules to rows of the same batch."""
    merged: dict[str, TraceRow] = {}
    for row in rows:
        row = _clean_trace_row(row)
        previous = merged.get(row.trace_id)
        merged[row.trace_id] = row if previous is None else _merge_two(previous, row)
    return merged


def _merge_two(old: TraceRow, new: TraceRow) -> TraceRow:
    if new.state == "IN_PROGRESS" and old.state in _FINAL_STATES:
        return dataclasses.replace(
            old, tags={**new.tags, **old.tags}, metadata={**new.metadata, **old.metadata}
        )
    updates = {
        f.name: getattr(new, f.name)
        for f in dataclasses.fields(new)
        if getattr(new, f.name) is not None and f.name not in ("tags", "metadata")
    }
    updates["tags"] = {**old.tags, **new.tags}
    updates["metadata"] = {**new.metadata, **old.metadata}
    return dataclasses.replace(old, **updates)


def _clean_trace_row(row: TraceRow) -> TraceRow:
    """Validate the state, move ``run_id`` out of metadata, make text storable."""
    state = str(getattr(row.state, "value", row.state))
    if state not in _TRACE_STATES:
        raise InvalidArgumentError(
            f"Trace {row.trace_id!r} has state {row.state!r}; use one of {', '.join(_TRACE_STATES)}."
        )
    metadata = _clean_mapping(row.metadata)
    run_id = row.run_id or metadata.get(TraceMetadataKey.RUN_ID)
    metadata.pop(TraceMetadataKey.RUN_ID, None)
    return dataclasses.replace(
        row,
        trace_id=clean_text(row.trace_id),
        experiment_id=clean_text(str(row.experiment_id)),
        request_time=int(row.request_time),
        state=state,
        execution_duration=None if row.execution_duration is None else int(row.execution_duration),
        name=_clean_optional(row.name),
        request_preview=_clean_optional(row.request_preview),
        response_preview=_clean_optional(row.response_preview),
        client_request_id=_clean_optional(row.client_request_id),
        run_id=_clean_optional(run_id),
        tags=_clean_mapping(row.tags),
        metadata=metadata,
    )


def _clean_mapping(values: dict[str, str]) -> dict[str, str]:
    """Storable keys (at most ``MAX_KEY_LENGTH`` characters) and text values."""
    return {
        clean_text(str(k))[: t.MAX_KEY_LENGTH]: clean_text(str(v))
        for k, v in (values or {}).items()
    }


def _trace_values(row: TraceRow) -> dict[str, Any]:
    return {
        "trace_id": row.trace_id,
        "experiment_id": row.experiment_id,
        "request_time": row.request_time,
        "execution_duration": row.execution_duration,
        "state": row.state,
        "name": row.name,
        "request_preview": row.request_preview,
        "response_preview": row.response_preview,
        "client_request_id": row.client_request_id,
        "run_id": row.run_id,
    }


#: The span columns in table order: the order of ``_span_params`` tuples.
SPAN_COLUMNS: tuple[str, ...] = tuple(column.name for column in t.spans.columns)
_COL_TRACE_ID, _COL_PARENT_ID, _COL_START_TIME, _COL_ATTRIBUTES = (
    SPAN_COLUMNS.index(name) for name in ("trace_id", "parent_id", "start_time_ns", "attributes")
)
_IDS = operator.itemgetter(0, 1)  # (trace_id, span_id): the primary key, the write order


def _span_params(span: SpanRow) -> tuple[Any, ...]:
    """A span's column values as stored, in ``SPAN_COLUMNS`` order.

    Runs once per written span, so the texts are checked for NUL characters and lone
    surrogates in one pass over all of them; only a span that has some is cleaned field
    by field.
    """
    code = str(span.status_code).upper()
    texts: tuple[str, ...] = (
        span.trace_id,
        span.span_id,
        span.parent_id or "",
        span.name if type(span.name) is str else str(span.name),
        str(span.span_type or "UNKNOWN"),
        span.status_message or "",
        span.inputs_json or "null",
        span.outputs_json or "null",
        span.events_json or "[]",
    )
    try:
        joined = "".join(texts)
    except TypeError:  # not text: cleaned field by field below, which says what is wrong
        joined = "\x00"
    if unclean(joined):
        texts = tuple(_clean_optional(text) or "" for text in texts)
    trace_id, span_id, parent_id, name, span_type, message, inputs, outputs, events = texts
    if not trace_id or not span_id:
        raise InvalidArgumentError(
            f"A span row needs a trace id and a span id, got {trace_id!r} and {span_id!r}."
        )
    return (
        trace_id,
        span_id,
        parent_id or None,
        name,
        span_type,
        code if code in SpanStatusCode.ALL else SpanStatusCode.UNSET,
        message,
        int(span.start_time_ns),
        None if span.end_time_ns is None else int(span.end_time_ns),
        inputs,
        outputs,
        searchable_attributes(span.attributes_json or "{}"),
        events,
        span.input_tokens,
        span.output_tokens,
        span.total_tokens,
        # Set only by OffloadingStore (an OffloadedSpanRow); NULL for a client's row, so
        # a payload that looks like a reference is never taken for one.
        getattr(span, "artifact_keys", None),
    )


def _kv_rows(owner: str, owner_id: str, values: dict[str, str]) -> list[dict[str, str]]:
    return [{owner: owner_id, "key": k, "value": v} for k, v in sorted(values.items())]


def _generated_names(experiment_id: str) -> tuple[str, str]:
    """Names for an experiment created for incoming traces: ``experiment-<id>``, then one
    with a random suffix if that is taken; a long id is shortened so both fit the column."""
    base = f"experiment-{experiment_id}"
    if len(base) > MAX_EXPERIMENT_NAME - 9:
        digest = hashlib.sha256(experiment_id.encode("utf-8", "surrogatepass")).hexdigest()
        base = f"{base[: MAX_EXPERIMENT_NAME - 9 - 17]}~{digest[:16]}"
    return base, f"{base}-{uuid.uuid4().hex[:8]}"


def _experiment_values(experiment_id: str, name: str, artifact_location: str) -> dict[str, Any]:
    now = now_ms()
    number = int(experiment_id) if experiment_id.isdigit() and len(experiment_id) < 19 else None
    return {
        "experiment_id": experiment_id,
        "id_number": number,
        "name": name,
        "artifact_location": artifact_location,
        "lifecycle_stage": LifecycleStage.ACTIVE,
        "creation_time": now,
        "last_update_time": now,
    }


def _metric_values(run_id: str, metric: Metric) -> dict[str, Any]:
    key = _check_key(metric.key, "metric")
    value = metric.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"Metric {key!r} must have a numeric value, got {value!r}.")
    for name in ("timestamp", "step"):
        number = getattr(metric, name)
        if isinstance(number, bool) or not isinstance(number, int):
            raise InvalidArgumentError(
                f"Metric {key!r}: {name} must be an integer, got {number!r}."
            )
    value = float(value)
    return {
        "run_id": run_id,
        "key": key,
        "value": None if math.isnan(value) else value,
        "timestamp": metric.timestamp,
        "step": metric.step,
    }


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError(f"A {what} key must be a non-empty string, got {key!r}.")
    if len(key) > t.MAX_KEY_LENGTH:
        raise InvalidArgumentError(
            f"{what.capitalize()} key {key[:40]!r}… is {len(key)} characters long; "
            f"the limit is {t.MAX_KEY_LENGTH}."
        )
    if clean_text(key) != key:
        raise InvalidArgumentError(
            f"{what.capitalize()} key {key!r} holds NUL or invalid characters."
        )
    return key


def _check_value(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"The value of {what} {key!r} must be a string, got {type(value).__name__} {value!r}."
        )
    if len(value) > t.MAX_VALUE_LENGTH:
        raise InvalidArgumentError(
            f"The value of {what} {key!r} is {len(value)} characters long; "
            f"the limit is {t.MAX_VALUE_LENGTH}."
        )
    if clean_text(value) != value:
        raise InvalidArgumentError(f"The value of {what} {key!r} holds NUL or invalid characters.")
    return value


def _check_tag(key: Any, value: Any) -> None:
    _check_value(value, _check_key(key, "tag"), "tag")


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise InvalidArgumentError(f"tags must be a dict of strings, got {tags!r}.")
    for key, value in tags.items():
        _check_tag(key, value)
    return dict(tags)


def _check_experiment_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(f"An experiment name must be a non-empty string, got {name!r}.")
    if len(name) > MAX_EXPERIMENT_NAME or clean_text(name) != name:
        raise InvalidArgumentError(
            f"Experiment name {name[:40]!r} must be at most {MAX_EXPERIMENT_NAME} characters "
            "of ordinary text."
        )


def _check_experiment_id(experiment_id: Any) -> str:
    if isinstance(experiment_id, int) and not isinstance(experiment_id, bool):
        experiment_id = str(experiment_id)
    if not isinstance(experiment_id, str) or not experiment_id.strip():
        raise InvalidArgumentError(
            f"An experiment id must be a non-empty string, got {experiment_id!r}."
        )
    return clean_text(experiment_id)


def _check_run_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > t.MAX_KEY_LENGTH:
        raise InvalidArgumentError(
            f"A run name must be a string of at most {t.MAX_KEY_LENGTH} characters, got {name!r}."
        )
    return clean_text(name)


def _check_run_status(status: Any) -> str:
    text = str(getattr(status, "value", status)).upper()
    if text not in RunStatus.ALL:
        raise InvalidArgumentError(
            f"Invalid run status {status!r}; use one of {', '.join(RunStatus.ALL)}."
        )
    return text


def _experiment_id_list(experiment_ids: Sequence[str] | str) -> list[str]:
    """Ids to search in (a single id is accepted too); bounded like the filter's IN lists."""
    ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
    if len(ids) > MAX_SEARCH_EXPERIMENTS:
        raise InvalidArgumentError(
            f"Search at most {MAX_SEARCH_EXPERIMENTS} experiments at once, got {len(ids)} ids."
        )
    return [str(i) for i in ids]


def _check_delete_arguments(
    max_timestamp_millis: int | None, max_traces: int | None, trace_ids: Sequence[str] | None
) -> None:
    if (max_timestamp_millis is None) == (trace_ids is None):
        raise InvalidArgumentError(
            "delete_traces needs exactly one of max_timestamp_millis (delete traces at least "
            "that old) or trace_ids (delete these traces), not both and not neither."
        )
    if max_traces is not None and trace_ids is not None:
        raise InvalidArgumentError(
            "max_traces applies only with max_timestamp_millis; do not combine it with trace_ids."
        )
    if max_traces is not None and (type(max_traces) is not int or max_traces < 1):
        raise InvalidArgumentError(f"max_traces must be a positive integer, got {max_traces!r}.")
    if max_timestamp_millis is not None and (
        isinstance(max_timestamp_millis, bool) or not isinstance(max_timestamp_millis, int)
    ):
        raise InvalidArgumentError(
            f"max_timestamp_millis must be an integer (ms since epoch), got {max_timestamp_millis!r}."
        )
    if isinstance(trace_ids, str):
        raise InvalidArgumentError("trace_ids must be a list of trace ids, not a single string.")


# --- result rows to entities -------------------------------------------------------------


def _trace_info(row: Sequence[Any], tags: dict[str, str], metadata: dict[str, str]) -> TraceInfo:
    """A summary row (``reads.TRACE_COLUMNS``) with its tags and metadata."""
    (
        trace_id,
        experiment_id,
        request_time,
        execution_duration,
        state,
        name,
        request_preview,
        response_preview,
        client_request_id,
        run_id,
        input_tokens,
        output_tokens,
        total_tokens,
    ) = row
    metadata = dict(metadata)
    if run_id is not None:
        metadata[TraceMetadataKey.RUN_ID] = run_id
    if input_tokens is not None or output_tokens is not None or total_tokens is not None:
        metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(
            {
                "input_tokens": input_tokens or 0,
                "output_tokens": output_tokens or 0,
                "total_tokens": total_tokens or 0,
            }
        )
    return TraceInfo(
        trace_id=trace_id,
        experiment_id=experiment_id,
        request_time=request_time,
        execution_duration=execution_duration,
        state=state,
        request_preview=request_preview,
        response_preview=response_preview,
        client_request_id=client_request_id,
        tags=tags,
        trace_metadata=metadata,
        name=name,
    )


def _loads(text: str | None) -> Any:
    """Stored JSON text back to values (text that is not JSON comes back as it is)."""
    return None if text is None else fast_json.stored_value(text)


_TRACE_ID = operator.attrgetter("_trace_id")
_START = operator.attrgetter("_start_time_ns")


def _ordered_spans(spans: list[Span]) -> list[Span]:
    """By start time; a parent before its children when they started at the same instant.

    Spans rarely share a start time: then a plain sort by it is the answer (linear on rows
    that came sorted), and the parent depths are worked out only when some do.
    """
    starts = list(map(_START, spans))
    if len(set(starts)) == len(starts):
        return sorted(spans, key=_START)
    return _ordered_with_ties(spans, starts)


def _ordered_with_ties(spans: list[Span], starts: list[int]) -> list[Span]:
    """``_ordered_spans`` when start times repeat: depth (from the root) breaks the ties.

    Only spans that share a start time need their depth. Walking up from them gives the
    depths a walk from every span would, unless the parent links loop (bad data), where a
    depth depends on where the walk entered the loop: then every span is walked, in list
    order, as the store always did.
    """
    parents = {s.span_id: s.parent_id for s in spans}
    depths: dict[str, int] = {}
    loops: list[str] = []

    def depth(span_id: str) -> int:
        chain: list[str] = []
        node: str | None = span_id
        while node is not None and node in parents and node not in depths and node not in chain:
            chain.append(node)
            node = parents[node]
        if node is not None and node in chain:
            loops.append(node)
        level = depths.get(node, -1) if node is not None else -1
        for item in reversed(chain):  # a cycle (bad data) just stops the walk
            level += 1
            depths[item] = level
        return depths.get(span_id, 0)

    seen: set[int] = set()
    tied: set[int] = set()
    for start in starts:
        (tied if start in seen else seen).add(start)
    keys = [(start, depth(s.span_id) if start in tied else 0) for s, start in zip(spans, starts)]
    if loops:
        depths.clear()
        keys = [(start, depth(s.span_id)) for s, start in zip(spans, starts)]
    order = sorted(range(len(spans)), key=keys.__getitem__)
    return [spans[i] for i in order]


def _experiment(row: RowMapping, tags: dict[str, str]) -> Experiment:
    return Experiment(
        experiment_id=row["experiment_id"],
        name=row["name"],
        artifact_location=row["artifact_location"] or "",
        lifecycle_stage=row["lifecycle_stage"],
        tags=tags,
        creation_time=row["creation_time"],
        last_update_time=row["last_update_time"],
    )


def _run_info(row: dict[str, Any] | RowMapping) -> RunInfo:
    return RunInfo(
        run_id=row["run_id"],
        experiment_id=row["experiment_id"],
        run_name=row["run_name"],
        status=row["status"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        lifecycle_stage=row["lifecycle_stage"],
        parent_run_id=row["parent_run_id"],
    )


def _metric(row: RowMapping) -> Metric:
    value = math.nan if row["value"] is None else row["value"]
    return Metric(key=row["key"], value=value, timestamp=row["timestamp"], step=row["step"])


if TYPE_CHECKING:  # the type checker verifies SqlStore against the Store protocol

    def _implements_store(store: SqlStore) -> Store:
        return store


# --- trace structure and cost sums -------------------------------------------------------

_STRUCTURE_COLUMNS = SUMMARY_COLUMNS
_COST_FIELDS = ("input_cost", "output_cost", "total_cost")
_COST_MARK = f'"{SpanAttributeKey.COST}"'  # in a span's attributes text when it has a cost
# A span with none of the structure attributes, as SQLite and PostgreSQL write the array.
_NOTHING_PICKED = frozenset(
    sep.join(["null"] * len(STRUCTURE_ATTRIBUTES)).join("[]") for sep in (",", ", ")
)


def _structure_span(
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    span_type: str,
    status_code: str,
    status_message: str | None,
    start_time_ns: int,
    end_time_ns: int | None,
    picked: str | None,
) -> Span:
    """A span without payloads (a ``_structure_query`` row, in ``_STRUCTURE_COLUMNS`` order
    then the structure attributes the database picked out, as a JSON array)."""
    attributes: dict[str, Any] = {}
    if picked is not None and picked not in _NOTHING_PICKED:  # most spans: skip the parse
        values = _loads(picked)
        if isinstance(values, list):
            attributes = {k: v for k, v in zip(STRUCTURE_ATTRIBUTES, values) if v is not None}
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        span_type=span_type,
        start_time_ns=start_time_ns,
        end_time_ns=end_time_ns,
        status=SpanStatus(
            status_code if status_code in SpanStatusCode.ALL else SpanStatusCode.UNSET,
            status_message or "",
        ),
        attributes=attributes,
    )


def _add_cost(total: dict[str, Decimal], text: str | None) -> None:
    """Add one span's cost (JSON text of ``{"input_cost", …}``) to ``total``; odd values skip."""
    cost = _loads(text)
    if not isinstance(cost, dict):
        return
    for field in _COST_FIELDS:
        value = cost.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            total[field] += Decimal(repr(float(value)))
