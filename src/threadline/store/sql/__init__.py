"""``SqlStore``: the ``Store`` on SQLite or PostgreSQL through SQLAlchemy Core.

This package is the only code that issues SQL. One module per job, combined into the one
``SqlStore``: ``_engine`` (engine, transactions, error mapping, schema upgrade, shared query
helpers), ``_trace_writes`` (``log_batch``, deletion, tags), ``_trace_reads`` (get and
search), ``_summaries`` (sessions and the overview's stale hours, kept in step with every
trace write), ``_assessments`` (feedback and expectations), ``_sessions`` (session lists),
``_overview`` (figures per hour or day), ``_experiments``, ``_runs``; pure helpers in
``_row_values`` (incoming rows made storable, stored text back to values),
``_assessment_rows`` (assessments to rows and back), ``_figures`` (the overview's
mergeable figures) and ``_checks`` (argument checks).

Concurrency: SQLite runs in WAL mode; write transactions start with ``BEGIN IMMEDIATE``
so two writers queue on the busy timeout instead of failing on a lock upgrade.
PostgreSQL relies on ``ON CONFLICT`` upserts; rows are written in key order so
concurrent batches do not deadlock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from threadline.store.sql._assessments import Assessments
from threadline.store.sql._engine import (
    ID_CHUNK,
    PG_CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_MS,
    now_ms,
)
from threadline.store.sql._experiments import Experiments
from threadline.store.sql._overview import Overviews
from threadline.store.sql._row_values import _loads, searchable_attributes
from threadline.store.sql._runs import Runs
from threadline.store.sql._sessions import Sessions
from threadline.store.sql._trace_reads import _ordered_spans, _trace_info

__all__ = [
    "ID_CHUNK",
    "PG_CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SqlStore",
    "_loads",
    "_ordered_spans",
    "_trace_info",
    "now_ms",
    "searchable_attributes",
]


class SqlStore(Assessments, Sessions, Overviews, Experiments, Runs):
    """The trace, assessment, session, experiment and run store on one database URL
    (``sqlite`` or ``postgresql``)."""


if TYPE_CHECKING:  # the type checker verifies SqlStore against the Store protocol
    from threadline.store.base import Store

    def _implements_store(store: SqlStore) -> Store:
        return store
