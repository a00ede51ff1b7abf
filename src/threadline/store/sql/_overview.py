"""The overview of ``SqlStore``: an experiment's figures per UTC hour or day.

Without a filter the figures come from ``trace_rollups``, one row per experiment and hour:
reading them costs the same for 1,000 traces or 10 million. Writes only mark the hours
they touch stale (``_summaries``); the overview first recomputes the stale hours it covers
from their traces (in a write transaction, and only when some are stale), then reads the
rows. With a filter, the matching traces of the range are read and counted directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from threadline.entities.keys import TraceMetadataKey
from threadline.entities.overview import BUCKETS, Overview
from threadline.errors import InvalidArgumentError
from threadline.store import search
from threadline.store import tables as t
from threadline.store.sql._engine import now_ms
from threadline.store.sql._figures import Figures
from threadline.store.sql._summaries import HOUR_MS, Summaries

MAX_BUCKETS = 1000
DEFAULT_BUCKETS = {"hour": 24, "day": 30}
_TIME_BOUND = 2**62
_ROLLUP_FIGURES = (
    "trace_count",
    "error_count",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "latencies",
    "feedback",
)


class Overviews(Summaries):
    """``get_overview``, and the recomputation of stale hours it relies on."""

    def get_overview(
        self,
        experiment_id: str,
        filter_string: str | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        bucket: str = "hour",
    ) -> Overview:
        """The figures of ``experiment_id``'s traces (those matching ``filter_string``) that
        started in ``[start_time_ms, end_time_ms)``, widened to whole buckets; by default
        the last 24 hours (``bucket="hour"``) or 30 days (``"day"``) up to now."""
        experiment_id = str(experiment_id)
        if bucket not in BUCKETS:
            raise InvalidArgumentError(f"bucket must be 'hour' or 'day', got {bucket!r}.")
        size = BUCKETS[bucket]
        start, end = _time_range(start_time_ms, end_time_ms, bucket)
        conditions = search.compile_trace_filter(search.parse_filter(filter_string), self._dialect)
        figures = self._figures(experiment_id, start, end, size, conditions)
        totals = Figures()
        for item in figures.values():
            totals.merge(item)
        return Overview(
            experiment_id=experiment_id,
            bucket=bucket,
            start_time_ms=start,
            end_time_ms=end,
            filter_string=filter_string or None,
            buckets=[figures.get(b, Figures()).bucket(b) for b in range(start, end, size)],
            totals=totals.bucket(start),
        )

    def _figures(
        self,
        experiment_id: str,
        start: int,
        end: int,
        size: int,
        conditions: Sequence[sa.ColumnElement[bool]],
    ) -> dict[int, Figures]:
        """Figures by bucket: from the rollups (stale hours recomputed first), or, with
        ``conditions``, from the matching traces."""
        with self._read("compute the overview") as conn:
            self._require_experiment(conn, experiment_id)
            if conditions:
                return self._scan(conn, experiment_id, start, end, size, conditions)
            if not self._has_stale_hours(conn, experiment_id, start, end):
                return self._rollups(conn, experiment_id, start, end, size)
        with self._write("compute the overview") as conn:
            self._refresh_stale_hours(conn, experiment_id, start, end)
            return self._rollups(conn, experiment_id, start, end, size)

    def _scan(
        self,
        conn: Connection,
        experiment_id: str,
        start: int,
        end: int,
        size: int,
        conditions: Sequence[sa.ColumnElement[bool]],
        keep: set[int] | None = None,
    ) -> dict[int, Figures]:
        """Figures per bucket of ``size`` of the experiment's traces in ``[start, end)`` that
        meet ``conditions`` (only buckets in ``keep``, if given), read from the traces."""
        tr = t.traces.c
        where = [tr.experiment_id == experiment_id, tr.request_time >= start, tr.request_time < end]
        where += conditions
        cost = t.trace_metadata.alias("cost")
        traces = (
            sa.select(
                tr.request_time,
                tr.state,
                tr.execution_duration,
                tr.input_tokens,
                tr.output_tokens,
                tr.total_tokens,
                cost.c.value,
            )
            .select_from(
                t.traces.outerjoin(
                    cost,
                    sa.and_(cost.c.trace_id == tr.trace_id, cost.c.key == TraceMetadataKey.COST),
                )
            )
            .where(*where)
        )
        # Aliased: a feedback condition in ``where`` correlates with ``traces`` only.
        judged = t.assessments.alias("judged")
        a = judged.c
        feedback = (
            sa.select(tr.request_time, a.name, a.value_type, a.value_number)
            .select_from(judged.join(t.traces, tr.trace_id == a.trace_id))
            .where(*where, a.kind == "feedback", a.valid == sa.true())
        )
        figures: dict[int, Figures] = {}
        for request_time, *values in conn.execute(traces):
            key = request_time - request_time % size
            if keep is None or key in keep:
                found = figures.get(key)
                if found is None:
                    found = figures[key] = Figures()
                found.add_trace(*values)
        for request_time, name, value_type, number in conn.execute(feedback):
            key = request_time - request_time % size
            if keep is None or key in keep:
                found = figures.get(key)
                if found is None:
                    found = figures[key] = Figures()
                found.add_feedback(name, value_type, number)
        return figures

    def _has_stale_hours(self, conn: Connection, experiment_id: str, start: int, end: int) -> bool:
        s = t.stale_rollups.c
        query = sa.select(s.hour_ms).where(
            s.experiment_id == experiment_id, s.hour_ms >= start, s.hour_ms < end
        )
        return conn.execute(query.limit(1)).first() is not None

    def _refresh_stale_hours(
        self, conn: Connection, experiment_id: str, start: int, end: int
    ) -> None:
        """Recompute the stale hours of ``[start, end)`` from their traces.

        The marks are locked and deleted first: a writer marking one of these hours again
        waits for this transaction and leaves its mark after it, and a change committed
        before the deletion is in the traces read next.
        """
        s = t.stale_rollups.c
        in_range = [s.experiment_id == experiment_id, s.hour_ms >= start, s.hour_ms < end]
        marks = sa.select(s.hour_ms).where(*in_range).order_by(s.hour_ms).with_for_update()
        hours = [int(h) for (h,) in conn.execute(marks)]
        if not hours:
            return
        r = t.trace_rollups.c
        for lo in range(0, len(hours), self._chunk_size):
            chunk = hours[lo : lo + self._chunk_size]
            conn.execute(t.stale_rollups.delete().where(*in_range, s.hour_ms.in_(chunk)))
            conn.execute(
                t.trace_rollups.delete().where(
                    r.experiment_id == experiment_id, r.hour_ms.in_(chunk)
                )
            )
        figures = self._scan(
            conn, experiment_id, hours[0], hours[-1] + HOUR_MS, HOUR_MS, [], keep=set(hours)
        )
        rows = [figures[h].to_row(experiment_id, h) for h in sorted(figures)]
        if rows:
            conn.execute(t.trace_rollups.insert(), rows)

    def _rollups(
        self, conn: Connection, experiment_id: str, start: int, end: int, size: int
    ) -> dict[int, Figures]:
        r = t.trace_rollups.c
        query = sa.select(r.hour_ms, *(r[name] for name in _ROLLUP_FIGURES)).where(
            r.experiment_id == experiment_id, r.hour_ms >= start, r.hour_ms < end
        )
        figures: dict[int, Figures] = {}
        for hour, *values in conn.execute(query):
            key = hour - hour % size
            hour_figures = Figures.from_row(*values)
            if key in figures:
                figures[key].merge(hour_figures)
            else:
                figures[key] = hour_figures
        return figures


def _time_range(start_ms: Any, end_ms: Any, bucket: str) -> tuple[int, int]:
    """``[start, end)`` widened to whole buckets; checked against ``MAX_BUCKETS``."""
    size = BUCKETS[bucket]
    for name, value in (("start_time_ms", start_ms), ("end_time_ms", end_ms)):
        if value is not None and (type(value) is not int or not -_TIME_BOUND < value < _TIME_BOUND):
            raise InvalidArgumentError(
                f"{name} must be milliseconds since the epoch (an int), got {value!r}."
            )
    end = (now_ms() // size + 1) * size if end_ms is None else -(-end_ms // size) * size
    start = end - DEFAULT_BUCKETS[bucket] * size if start_ms is None else start_ms - start_ms % size
    if start >= end:
        raise InvalidArgumentError(
            f"start_time_ms ({start_ms}) must be before end_time_ms ({end_ms})."
        )
    if (end - start) // size > MAX_BUCKETS:
        raise InvalidArgumentError(
            f"The range holds {(end - start) // size} {bucket}s; an overview has at most "
            f"{MAX_BUCKETS} buckets: narrow the range or use bucket='day'."
        )
    return start, end
