"""Runs in ``SqlStore``: create, update, delete, params, metrics (history and latest), tags,
search.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from threadline.entities.experiment import LifecycleStage
from threadline.entities.run import Metric, Run, RunData, RunInfo, RunStatus
from threadline.errors import (
    InvalidArgumentError,
    ResourceNotFoundError,
)
from threadline.store import search
from threadline.store import tables as t
from threadline.store.sql._checks import (
    _check_key,
    _check_run_name,
    _check_run_status,
    _check_tags,
    _check_value,
    _experiment_id_list,
)
from threadline.store.sql._engine import SqlBase, now_ms
from threadline.store.sql._row_values import _kv_rows


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


class Runs(SqlBase):
    """The run methods of the store."""

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
