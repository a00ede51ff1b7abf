"""The statements of the trace read path, built once.

``get_trace`` and the trace list run a handful of small queries each; building a
``SELECT`` costs SQLAlchemy about as much as running it on a warm database, so these are
built at import and reused. ``IN`` lists use expanding bind parameters: one statement
(and one compiled form in SQLAlchemy's cache) for any number of ids. Each statement
selects its columns in a fixed order that the row-to-entity code in ``sql/_trace_reads.py`` and
``_stored_span.py`` unpacks by position. Nothing here executes SQL; ``sql/`` does.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from threadline.store import tables as t
from threadline.store._stored_span import ROW_COLUMNS

#: The ``traces`` columns ``sql._trace_info`` unpacks, in this order.
TRACE_COLUMNS = (
    "trace_id",
    "experiment_id",
    "request_time",
    "execution_duration",
    "state",
    "name",
    "request_preview",
    "response_preview",
    "client_request_id",
    "run_id",
    "input_tokens",
    "output_tokens",
    "total_tokens",
)

_IDS: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)

#: The summary columns, for any ``SELECT`` of trace rows (``search_traces`` adds its filter).
TRACE_SELECT = [t.traces.c[name] for name in TRACE_COLUMNS]
TRACE_ROWS = sa.select(*TRACE_SELECT).where(t.traces.c.trace_id.in_(_IDS))
TRACE_TAGS = sa.select(t.trace_tags.c.trace_id, t.trace_tags.c.key, t.trace_tags.c.value).where(
    t.trace_tags.c.trace_id.in_(_IDS)
)
TRACE_METADATA = sa.select(
    t.trace_metadata.c.trace_id, t.trace_metadata.c.key, t.trace_metadata.c.value
).where(t.trace_metadata.c.trace_id.in_(_IDS))

_SPAN_SELECT = [t.spans.c[name] for name in ROW_COLUMNS]
#: Spans of the traces ``ids``, by trace then start time (``StoredSpan`` rows).
SPANS = (
    sa.select(*_SPAN_SELECT)
    .where(t.spans.c.trace_id.in_(_IDS))
    .order_by(t.spans.c.trace_id, t.spans.c.start_time_ns)
)
#: One span (``trace_id``, ``span_id``), as a ``StoredSpan`` row.
SPAN = sa.select(*_SPAN_SELECT).where(
    t.spans.c.trace_id == sa.bindparam("trace_id"), t.spans.c.span_id == sa.bindparam("span_id")
)
