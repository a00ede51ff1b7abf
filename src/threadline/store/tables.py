"""The schema, as SQLAlchemy Core tables (the migrations create exactly this; a test checks it).

Layout, and why:

* ``traces`` is the summary row of a trace: everything a list or a search needs (state,
  times, root span name, previews, token totals, span count), so lists never read spans.
* ``spans`` holds span bodies. Payloads are JSON text; ``attributes`` is a JSON object
  text that filters read with ``json_each`` (SQLite) or ``CAST(… AS JSON) ->>`` (PostgreSQL).
  ``artifact_keys`` (JSON ``{field: key}``, NULL for most spans) says which payloads the
  server moved to its artifact store: only that column makes a payload a reference.
* ``trace_tags`` / ``trace_metadata`` are key-value rows (tags mutable, metadata write-once).
* Experiments and runs follow the usual tracking model; ``run_latest_metrics`` keeps the
  latest value of each metric so run filters such as ``metrics.m > 0.5`` stay one lookup.
* ``assessments`` holds feedback and expectations of a trace. The value is kept as JSON
  text and, so that filters and averages need no cast, also in a typed column:
  ``value_number`` for numbers and booleans (1/0), ``value_text`` for strings.
* ``sessions`` summarises the traces sharing a ``session_id`` metadata value per experiment
  (kept up to date by every write of traces), so a session list reads one row per session;
  its key is the SHA-256 of the session id (ids can be longer than a PostgreSQL index
  entry). ``trace_rollups`` keeps an experiment's figures per UTC hour for the overview,
  recomputed when read for the hours ``stale_rollups`` names (writes only mark them).

Children reference their parent with ``ON DELETE CASCADE`` so deleting traces is one
statement; SQLite enforces it because the store turns ``PRAGMA foreign_keys`` on.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: An integer primary key that autoincrements on both back ends (SQLite needs INTEGER).
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

MAX_KEY_LENGTH = 250
MAX_VALUE_LENGTH = 8000


def _fk(column: str, *, ondelete: str = "CASCADE") -> sa.ForeignKey:
    return sa.ForeignKey(column, ondelete=ondelete)


experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", sa.String, primary_key=True),
    # int(experiment_id) when the id is a number: the next generated id is max + 1.
    sa.Column("id_number", sa.BigInteger, nullable=True, index=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("artifact_location", sa.Text, nullable=False, server_default=""),
    sa.Column("lifecycle_stage", sa.String, nullable=False, server_default="active"),
    sa.Column("creation_time", sa.BigInteger, nullable=True),
    sa.Column("last_update_time", sa.BigInteger, nullable=True),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column(
        "experiment_id",
        sa.String,
        _fk("experiments.experiment_id"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column(
        "experiment_id",
        sa.String,
        _fk("experiments.experiment_id"),
        nullable=False,
        index=True,
    ),
    sa.Column("run_name", sa.String(MAX_KEY_LENGTH), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=True),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("lifecycle_stage", sa.String, nullable=False, server_default="active"),
    sa.Column("parent_run_id", sa.String, nullable=True),
)

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_id", sa.String, _fk("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.String, _fk("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("metric_id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String, _fk("runs.run_id"), nullable=False),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), nullable=False),
    sa.Column("value", sa.Float, nullable=True),  # NULL stands for NaN (SQLite cannot store it)
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Index("ix_run_metrics_run_id_key", "run_id", "key"),
)

run_latest_metrics = sa.Table(
    "run_latest_metrics",
    metadata,
    sa.Column("run_id", sa.String, _fk("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
)

traces = sa.Table(
    "traces",
    metadata,
    sa.Column("trace_id", sa.String, primary_key=True),
    sa.Column(
        "experiment_id",
        sa.String,
        _fk("experiments.experiment_id"),
        nullable=False,
    ),
    sa.Column("run_id", sa.String, nullable=True, index=True),
    sa.Column("request_time", sa.BigInteger, nullable=False, index=True),
    sa.Column("execution_duration", sa.BigInteger, nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("request_preview", sa.Text, nullable=True),
    sa.Column("response_preview", sa.Text, nullable=True),
    sa.Column("client_request_id", sa.String, nullable=True, index=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=True),
    sa.Column("output_tokens", sa.BigInteger, nullable=True),
    sa.Column("total_tokens", sa.BigInteger, nullable=True),
    sa.Column("span_count", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_traces_experiment_id_request_time", "experiment_id", "request_time"),
)

trace_tags = sa.Table(
    "trace_tags",
    metadata,
    sa.Column("trace_id", sa.String, _fk("traces.trace_id"), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: The metadata key of a trace's session (``TraceMetadataKey.SESSION_ID``).
SESSION_KEY = "session_id"
_SESSION_ROWS = sa.text(f"key = '{SESSION_KEY}'")

trace_metadata = sa.Table(
    "trace_metadata",
    metadata,
    sa.Column("trace_id", sa.String, _fk("traces.trace_id"), primary_key=True),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    # The traces of a session. A hash index on PostgreSQL: a B-tree entry cannot hold a
    # value longer than ~2,700 bytes, and metadata values may be longer.
    sa.Index(
        "ix_trace_metadata_session_id",
        "value",
        sqlite_where=_SESSION_ROWS,
        postgresql_where=_SESSION_ROWS,
        postgresql_using="hash",
    ),
)

spans = sa.Table(
    "spans",
    metadata,
    sa.Column("trace_id", sa.String, _fk("traces.trace_id"), primary_key=True),
    sa.Column("span_id", sa.String, primary_key=True),
    sa.Column("parent_id", sa.String, nullable=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("span_type", sa.String, nullable=False),
    sa.Column("status_code", sa.String(16), nullable=False),
    sa.Column("status_message", sa.Text, nullable=False, server_default=""),
    sa.Column("start_time_ns", sa.BigInteger, nullable=False),
    sa.Column("end_time_ns", sa.BigInteger, nullable=True),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=True),
    sa.Column("output_tokens", sa.BigInteger, nullable=True),
    sa.Column("total_tokens", sa.BigInteger, nullable=True),
    # {field: key} of the payloads moved to the artifact store; written only by the server.
    sa.Column("artifact_keys", sa.Text, nullable=True),
)

assessments = sa.Table(
    "assessments",
    metadata,
    sa.Column("assessment_id", sa.String(64), primary_key=True),
    sa.Column("trace_id", sa.String, _fk("traces.trace_id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # "feedback" | "expectation"
    sa.Column("name", sa.String(MAX_KEY_LENGTH), nullable=False),
    # "number" | "boolean" | "string" | "json"; NULL for a feedback that holds an error.
    sa.Column("value_type", sa.String(16), nullable=True),
    sa.Column("value_number", sa.Float, nullable=True),  # numbers; booleans as 1 and 0
    sa.Column("value_text", sa.Text, nullable=True),  # strings
    sa.Column("value_json", sa.Text, nullable=True),  # every value, as JSON text
    sa.Column("error_json", sa.Text, nullable=True),
    sa.Column("source_type", sa.String(32), nullable=False),
    sa.Column("source_id", sa.String(MAX_KEY_LENGTH), nullable=False),
    sa.Column("rationale", sa.Text, nullable=True),
    sa.Column("metadata_json", sa.Text, nullable=False),
    sa.Column("span_id", sa.String, nullable=True),
    sa.Column("run_id", sa.String, nullable=True),
    sa.Column("overrides", sa.String(64), nullable=True),
    sa.Column("valid", sa.Boolean, nullable=False),
    sa.Column("create_time_ms", sa.BigInteger, nullable=False),
    sa.Column("last_update_time_ms", sa.BigInteger, nullable=False),
    # The one index: a filter is a correlated EXISTS per trace, and a second index on
    # (name, value) made SQLite scan every matching value for each trace instead (187 ms
    # instead of 0.4 ms for feedback.quality > 0.5 at 10k traces).
    sa.Index("ix_assessments_trace_id_name", "trace_id", "name"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("experiment_id", sa.String, _fk("experiments.experiment_id"), primary_key=True),
    sa.Column("session_key", sa.String(64), primary_key=True),  # SHA-256 hex of session_id
    sa.Column("session_id", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=True),  # the traces' ``user`` metadata
    sa.Column("first_time_ms", sa.BigInteger, nullable=False),
    sa.Column("last_time_ms", sa.BigInteger, nullable=False),
    sa.Column("trace_count", sa.Integer, nullable=False),
    sa.Column("error_count", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("total_tokens", sa.BigInteger, nullable=False),
    sa.Index("ix_sessions_experiment_id_last_time_ms", "experiment_id", "last_time_ms"),
)

trace_rollups = sa.Table(
    "trace_rollups",
    metadata,
    sa.Column("experiment_id", sa.String, _fk("experiments.experiment_id"), primary_key=True),
    sa.Column("hour_ms", sa.BigInteger, primary_key=True),  # start of the UTC hour
    sa.Column("trace_count", sa.Integer, nullable=False),
    sa.Column("error_count", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("total_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("latencies", sa.Text, nullable=False),  # JSON {latency bin: trace count}
    sa.Column("feedback", sa.Text, nullable=False),  # JSON {name: [six counts and sums]}
)

stale_rollups = sa.Table(
    "stale_rollups",
    metadata,
    sa.Column("experiment_id", sa.String, primary_key=True),
    sa.Column("hour_ms", sa.BigInteger, primary_key=True),
)

#: Every table, children before parents (the order to empty them in).
ALL_TABLES = (
    assessments,
    stale_rollups,
    trace_rollups,
    sessions,
    spans,
    trace_tags,
    trace_metadata,
    traces,
    run_latest_metrics,
    run_metrics,
    run_tags,
    run_params,
    runs,
    experiment_tags,
    experiments,
)
