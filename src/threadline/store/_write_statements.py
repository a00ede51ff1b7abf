"""The statements of the trace write path, built once per store.

Building an ``INSERT … ON CONFLICT`` with ``excluded`` columns costs SQLAlchemy far more
than executing it, and ``log_batch`` runs for every exported batch, so ``SqlStore`` builds
these once and reuses them. ``IN`` lists use expanding bind parameters, so every batch
size shares one statement (and one compiled form in SQLAlchemy's cache). Nothing here
executes SQL; ``sql/_trace_writes.py`` does.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from threadline.store import tables as t

_KEEP_OR_TAKE = (
    "execution_duration",
    "name",
    "request_preview",
    "response_preview",
    "client_request_id",
    "run_id",
)


class WriteStatements:
    """Prebuilt statements for ``SqlStore.log_batch`` on one dialect."""

    def __init__(self, dialect: str) -> None:
        self._module: Any = postgresql if dialect == "postgresql" else sqlite
        self.trace_upsert = self._trace_upsert()
        self.orphan_insert = self.insert(t.traces).on_conflict_do_nothing(
            index_elements=["trace_id"]
        )
        self.span_upsert = self._span_upsert()
        self.tags_overwrite = self._kv(t.trace_tags, "trace_id", overwrite=True)
        self.tags_keep = self._kv(t.trace_tags, "trace_id", overwrite=False)
        self.metadata_keep = self._kv(t.trace_metadata, "trace_id", overwrite=False)
        ids: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
        self.stored_states = sa.select(t.traces.c.trace_id, t.traces.c.state).where(
            t.traces.c.trace_id.in_(ids)
        )
        self.existing_experiments = sa.select(t.experiments.c.experiment_id).where(
            t.experiments.c.experiment_id.in_(ids)
        )
        self.refresh_totals = self._refresh_totals(ids)
        self.fill_names = self._fill_names(ids)

    def insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which knows ``ON CONFLICT``."""
        return self._module.insert(table)

    def _trace_upsert(self) -> Any:
        insert = self.insert(t.traces)
        excluded = insert.excluded
        keep_or_take = {
            column: sa.func.coalesce(excluded[column], t.traces.c[column])
            for column in _KEEP_OR_TAKE
        }
        # Stored states are OK, ERROR or IN_PROGRESS: "not IN_PROGRESS" is "final".
        stale = sa.and_(excluded.state == "IN_PROGRESS", t.traces.c.state != "IN_PROGRESS")
        return insert.on_conflict_do_update(
            index_elements=[t.traces.c.trace_id],
            set_={
                "experiment_id": excluded.experiment_id,
                "request_time": excluded.request_time,
                "state": excluded.state,
                **keep_or_take,
            },
            where=sa.not_(stale),
        )

    def _span_upsert(self) -> Any:
        insert = self.insert(t.spans)
        columns = [c.name for c in t.spans.columns if c.name not in ("trace_id", "span_id")]
        return insert.on_conflict_do_update(
            index_elements=[t.spans.c.trace_id, t.spans.c.span_id],
            set_={name: insert.excluded[name] for name in columns},
        )

    def _kv(self, table: sa.Table, owner: str, *, overwrite: bool) -> Any:
        insert = self.insert(table)
        keys = [table.c[owner], table.c.key]
        if overwrite:
            return insert.on_conflict_do_update(
                index_elements=keys, set_={"value": insert.excluded.value}
            )
        return insert.on_conflict_do_nothing(index_elements=keys)

    @staticmethod
    def _refresh_totals(ids: sa.BindParameter[Any]) -> Any:
        """Token totals and span counts of the given traces, from their spans, in one
        ``UPDATE … FROM (aggregate)`` (not five correlated subqueries per trace)."""
        spans = t.spans.c
        total = sa.func.coalesce(spans.total_tokens, spans.input_tokens + spans.output_tokens)
        totals = (
            sa.select(
                spans.trace_id.label("trace_id"),
                sa.func.sum(spans.input_tokens).label("input_tokens"),
                sa.func.sum(spans.output_tokens).label("output_tokens"),
                sa.func.sum(total).label("total_tokens"),
                sa.func.count().label("span_count"),
            )
            .where(spans.trace_id.in_(ids))
            .group_by(spans.trace_id)
            .subquery("totals")
        )
        return (
            t.traces.update()
            .where(t.traces.c.trace_id == totals.c.trace_id)
            .values(
                input_tokens=totals.c.input_tokens,
                output_tokens=totals.c.output_tokens,
                total_tokens=totals.c.total_tokens,
                span_count=totals.c.span_count,
            )
        )

    @staticmethod
    def _fill_names(ids: sa.BindParameter[Any]) -> Any:
        """Name traces that have none (rows made for orphan spans) after their root span."""
        spans = t.spans.c
        root_name = (
            sa.select(spans.name)
            .where(spans.trace_id == t.traces.c.trace_id, spans.parent_id.is_(None))
            .order_by(spans.start_time_ns)
            .limit(1)
            .scalar_subquery()
        )
        return (
            t.traces.update()
            .where(t.traces.c.trace_id.in_(ids), t.traces.c.name.is_(None))
            .values(name=root_name)
        )
