"""Trace writes of ``SqlStore``: ``log_batch`` (upserts in one transaction, orphans, span
totals, cost sums), deletion and tags.

Around every batch and deletion, inside its transaction, ``_before_trace_changes`` and
``_after_trace_changes`` let the summaries kept beside the traces (sessions, the overview's
hours: ``_summaries.py``) follow the change.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import operator
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.entities.experiment import DEFAULT_EXPERIMENT_ID
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.trace import TraceMetadataKey
from threadline.errors import ResourceNotFoundError
from threadline.store import tables as t
from threadline.store.base import SpanRow, TraceRow
from threadline.store.sql._checks import _check_delete_arguments, _check_key, _check_tag
from threadline.store.sql._engine import SqlBase
from threadline.store.sql._experiments import _generated_names
from threadline.store.sql._row_values import (
    _COL_ATTRIBUTES,
    _COL_PARENT_ID,
    _COL_START_TIME,
    _COL_TRACE_ID,
    _FINAL_STATES,
    _IDS,
    SPAN_COLUMNS,
    _experiment_values,
    _kv_rows,
    _loads,
    _merge_trace_rows,
    _span_params,
    _trace_values,
)

logger = logging.getLogger(__name__)

_COST_FIELDS = ("input_cost", "output_cost", "total_cost")
_COST_MARK = f'"{SpanAttributeKey.COST}"'  # in a span's attributes text when it has a cost


def _add_cost(total: dict[str, Decimal], text: str | None) -> None:
    """Add one span's cost (JSON text of ``{"input_cost", …}``) to ``total``; odd values skip."""
    cost = _loads(text)
    if not isinstance(cost, dict):
        return
    for field in _COST_FIELDS:
        value = cost.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            total[field] += Decimal(repr(float(value)))


class TraceWrites(SqlBase):
    """``log_batch``, ``delete_traces`` and trace tags."""

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
        touched = sorted(set(trace_rows) | set(span_trace_ids))
        with self._write(f"write {len(trace_rows)} traces and {len(span_rows)} spans") as conn:
            before = self._before_trace_changes(conn, touched, deleting=False)
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
            self._after_trace_changes(conn, touched, before)

    def _before_trace_changes(
        self, conn: Connection, traces: Sequence[str] | sa.Select[Any], *, deleting: bool
    ) -> Any:
        """Called in the write transaction before these traces (ids, or a query of ids)
        change or are deleted; the result goes to ``_after_trace_changes``."""
        return None

    def _after_trace_changes(self, conn: Connection, trace_ids: Sequence[str], before: Any) -> None:
        """Called in the same transaction once the traces ``trace_ids`` have changed (no
        ids after a deletion)."""

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
                ids = sorted(set(trace_ids))
                before = self._before_trace_changes(conn, ids, deleting=True)
                deleted = 0
                for chunk in self._chunks(ids):
                    statement = t.traces.delete().where(
                        traces.experiment_id == experiment_id, traces.trace_id.in_(chunk)
                    )
                    deleted += conn.execute(statement).rowcount
                self._after_trace_changes(conn, [], before)
                return deleted
            doomed = sa.select(traces.trace_id).where(
                traces.experiment_id == experiment_id,
                traces.request_time <= max_timestamp_millis,
            )
            if max_traces is not None:
                doomed = doomed.order_by(traces.request_time, traces.trace_id).limit(max_traces)
            before = self._before_trace_changes(conn, doomed, deleting=True)
            statement = t.traces.delete().where(traces.trace_id.in_(doomed.scalar_subquery()))
            deleted = conn.execute(statement).rowcount
            self._after_trace_changes(conn, [], before)
            return deleted

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
