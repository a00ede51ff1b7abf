"""Assessments (feedback and expectations), session summaries and overview rollups.

* ``assessments``: one row per feedback or expectation of a trace (deleted with it), the
  value as JSON text and in a typed column (``value_number`` for numbers and booleans,
  ``value_text`` for strings) with an index on (trace, name) for the ``feedback.<name>`` filters.
* ``sessions``: per experiment and ``session_id`` metadata value, the figures of its traces,
  filled here from the traces already stored.
* ``trace_rollups`` / ``stale_rollups``: the overview's figures per UTC hour, computed when
  read; every hour that holds traces now is marked stale, so the first read computes it.
* ``ix_trace_metadata_session_id``: the traces of a session (a hash index on PostgreSQL).

Written out here, not derived from ``tables.py`` or the store's code, so that later edits
cannot change what this revision did; a test checks the schema agrees with ``tables.py``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HOUR_MS = 3_600_000
_BATCH = 1000
_SESSION_ROWS = "key = 'session_id'"
# Far from the 64-bit bounds, so the hour arithmetic below cannot overflow.
_SANE_TIME = 2**62


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def _fk(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{parent}.{column}"],
        name=f"fk_{table}_{column}_{parent}",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "assessments",
        sa.Column("assessment_id", sa.String(64), nullable=False),
        sa.Column("trace_id", sa.String, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("value_type", sa.String(16), nullable=True),
        sa.Column("value_number", sa.Float, nullable=True),
        sa.Column("value_text", sa.Text, nullable=True),
        sa.Column("value_json", sa.Text, nullable=True),
        sa.Column("error_json", sa.Text, nullable=True),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(250), nullable=False),
        sa.Column("rationale", sa.Text, nullable=True),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("span_id", sa.String, nullable=True),
        sa.Column("run_id", sa.String, nullable=True),
        sa.Column("overrides", sa.String(64), nullable=True),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("create_time_ms", sa.BigInteger, nullable=False),
        sa.Column("last_update_time_ms", sa.BigInteger, nullable=False),
        _pk("assessments", "assessment_id"),
        _fk("assessments", "trace_id", "traces"),
    )
    op.create_index("ix_assessments_trace_id_name", "assessments", ["trace_id", "name"])
    op.create_table(
        "sessions",
        sa.Column("experiment_id", sa.String, nullable=False),
        sa.Column("session_key", sa.String(64), nullable=False),
        sa.Column("session_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=True),
        sa.Column("first_time_ms", sa.BigInteger, nullable=False),
        sa.Column("last_time_ms", sa.BigInteger, nullable=False),
        sa.Column("trace_count", sa.Integer, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("total_tokens", sa.BigInteger, nullable=False),
        _pk("sessions", "experiment_id", "session_key"),
        _fk("sessions", "experiment_id", "experiments"),
    )
    op.create_index(
        "ix_sessions_experiment_id_last_time_ms", "sessions", ["experiment_id", "last_time_ms"]
    )
    op.create_table(
        "trace_rollups",
        sa.Column("experiment_id", sa.String, nullable=False),
        sa.Column("hour_ms", sa.BigInteger, nullable=False),
        sa.Column("trace_count", sa.Integer, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("total_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("latencies", sa.Text, nullable=False),
        sa.Column("feedback", sa.Text, nullable=False),
        _pk("trace_rollups", "experiment_id", "hour_ms"),
        _fk("trace_rollups", "experiment_id", "experiments"),
    )
    op.create_table(
        "stale_rollups",
        sa.Column("experiment_id", sa.String, nullable=False),
        sa.Column("hour_ms", sa.BigInteger, nullable=False),
        _pk("stale_rollups", "experiment_id", "hour_ms"),
    )
    where = sa.text(_SESSION_ROWS)
    op.create_index(
        "ix_trace_metadata_session_id",
        "trace_metadata",
        ["value"],
        sqlite_where=where,
        postgresql_where=where,
        postgresql_using="hash",
    )
    conn = op.get_bind()
    _mark_every_hour_stale(conn)
    _fill_sessions(conn)


def _mark_every_hour_stale(conn: sa.Connection) -> None:
    """Every (experiment, UTC hour) holding traces; ``%`` truncates on both databases, so
    ``((t % H) + H) % H`` is the floor remainder, right for times before 1970 too."""
    conn.execute(
        sa.text(
            "INSERT INTO stale_rollups (experiment_id, hour_ms) "
            "SELECT DISTINCT experiment_id, "
            "request_time - (((request_time % :hour) + :hour) % :hour) "
            "FROM traces WHERE request_time > :low AND request_time < :high"
        ),
        {"hour": HOUR_MS, "low": -_SANE_TIME, "high": _SANE_TIME},
    )


def _fill_sessions(conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.text(
            "SELECT t.experiment_id, m.value, MIN(u.value), MIN(t.request_time), "
            "MAX(t.request_time), COUNT(*), "
            "SUM(CASE WHEN t.state = 'ERROR' THEN 1 ELSE 0 END), "
            "SUM(t.input_tokens), SUM(t.output_tokens), SUM(t.total_tokens) "
            "FROM trace_metadata m JOIN traces t ON t.trace_id = m.trace_id "
            "LEFT JOIN trace_metadata u ON u.trace_id = t.trace_id AND u.key = 'user' "
            f"WHERE m.{_SESSION_ROWS} "
            "GROUP BY t.experiment_id, m.value"
        )
    ).all()
    sessions = sa.table(
        "sessions",
        *(
            sa.column(name)
            for name in (
                "experiment_id",
                "session_key",
                "session_id",
                "user_id",
                "first_time_ms",
                "last_time_ms",
                "trace_count",
                "error_count",
                "input_tokens",
                "output_tokens",
                "total_tokens",
            )
        ),
    )
    batch: list[dict[str, object]] = []
    for experiment_id, session_id, user, first, last, count, errors, tin, tout, ttot in rows:
        key = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()
        batch.append(
            {
                "experiment_id": experiment_id,
                "session_key": key,
                "session_id": session_id,
                "user_id": user,
                "first_time_ms": first,
                "last_time_ms": last,
                "trace_count": count,
                "error_count": errors or 0,
                "input_tokens": tin or 0,
                "output_tokens": tout or 0,
                "total_tokens": ttot or 0,
            }
        )
        if len(batch) >= _BATCH:
            conn.execute(sessions.insert(), batch)
            batch = []
    if batch:
        conn.execute(sessions.insert(), batch)


def downgrade() -> None:
    op.drop_index("ix_trace_metadata_session_id", "trace_metadata")
    for table in ("stale_rollups", "trace_rollups", "sessions", "assessments"):
        op.drop_table(table)
