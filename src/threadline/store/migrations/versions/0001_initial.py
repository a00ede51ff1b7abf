"""The initial schema, and the Default experiment "0".

Written out in full rather than derived from ``tables.py`` so that later edits to the
tables cannot change what this revision did; a test checks the two agree.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def _fk(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{parent}.{column}"],
        name=f"fk_{table}_{column}_{parent}",
        ondelete="CASCADE",
    )


def _key_value_table(table: str, owner_column: str, parent: str) -> None:
    """Create a (owner, key) → value table such as ``trace_tags``."""
    op.create_table(
        table,
        sa.Column(owner_column, sa.String, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        _pk(table, owner_column, "key"),
        _fk(table, owner_column, parent),
    )


def upgrade() -> None:
    _create_experiments()
    _create_runs()
    _create_traces()
    _insert_default_experiment()


def _create_experiments() -> None:
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.String, nullable=False),
        sa.Column("id_number", sa.BigInteger, nullable=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("artifact_location", sa.Text, nullable=False, server_default=""),
        sa.Column("lifecycle_stage", sa.String, nullable=False, server_default="active"),
        sa.Column("creation_time", sa.BigInteger, nullable=True),
        sa.Column("last_update_time", sa.BigInteger, nullable=True),
        _pk("experiments", "experiment_id"),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
    )
    op.create_index("ix_experiments_id_number", "experiments", ["id_number"])
    _key_value_table("experiment_tags", "experiment_id", "experiments")


def _create_runs() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("experiment_id", sa.String, nullable=False),
        sa.Column("run_name", sa.String(250), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("start_time", sa.BigInteger, nullable=True),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("lifecycle_stage", sa.String, nullable=False, server_default="active"),
        sa.Column("parent_run_id", sa.String, nullable=True),
        _pk("runs", "run_id"),
        _fk("runs", "experiment_id", "experiments"),
    )
    op.create_index("ix_runs_experiment_id", "runs", ["experiment_id"])
    _key_value_table("run_params", "run_id", "runs")
    _key_value_table("run_tags", "run_id", "runs")
    op.create_table(
        "run_metrics",
        sa.Column("metric_id", AUTO_ID, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        _pk("run_metrics", "metric_id"),
        _fk("run_metrics", "run_id", "runs"),
    )
    op.create_index("ix_run_metrics_run_id_key", "run_metrics", ["run_id", "key"])
    op.create_table(
        "run_latest_metrics",
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        _pk("run_latest_metrics", "run_id", "key"),
        _fk("run_latest_metrics", "run_id", "runs"),
    )


def _create_traces() -> None:
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String, nullable=False),
        sa.Column("experiment_id", sa.String, nullable=False),
        sa.Column("run_id", sa.String, nullable=True),
        sa.Column("request_time", sa.BigInteger, nullable=False),
        sa.Column("execution_duration", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("request_preview", sa.Text, nullable=True),
        sa.Column("response_preview", sa.Text, nullable=True),
        sa.Column("client_request_id", sa.String, nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=True),
        sa.Column("output_tokens", sa.BigInteger, nullable=True),
        sa.Column("total_tokens", sa.BigInteger, nullable=True),
        sa.Column("span_count", sa.Integer, nullable=False, server_default="0"),
        _pk("traces", "trace_id"),
        _fk("traces", "experiment_id", "experiments"),
    )
    op.create_index("ix_traces_run_id", "traces", ["run_id"])
    op.create_index("ix_traces_request_time", "traces", ["request_time"])
    op.create_index("ix_traces_client_request_id", "traces", ["client_request_id"])
    op.create_index(
        "ix_traces_experiment_id_request_time", "traces", ["experiment_id", "request_time"]
    )
    _key_value_table("trace_tags", "trace_id", "traces")
    _key_value_table("trace_metadata", "trace_id", "traces")
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String, nullable=False),
        sa.Column("span_id", sa.String, nullable=False),
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
        _pk("spans", "trace_id", "span_id"),
        _fk("spans", "trace_id", "traces"),
    )


def _insert_default_experiment() -> None:
    now = int(time.time() * 1000)
    experiments = sa.table(
        "experiments",
        sa.column("experiment_id", sa.String),
        sa.column("id_number", sa.BigInteger),
        sa.column("name", sa.String),
        sa.column("artifact_location", sa.Text),
        sa.column("lifecycle_stage", sa.String),
        sa.column("creation_time", sa.BigInteger),
        sa.column("last_update_time", sa.BigInteger),
    )
    op.bulk_insert(
        experiments,
        [
            {
                "experiment_id": "0",
                "id_number": 0,
                "name": "Default",
                "artifact_location": "",
                "lifecycle_stage": "active",
                "creation_time": now,
                "last_update_time": now,
            }
        ],
    )


def downgrade() -> None:
    for table in (
        "spans",
        "trace_metadata",
        "trace_tags",
        "traces",
        "run_latest_metrics",
        "run_metrics",
        "run_tags",
        "run_params",
        "runs",
        "experiment_tags",
        "experiments",
    ):
        op.drop_table(table)
